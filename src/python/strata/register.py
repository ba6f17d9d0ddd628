"""Strata: reproducible, layered OCI/Docker images as Pants build artifacts."""

from strata.rules import (
    base,
    bundle,
    closure,
    commands,
    debian,
    index,
    layers,
    nix,
    sbom,
    tool,
)
from strata.rules.goals import package_image, publish, run_image
from strata.rules.image import assembly, bases, prepare, programs
from strata.rules.nodes import debian as debian_nodes
from strata.rules.nodes import files, packages, packed_pex, python_venv
from strata.rules.nodes import nix as nix_nodes
from strata.target_types import base as base_targets
from strata.target_types import debian as debian_targets
from strata.target_types import image as image_targets
from strata.target_types import index as index_targets
from strata.target_types import layer as layer_targets
from strata.target_types import nix as nix_targets
from strata.target_types import python as python_targets


def target_types():
    families = (image_targets, python_targets, layer_targets, base_targets, debian_targets,
                index_targets, nix_targets)
    return [target for family in families for target in family.target_types()]


def rules():
    return [
        *base.rules(),
        *closure.rules(),
        *commands.rules(),
        *debian.rules(),
        *files.rules(),
        *packages.rules(),
        *packed_pex.rules(),
        *python_venv.rules(),
        *debian_nodes.rules(),
        *nix.rules(),
        *nix_nodes.rules(),
        *layers.rules(),
        *bases.rules(),
        *prepare.rules(),
        *programs.rules(),
        *assembly.rules(),
        *package_image.rules(),
        *run_image.rules(),
        *index.rules(),
        *bundle.rules(),
        *publish.rules(),
        *sbom.rules(),
        *tool.rules(),
    ]
