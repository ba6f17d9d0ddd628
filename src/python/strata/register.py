"""Strata: reproducible, layered OCI/Docker images as Pants build artifacts."""

from strata import target_types as _target_types
from strata.rules import base, closure, debian, image, layers, publish, tool


def target_types():
    return _target_types.target_types()


def rules():
    return [
        *base.rules(),
        *closure.rules(),
        *debian.rules(),
        *layers.rules(),
        *image.rules(),
        *publish.rules(),
        *tool.rules(),
    ]
