"""`python_venv`'s fields name the target and field."""

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from strata.target_types.python import (
    PythonVenvEntryPointField,
    PythonVenvInterpreterField,
    PythonVenvPathField,
    PythonVenvVersionField,
)

VENV = Address("app", target_name="venv")


@pytest.mark.parametrize("field, value, problem", [
    (PythonVenvInterpreterField, "python3.11", "is not an absolute path"),
    (PythonVenvPathField, "/", "names the image root itself"),
    (PythonVenvVersionField, "3", "must be MAJOR.MINOR"),
    (PythonVenvVersionField, "3.11.2", "must be MAJOR.MINOR"),
    (PythonVenvEntryPointField, "hello.main:", "must be `module:function` or `module`"),
    (PythonVenvEntryPointField, "hello/main.py", "must be `module:function` or `module`"),
])
def test_python_venv_fields_name_the_target_and_field(field, value, problem):
    with pytest.raises(InvalidFieldException, match=f"'{field.alias}' field in target "
                                                  f"app:venv .*{problem}"):
        field.compute_value(value, VENV)


def test_good_python_venv_fields_pass():
    assert PythonVenvInterpreterField.compute_value("/usr/local/bin/python3.11", VENV)
    assert PythonVenvVersionField.compute_value("3.11", VENV) == "3.11"
    assert PythonVenvEntryPointField.compute_value("hello.main:main", VENV)
    assert PythonVenvEntryPointField.compute_value("hello.cli", VENV)
    assert PythonVenvPathField.compute_value(None, VENV) == "/opt/venv"
