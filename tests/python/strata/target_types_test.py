"""The fields' own rules: runtime config fields declared once, each with a key the core knows
how to inherit; image paths checked by the core's rules."""

import re

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException, InvalidTargetException

from strata.core.oci.image import INHERITANCE
from strata.core.spec import Permission
from strata.target_types.image import (
    OciBaseField,
    OciCreatedField,
    OciGidField,
    OciGnameField,
    OciImageTarget,
    OciMtimeField,
    OciOsField,
    OciUidField,
    OciUnameField,
)
from strata.target_types.image_customisation import (
    OciCommandTimeoutField,
    OciDirectoriesField,
    OciSymlinksField,
)
from strata.target_types.image_runtime_config import (
    RUNTIME_CONFIG_FIELDS,
    OciEnvField,
    OciStopSignalField,
    OciUserField,
    OciVolumesField,
    OciWorkdirField,
)
from strata.target_types.layer import OciLayerTarget, OciPermissionsField
from strata.target_types.nix import NixClosureTarget, NixPathsToLinkField, NixStorePathsField
from strata.target_types.python import (
    PythonVenvEntryPointField,
    PythonVenvInterpreterField,
    PythonVenvPathField,
    PythonVenvVersionField,
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


def test_every_runtime_config_field_is_an_image_field_with_an_inheritance_rule():
    keys = [field.config_key for field in RUNTIME_CONFIG_FIELDS]
    assert len(set(keys)) == len(keys)
    assert set(keys) <= set(INHERITANCE)
    assert set(RUNTIME_CONFIG_FIELDS) <= set(OciImageTarget.core_fields)


def test_the_help_of_base_names_every_key_with_its_field_and_rule():
    help_text = OciBaseField.help
    for field in RUNTIME_CONFIG_FIELDS:
        assert f"`{field.config_key}` (`{field.alias}`)" in help_text
    for key, rule in INHERITANCE.items():
        line = next(line for line in help_text.splitlines() if f"`{key}`" in line.split(":")[0])
        assert line.endswith(f"{rule.value}.")


@pytest.mark.parametrize("field, value, problem", [
    # What a layer's tar headers hold, by the tar writer's own rules.
    (OciCreatedField, "1969-12-31T23:59:59Z", "must be from 1970-01-01T00:00:00Z to 2242"),
    (OciCreatedField, "2242-03-16T12:56:32Z", "must be from 1970-01-01T00:00:00Z to 2242"),
    (OciMtimeField, "1969-12-31T23:59:59Z", "must be from 1970-01-01T00:00:00Z to 2242"),
    (OciCreatedField, "yesterday", "must be an RFC 3339 time"),
    (OciCreatedField, "", "must be an RFC 3339 time"),
    (OciMtimeField, "", "must be an RFC 3339 time"),
    (OciOsField, "", "unknown os ''"),
    (OciUidField, -1, r"uid must be an integer in 0..2097151"),
    (OciUidField, 2097152, r"uid must be an integer in 0..2097151"),
    (OciGidField, 2097152, r"gid must be an integer in 0..2097151"),
    (OciUnameField, "", "uname must be 1 to 31 ASCII characters"),
    (OciUnameField, "x" * 32, "uname must be 1 to 31 ASCII characters"),
    (OciGnameField, "x" * 40, "gname must be 1 to 31 ASCII characters"),
    # The runtime config's names and paths.
    (OciWorkdirField, "app", "path 'app' is not absolute"),
    (OciVolumesField, ["/data", "rel"], "path 'rel' is not absolute"),
    (OciVolumesField, [""], "path '' is not absolute"),
    (OciEnvField, {"A\nB": "1"}, r"environment variable name 'A\\nB' holds a control"),
    (OciEnvField, {"A=B": "1"}, "must be non-empty and hold no `=`"),
    (OciEnvField, {"": "1"}, "must be non-empty and hold no `=`"),
    (OciOsField, "../../etc", r"unknown os '\.\./\.\./etc': expected one of aix, "),
    (OciUserField, "app\nroot", "user 'app\\\\nroot' holds a control character"),
    (OciUserField, "app user", "must be `user`, `uid`, `user:group` or `uid:gid`"),
    (OciStopSignalField, "SIGTERM\n", "stop signal 'SIGTERM\\\\n' holds a control character"),
    (OciStopSignalField, "SIGTERM; rm -rf /", "must be a signal name such as `SIGTERM`"),
])
def test_image_fields_fail_as_the_build_file_is_read(field, value, problem):
    """Checked by the core's rules (the tar writer's, the config's) at the field, not in a
    layer Process that names no field."""
    with pytest.raises(InvalidFieldException, match=f"^The '{field.alias}' field in target "
                                                  f"app:image is invalid: .*{problem}"):
        field.compute_value(value, ADDRESS)


@pytest.mark.parametrize("field, value", [
    (OciCreatedField, "2242-03-16T12:56:31Z"),
    (OciCreatedField, "now"),
    (OciUidField, 2097151),
    (OciUnameField, "x" * 31),
    (OciWorkdirField, "/"),
    (OciVolumesField, ["/data"]),
    (OciEnvField, {"LANG": "C.UTF-8\nmulti-line values are values"}),
    (OciOsField, "windows"),
    (OciUserField, "65534:65534"),
    (OciStopSignalField, "SIGRTMIN+3"),
    (OciStopSignalField, "TERM"),
    (OciStopSignalField, "15"),
])
def test_good_image_fields_pass(field, value):
    assert field.compute_value(value, ADDRESS) is not None


def test_runtime_config_fields_too_large_for_a_config_fail_naming_the_fields():
    """8 MB of labels would make a config no reader takes (Strata refuses a base's over 4 MiB)."""
    with pytest.raises(InvalidTargetException, match=re.escape(
            "The runtime config fields of app:image (largest first: `labels`, `env`) make its "
            "config too large: the image config is 8388663 bytes, more than the 4194304 bytes "
            "Strata (like containers/image) reads of a config; largest: config.Labels 8388618 "
            "bytes, config.Env 16 bytes.")):
        OciImageTarget({"labels": {"big": "x" * (8 << 20)}, "env": {"LANG": "C.UTF-8"}}, ADDRESS)
    assert OciImageTarget({"labels": {"big": "x" * (1 << 20)}}, ADDRESS)


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


@pytest.mark.parametrize("fields, message", [
    ({"architecture": "aarch64"},
     "The 'architecture' field in target app:image is invalid: unknown architecture 'aarch64': "
     "Go calls it 'arm64'"),
    ({"architecture": "arm64", "variant": "v7"},
     "The 'variant' field in target app:image is invalid: unknown variant 'v7' of 'arm64'"),
    ({"variant": "v9"},  # amd64's levels are v1 to v4
     "The 'variant' field in target app:image is invalid: unknown variant 'v9' of 'amd64'"),
])  # fmt: skip
def test_the_platform_fields_are_checked_naming_target_and_field(fields, message):
    with pytest.raises(InvalidTargetException, match=re.escape(message)):
        OciImageTarget(fields, ADDRESS)


@pytest.mark.parametrize("value", [0, -5])
def test_command_timeout_is_a_positive_number_of_seconds_naming_target_and_field(value):
    with pytest.raises(InvalidFieldException, match=re.escape(
        f"The 'command_timeout' field in target app:image must be at least 1, but was "
        f"{value}."
    )):
        OciCommandTimeoutField.compute_value(value, ADDRESS)
    assert OciCommandTimeoutField.compute_value(None, ADDRESS) == 600


def test_a_known_variant_is_accepted():
    assert OciImageTarget({"architecture": "arm", "variant": "7"}, ADDRESS)


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


CLOSURE = Address("nix", target_name="closure")
STORE_PATH = "/nix/store/" + "0123456789abcdfghijklmnpqrsvwxyz" + "-hello-2.12"


@pytest.mark.parametrize("fields, message", [
    ({}, "needs either `source` and `attributes` (what nix-build builds) or `store_paths` "
         "(existing store paths), not neither"),
    ({"source": "closure.nix", "attributes": ["hello"], "store_paths": [STORE_PATH]},
     "not both"),
    ({"source": "closure.nix"}, "The `attributes` field of nix_closure nix:closure is needed "
                                "with `source`"),
    ({"store_paths": [STORE_PATH], "attributes": ["hello"]},
     "The `attributes` field of nix_closure nix:closure is needed with `source`, and only there"),
])  # fmt: skip
def test_a_nix_closure_is_built_or_given_not_both_nor_neither(fields, message):
    with pytest.raises(InvalidTargetException, match=re.escape(message)):
        NixClosureTarget(fields, CLOSURE)


@pytest.mark.parametrize("path", [
    "/nix/store/hello",  # no hash
    "/nix/store/" + "e" * 32 + "-x",  # 'e' is not in Nix's base32
    STORE_PATH + "/bin/hello",  # inside a store path
    "nix/store/" + "0" * 32 + "-x",  # relative
])
def test_store_paths_must_be_top_level_store_paths(path):
    with pytest.raises(InvalidFieldException, match=re.escape(
            f"The 'store_paths' field in target nix:closure is invalid: store path: {path!r} "
            "is not a Nix store path")):
        NixStorePathsField.compute_value([path], CLOSURE)


@pytest.mark.parametrize("name", ["usr/bin", "..", "."])
def test_paths_to_link_are_directory_names(name):
    with pytest.raises(InvalidFieldException, match=re.escape(
            f"The 'paths_to_link' field in target nix:closure holds {name!r}")):
        NixPathsToLinkField.compute_value([name], CLOSURE)


def test_good_nix_closures_pass():
    assert NixClosureTarget({"store_paths": [STORE_PATH]}, CLOSURE)
    assert NixClosureTarget({"source": "closure.nix", "attributes": ["hello"]}, CLOSURE)
    assert NixPathsToLinkField.compute_value(None, CLOSURE) == ("bin", "lib", "etc", "share")
