from hello.main import greeting


def test_greeting_names_the_caller():
    assert greeting("Ada") == "Hello from Strata, Ada! (layers dated 1970-01-01)"
