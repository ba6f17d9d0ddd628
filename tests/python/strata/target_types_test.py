"""The runtime config fields: declared once, each with a key the core knows how to inherit."""

from strata.core.image import INHERITANCE
from strata.target_types import RUNTIME_CONFIG_FIELDS, OciBaseField, OciImageTarget


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
