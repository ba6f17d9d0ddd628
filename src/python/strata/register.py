"""Strata: reproducible, layered OCI/Docker images as Pants build artifacts."""

from types import ModuleType
from typing import List

# Every module of the plugin, one import a line: a new store-node kind (or goal) is one more.
from strata.target_types import image as image_targets
from strata.target_types import python as python_targets
from strata.target_types import layer as layer_targets
from strata.target_types import base as base_targets
from strata.target_types import debian as debian_targets
from strata.target_types import debian_registry as debian_registry_targets
from strata.target_types import index as index_targets
from strata.target_types import nix as nix_targets
from strata.rules import base
from strata.rules import blobs
from strata.rules import bundle
from strata.rules import closure
from strata.rules import commands
from strata.rules import index
from strata.rules import layers
from strata.rules import processes
from strata.rules import sbom
from strata.rules import tool
from strata.rules.debian import kind as debian_kind
from strata.rules.debian import lock as debian_lock
from strata.rules.debian import registry as debian_registry
from strata.rules.goals import package_image
from strata.rules.goals import package_registry
from strata.rules.goals import publish
from strata.rules.goals import run_image
from strata.rules.goals import run_registry
from strata.rules.image import assembly
from strata.rules.image import bases
from strata.rules.image import customisation
from strata.rules.image import prepare
from strata.rules.image import programs
from strata.rules.nix import closure as nix_closure
from strata.rules.nix import kind as nix_kind
from strata.rules.nodes import files
from strata.rules.nodes import packages
from strata.rules.python import packed_pex
from strata.rules.python import venv


def _modules() -> List[ModuleType]:
    """The plugin's modules imported above, in order."""
    return [m for m in globals().values()
            if isinstance(m, ModuleType) and m.__name__.startswith("strata.")]


def target_types():
    return [t for m in _modules() if hasattr(m, "target_types") for t in m.target_types()]


def rules():
    return [r for m in _modules() if hasattr(m, "rules") for r in m.rules()]
