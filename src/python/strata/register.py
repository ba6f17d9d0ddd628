"""Strata: reproducible, layered OCI/Docker images as Pants build artifacts."""

from strata import target_types as _target_types
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


def target_types():
    return _target_types.target_types()


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
