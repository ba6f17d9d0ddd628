"""The customisation layer's fields: image paths checked by the core's rules."""

import re

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from strata.target_types.image_customisation import (
    OciCommandTimeoutField,
    OciDirectoriesField,
    OciSymlinksField,
)

ADDRESS = Address("app", target_name="image")


@pytest.mark.parametrize("path, problem", [
    ("etc/motd", "is not an absolute path"),
    ("/", "names the image root itself"),
    ("/a/../b", "escapes the image root"),
    ("/a\0b", "invalid path"),  # the core's rule: caught here, not in a layer Process
])
def test_image_paths_follow_the_cores_rules(path, problem):
    for field, value in ((OciSymlinksField, {path: "target"}), (OciDirectoriesField, {path: "0755"})):
        with pytest.raises(InvalidFieldException, match=f"'{field.alias}' field in target "
                                                      f"app:image is invalid: .*{problem}"):
            field.compute_value(value, ADDRESS)


def test_good_image_paths_pass():
    assert OciSymlinksField.compute_value({"/bin/sh": "busybox"}, ADDRESS)
    assert OciDirectoriesField.compute_value({"/tmp": "1777"}, ADDRESS)


@pytest.mark.parametrize("value", [0, -5])
def test_command_timeout_is_a_positive_number_of_seconds_naming_target_and_field(value):
    with pytest.raises(InvalidFieldException, match=re.escape(
        f"The 'command_timeout' field in target app:image must be at least 1, but was "
        f"{value}."
    )):
        OciCommandTimeoutField.compute_value(value, ADDRESS)
    assert OciCommandTimeoutField.compute_value(None, ADDRESS) == 600
