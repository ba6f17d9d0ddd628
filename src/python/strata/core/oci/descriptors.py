"""The JSON shapes of image documents from outside (an archive, a layout, a registry), checked in
one place for every reader: descriptors, image manifests, image indexes. A document of another
shape is an InvalidInput naming it, never a KeyError or a TypeError further on, and a size is
a non-negative int before anything compares it. What the media types mean is the reader's."""

import json

from strata.core.errors import InvalidInput
from strata.core.oci import image


def parse_json(data: bytes, what: str):
    """The JSON value of `data`; nesting too deep for the parser is invalid JSON too."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise InvalidInput(f"{what} is not valid JSON: {e}") from None


def descriptor(value, what: str) -> dict:
    """`value`, checked to be a descriptor: a sha256 `digest`, a non-negative integer `size`, a
    string `mediaType`, and objects (or null) for `platform` and `annotations`."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a descriptor object")
    try:
        image.digest_hex(value.get("digest"))
    except ValueError as e:
        raise InvalidInput(f"{what}: {e}") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{what}: size must be a non-negative integer: {size!r}")
    if not isinstance(value.get("mediaType"), str):
        raise InvalidInput(f"{what}: mediaType must be a string")
    for key in ("platform", "annotations"):
        if value.get(key) is not None and not isinstance(value[key], dict):
            raise InvalidInput(f"{what}: {key} must be an object")
    return value


def manifest(value, what: str) -> dict:
    """`value`, checked to be an image manifest: a `config` descriptor and a `layers` list of
    descriptors."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, an image manifest")
    layers = value.get("layers")
    if not isinstance(layers, list):
        raise InvalidInput(f"{what} has no layers list")
    descriptor(value.get("config"), f"{what} config")
    for i, layer in enumerate(layers):
        descriptor(layer, f"{what} layers[{i}]")
    return value


def index(value, what: str) -> list:
    """The `manifests` descriptors of `value`, checked to be an image index."""
    manifests = value.get("manifests") if isinstance(value, dict) else None
    if not isinstance(manifests, list):
        raise InvalidInput(f"{what} has no manifests list")
    return [descriptor(m, f"{what} manifests[{i}]") for i, m in enumerate(manifests)]
