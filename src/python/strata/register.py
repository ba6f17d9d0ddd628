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
from strata.target_types.base import OciImageArchiveTarget, OciPullTarget
from strata.target_types.debian import DebianPackagesTarget
from strata.target_types.image import OciImageTarget
from strata.target_types.index import OciImageBundleTarget, OciImageIndexTarget
from strata.target_types.layer import OciLayerTarget
from strata.target_types.nix import NixClosureTarget
from strata.target_types.python import PythonVenvTarget


def target_types():
    return [
        OciImageTarget,
        PythonVenvTarget,
        OciLayerTarget,
        OciImageArchiveTarget,
        OciPullTarget,
        DebianPackagesTarget,
        OciImageIndexTarget,
        OciImageBundleTarget,
        NixClosureTarget,
    ]


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
