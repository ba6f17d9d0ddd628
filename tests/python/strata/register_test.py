import pkgutil
from importlib import import_module

from pants.help.help_info_extracter import TargetFieldHelpInfo

import strata.rules
import strata.target_types
from strata import register


def test_register_exposes_entry_points():
    assert callable(register.rules) and callable(register.target_types)
    assert register.rules() and register.target_types()


def test_every_module_with_rules_or_targets_is_registered():
    """A module's `rules()` and `target_types()` reach Pants only through its import line in
    register.py."""
    registered = {m.__name__ for m in register._modules()}
    for package, entry in ((strata.rules, "rules"), (strata.target_types, "target_types")):
        found = {
            info.name
            for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
            if hasattr(import_module(info.name), entry)
        }
        assert found - registered == set()


def test_pants_help_reads_every_fields_type():
    """`pants help <target>` reads each field's type from its `compute_value` hints."""
    for target in register.target_types():
        for field in target.core_fields:
            assert TargetFieldHelpInfo.create(field, provider="strata").type_hint, field
