"""The runtime config fields: declared once, each with a key the core knows how to inherit."""

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from strata.core.oci.image import INHERITANCE
from strata.target_types.image import OciImageTarget
from strata.target_types.image_runtime_config import (
    RUNTIME_CONFIG_FIELDS,
    OciEnvField,
    OciStopSignalField,
    OciUserField,
    OciVolumesField,
    OciWorkdirField,
)

ADDRESS = Address("app", target_name="image")


def test_every_runtime_config_field_is_an_image_field_with_an_inheritance_rule():
    keys = [field.config_key for field in RUNTIME_CONFIG_FIELDS]
    assert len(set(keys)) == len(keys)
    assert set(keys) <= set(INHERITANCE)
    assert set(RUNTIME_CONFIG_FIELDS) <= set(OciImageTarget.core_fields)


@pytest.mark.parametrize("field, value, problem", [
    (OciWorkdirField, "app", "path 'app' is not absolute"),
    (OciVolumesField, ["/data", "rel"], "path 'rel' is not absolute"),
    (OciVolumesField, [""], "path '' is not absolute"),
    (OciEnvField, {"A\nB": "1"}, r"environment variable name 'A\\nB' holds a control"),
    (OciEnvField, {"A=B": "1"}, "must be non-empty and hold no `=`"),
    (OciEnvField, {"": "1"}, "must be non-empty and hold no `=`"),
    (OciUserField, "app\nroot", "user 'app\\\\nroot' holds a control character"),
    (OciUserField, "app user", "must be `user`, `uid`, `user:group` or `uid:gid`"),
    (OciStopSignalField, "SIGTERM\n", "stop signal 'SIGTERM\\\\n' holds a control character"),
    (OciStopSignalField, "SIGTERM; rm -rf /", "must be a signal name such as `SIGTERM`"),
])
def test_runtime_config_fields_fail_as_the_build_file_is_read(field, value, problem):
    """Checked by the config's rules at the field, not in a Process that names no field."""
    with pytest.raises(InvalidFieldException, match=f"^The '{field.alias}' field in target "
                                                  f"app:image is invalid: .*{problem}"):
        field.compute_value(value, ADDRESS)


@pytest.mark.parametrize("field, value", [
    (OciWorkdirField, "/"),
    (OciVolumesField, ["/data"]),
    (OciEnvField, {"LANG": "C.UTF-8\nmulti-line values are values"}),
    (OciUserField, "65534:65534"),
    (OciStopSignalField, "SIGRTMIN+3"),
    (OciStopSignalField, "TERM"),
    (OciStopSignalField, "15"),
])
def test_good_runtime_config_fields_pass(field, value):
    assert field.compute_value(value, ADDRESS) is not None
