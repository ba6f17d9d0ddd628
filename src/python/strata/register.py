"""Strata: reproducible, layered OCI/Docker images as Pants build artifacts."""

from strata import target_types as _target_types
from strata.rules import (
    base,
    bundle,
    closure,
    commands,
    debian,
    image,
    index,
    layers,
    nix,
    publish,
    sbom,
    tool,
)
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
        *image.rules(),
        *index.rules(),
        *bundle.rules(),
        *publish.rules(),
        *sbom.rules(),
        *tool.rules(),
    ]
