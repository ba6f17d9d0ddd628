"""An `oci_image`'s own fields, checked by the core's rules as the BUILD file is read, and what
its fields decide together."""

import re

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException, InvalidTargetException

from strata.core.oci.image import INHERITANCE
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
from strata.target_types.image_runtime_config import RUNTIME_CONFIG_FIELDS

ADDRESS = Address("app", target_name="image")


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
    (OciOsField, "../../etc", r"unknown os '\.\./\.\./etc': expected one of aix, "),
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
    (OciOsField, "windows"),
])
def test_good_image_fields_pass(field, value):
    assert field.compute_value(value, ADDRESS) is not None


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


def test_a_known_variant_is_accepted():
    assert OciImageTarget({"architecture": "arm", "variant": "7"}, ADDRESS)


def test_the_help_of_base_names_every_key_with_its_field_and_rule():
    help_text = OciBaseField.help
    for field in RUNTIME_CONFIG_FIELDS:
        assert f"`{field.config_key}` (`{field.alias}`)" in help_text
    for key, rule in INHERITANCE.items():
        line = next(line for line in help_text.splitlines() if f"`{key}`" in line.split(":")[0])
        assert line.endswith(f"{rule.value}.")


def test_runtime_config_fields_too_large_for_a_config_fail_naming_the_fields():
    """8 MB of labels would make a config no reader takes (Strata refuses a base's over 4 MiB)."""
    with pytest.raises(InvalidTargetException, match=re.escape(
            "The runtime config fields of app:image (largest first: `labels`, `env`) make its "
            "config too large: the image config is 8388663 bytes, more than the 4194304 bytes "
            "Strata (like containers/image) reads of a config; largest: config.Labels 8388618 "
            "bytes, config.Env 16 bytes.")):
        OciImageTarget({"labels": {"big": "x" * (8 << 20)}, "env": {"LANG": "C.UTF-8"}}, ADDRESS)
    assert OciImageTarget({"labels": {"big": "x" * (1 << 20)}}, ADDRESS)
