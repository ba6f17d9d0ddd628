"""`permissions`, on an `oci_layer` and an `oci_image`."""

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from strata.core.build.spec import Permission
from strata.target_types.image import OciImageTarget
from strata.target_types.layer import OciLayerTarget, OciPermissionsField

ADDRESS = Address("app", target_name="image")


@pytest.mark.parametrize("value, problem", [
    (["/var"], r"must be a dict of image paths to what they get"),
    ({"/var": "0755"}, r"maps '/var' to '0755': expected a dict"),
    ({"/var": {"mode": "0755", "owner": "x"}}, r"has unknown keys \['owner'\] for '/var'"),
    ({"/var": {"mode": "9"}}, r"invalid mode '9' for '/var': expected 3 or 4 octal digits"),
    ({"/var": {"mode": "rwx"}}, r"invalid mode 'rwx'"),
    ({"/var": {"mode": "07777"}}, r"invalid mode '07777'"),
    ({"/var": {"mode": 755}}, r"invalid mode 755 .* as a string"),  # 755 is not 0o755
    ({"/var": {"uid": 2097152}}, r"uid must be an integer in 0..2097151 \(the 7 octal digits"),
    ({"/var": {"gid": -1}}, r"gid must be an integer in 0..2097151"),
    ({"/var": {"uid": "1000"}}, r"uid must be an integer"),
    ({"/var": {"uname": "x" * 32}}, r"uname must be at most 31 ASCII characters"),
    ({"var/lib": {"uid": 1}}, r"'var/lib' is not an absolute path"),
    ({"/../x": {"uid": 1}}, r"escapes the image root"),
    ({"/a/../../b": {"uid": 1}}, r"escapes the image root"),
    ({"/": {"uid": 1}}, r"names the image root itself"),
    ({"/a/b**": {"uid": 1}}, r"'\*\*' must be a whole path component"),
    ({"/var": {}}, r"sets none of mode, uid, gid, uname, gname"),
])
def test_permissions_errors_name_the_target_and_field(value, problem):
    with pytest.raises(InvalidFieldException,
                       match=r"^The 'permissions' field in target app:image .*" + problem):
        OciPermissionsField.compute_value(value, ADDRESS)


def test_permissions_keep_their_order_and_read_modes_as_octal():
    value = {"/var/lib/app": {"mode": "2775", "uid": 1000, "gid": 1000},
             "/var/lib/app/**": {"uid": 1000, "uname": "app"}}
    assert OciPermissionsField.compute_value(value, ADDRESS) == (
        Permission("var/lib/app", mode=0o2775, uid=1000, gid=1000),
        Permission("var/lib/app/**", uid=1000, uname="app"),
    )
    assert OciPermissionsField.compute_value(None, ADDRESS) is None
    assert OciPermissionsField in OciImageTarget.core_fields
    assert OciPermissionsField in OciLayerTarget.core_fields
