from strata import register


def test_register_exposes_entry_points():
    assert callable(register.rules) and callable(register.target_types)
