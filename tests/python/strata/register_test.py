from pants.help.help_info_extracter import TargetFieldHelpInfo

from strata import register


def test_register_exposes_entry_points():
    assert callable(register.rules) and callable(register.target_types)


def test_pants_help_reads_every_fields_type():
    """`pants help <target>` reads each field's type from its `compute_value` hints."""
    for target in register.target_types():
        for field in target.core_fields:
            assert TargetFieldHelpInfo.create(field, provider="strata").type_hint, field
