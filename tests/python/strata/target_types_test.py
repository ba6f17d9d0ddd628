import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from strata.target_types import OciDirectoriesField, OciSymlinksField

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
