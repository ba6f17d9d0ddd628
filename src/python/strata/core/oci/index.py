"""A multi-platform image: one image index over per-platform images (`oci_image_index`).

Each image comes as the index.json of its own single-image OCI layout; every byte of the image
index and of its layout's index.json is decided here. The shell composes the layout from the
images' blobs with digest operations, and `layout-archive` (strata.core.oci.oci_archive) tars it.
"""

import json
from typing import List, Optional, Sequence, Tuple

from strata.core.errors import InvalidInput
from strata.core.oci import image, media_types, platforms


class DuplicatePlatform(InvalidInput):
    """Two images of one platform: a client could not tell which to take."""

    def __init__(self, platform: str, names: List[str]):
        self.platform, self.names = platform, names
        super().__init__(f"{' and '.join(names)} are both {platform}")


def image_descriptor(layout_index: bytes, name: str) -> dict:
    """The manifest descriptor, platform included, that a single-image layout's index.json
    names (without its ref.name annotation: that names the image in its own layout)."""
    try:
        (descriptor,) = json.loads(layout_index)["manifests"]
        image.digest_hex(descriptor["digest"])
        if descriptor["mediaType"] != media_types.OCI_MANIFEST:
            raise ValueError(f"a {descriptor['mediaType']}, not an OCI image manifest")
        if not isinstance(descriptor.get("platform"), dict):
            raise ValueError("no platform")
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidInput(f"{name}: not a single-image OCI layout index: {e!r}") from None
    return {k: v for k, v in descriptor.items() if k != "annotations"}


def _check_platforms(descriptors: Sequence[dict], names: Sequence[str]) -> None:
    """Images of one platform, as index clients match them (`linux/arm64` is
    `linux/arm64/v8`), are an error naming both."""
    offered = [(i, d["platform"]) for i, d in enumerate(descriptors)]
    for i, descriptor in enumerate(descriptors):
        platform = platforms.describe(descriptor["platform"])
        same = platforms.select(platform, offered, "the index")
        if len(same) > 1:
            raise DuplicatePlatform(platform, [names[j] for j in same])


def image_index(images: Sequence[Tuple[str, bytes]]) -> bytes:
    """The image index over `images`, (name, layout index.json) pairs, in their order."""
    if not images:
        raise InvalidInput("an image index needs at least one image")
    names = [name for name, _ in images]
    descriptors = [image_descriptor(layout_index, name) for name, layout_index in images]
    _check_platforms(descriptors, names)
    return image.canonical_json(image.make_image_index(descriptors))


def index_layout(images: Sequence[Tuple[str, bytes]], tag: Optional[str]):
    """(index blob, the layout's index.json, tag) of the images' index: the tag is the
    index's own digest's prefix when `tag` is None, so equal content gets an equal tag."""
    index_bytes = image_index(images)
    descriptor = image.index_descriptor(index_bytes)
    tag = image.content_tag(descriptor["digest"]) if tag is None else image.validate_tag(tag)
    return index_bytes, image.canonical_json(image.layout_index(descriptor, tag)), tag
