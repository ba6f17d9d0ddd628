"""`python -m strata.core manifest`: the exact manifest a push sends, decided before the push so
that its digest is known first. A format decision (the layout's OCI manifest, or the same image
as Docker v2s2), made without a registry: it lives with the OCI formats."""

import json
from pathlib import Path
from typing import List, Tuple

from strata.core.errors import InvalidInput
from strata.core.oci.image import canonical_json, digest_hex, make_manifest, sha256_digest
from strata.core.oci import media_types


def layout_blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest_hex(digest)


def layout_manifest(layout: Path) -> bytes:
    """The manifest of a single-image OCI layout, its exact bytes."""
    manifests = json.loads((layout / "index.json").read_bytes()).get("manifests", [])
    if len(manifests) != 1:
        raise ValueError(f"{layout} holds {len(manifests)} images; expected exactly one")
    return layout_blob(layout, manifests[0]["digest"]).read_bytes()


def as_docker_manifest(manifest_bytes: bytes, config_bytes: bytes) -> bytes:
    """The same image as a Docker v2 schema 2 manifest (for registries and tools that predate
    OCI): same config and layer blobs, Docker media types, so only the manifest digest differs.
    zstd layers have no Docker media type, which is an error."""
    manifest = json.loads(manifest_bytes)
    layers = [
        {
            "compression": media_types.compression_of(d["mediaType"]),
            "digest": d["digest"],
            "blob_size": d["size"],
        }
        for d in manifest["layers"]
    ]
    return canonical_json(make_manifest(config_bytes, layers, oci=False))


def _docker_image_manifest(layout: Path, manifest_bytes: bytes) -> bytes:
    """A layout's OCI image manifest as as_docker_manifest makes it, with its config."""
    config_digest = json.loads(manifest_bytes)["config"]["digest"]
    return as_docker_manifest(manifest_bytes, layout_blob(layout, config_digest).read_bytes())


def _listed_manifests(layout: Path, oci_index_bytes: bytes) -> List[bytes]:
    """The image manifests an OCI index lists, from the layout."""
    return [
        layout_blob(layout, descriptor["digest"]).read_bytes()
        for descriptor in json.loads(oci_index_bytes)["manifests"]
    ]


def _docker_image_manifests(layout: Path, oci_index_bytes: bytes) -> List[bytes]:
    """The Docker v2s2 forms of the image manifests an OCI index of the layout lists."""
    return [
        _docker_image_manifest(layout, manifest)
        for manifest in _listed_manifests(layout, oci_index_bytes)
    ]


def as_docker_manifest_list(layout: Path, index_bytes: bytes) -> bytes:
    """The layout's OCI image index as a Docker manifest list: each image's manifest as
    as_docker_manifest makes it, with its platform (the two formats share its keys);
    annotations, which a manifest list cannot hold, are dropped."""
    descriptors = json.loads(index_bytes)["manifests"]
    return docker_manifest_list([
        (descriptor["platform"], manifest)
        for descriptor, manifest in zip(descriptors, _docker_image_manifests(layout, index_bytes))
    ])


def docker_manifest_list(images: List[Tuple[dict, bytes]]) -> bytes:
    """A Docker manifest list over (platform, Docker image manifest) pairs, in their order."""
    manifests = [
        {
            "mediaType": media_types.DOCKER_MANIFEST,
            "digest": sha256_digest(manifest),
            "size": len(manifest),
            "platform": platform,
        }
        for platform, manifest in images
    ]
    return canonical_json(
        {"schemaVersion": 2, "mediaType": media_types.DOCKER_MANIFEST_LIST, "manifests": manifests}
    )


def manifest_to_push(layout: Path, docker: bool) -> bytes:
    """The one place that decides the bytes a push sends, so the digest reported before the
    push is the digest of what the registry gets: the layout's own manifest or image index, or
    (`docker`) its Docker v2s2 manifest or manifest list."""
    manifest_bytes = layout_manifest(layout)
    if not docker:
        return manifest_bytes
    if media_types.is_index(json.loads(manifest_bytes).get("mediaType")):
        return as_docker_manifest_list(layout, manifest_bytes)
    return _docker_image_manifest(layout, manifest_bytes)


def index_manifests(layout: Path, index_bytes: bytes) -> List[bytes]:
    """The image manifests an image index or manifest list (from manifest_to_push) lists:
    those of an OCI index from the layout, those of a Docker list converted from the layout's
    OCI ones (push_index checks them against the list's digests)."""
    if json.loads(index_bytes).get("mediaType") == media_types.DOCKER_MANIFEST_LIST:
        return _docker_image_manifests(layout, layout_manifest(layout))
    return _listed_manifests(layout, index_bytes)


def manifest_blobs(layout: Path, manifest_bytes: bytes) -> List[Tuple[str, int, str]]:
    """(digest, size, path in the layout) of the manifest's config and layers, without repeats."""
    manifest = json.loads(manifest_bytes)
    blobs = [
        (d["digest"], d["size"], str(layout_blob(layout, d["digest"])))
        for d in [manifest["config"], *manifest["layers"]]
    ]
    return list(dict.fromkeys(blobs))


def manifest_command(options) -> None:
    layout = Path(options.layout)
    try:
        manifest_bytes = manifest_to_push(layout, options.docker)
    except KeyError as e:
        raise InvalidInput(f"{layout}: a manifest or index without {e}") from None
    Path(options.out).write_bytes(manifest_bytes)
