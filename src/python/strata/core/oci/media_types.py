"""Every media type Strata reads or writes, and what each one is: the one table, after
go-containerregistry's `pkg/v1/types` (`IsIndex`, `IsImage`, `IsConfig`, `IsLayer`)."""

from strata.core.errors import InvalidInput

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)

# layer media type -> the compression of its blobs. Docker v2s2 has no zstd layer type: a zstd
# image can only be written as OCI.
_LAYER_COMPRESSION = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
}
_OCI_LAYERS = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD)


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFESTS


def is_config(media_type: str) -> bool:
    return media_type in CONFIGS


def is_layer(media_type: str) -> bool:
    return media_type in _LAYER_COMPRESSION


def compression_of(media_type: str) -> str:
    """`none`, `gzip` or `zstd`: how a layer of this media type is compressed."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise InvalidInput(f"unsupported layer media type {media_type}") from None


def layer_media_type(compression: str, oci: bool) -> str:
    """The media type of a layer blob compressed with `compression`, in OCI or Docker v2s2."""
    for media_type, its_compression in _LAYER_COMPRESSION.items():
        if its_compression == compression and (media_type in _OCI_LAYERS) == oci:
            return media_type
    kind = "OCI" if oci else "Docker v2s2"
    raise InvalidInput(f"no {kind} layer media type for compression {compression!r}")


def manifest_of(oci: bool) -> str:
    return OCI_MANIFEST if oci else DOCKER_MANIFEST


def config_of(oci: bool) -> str:
    return OCI_CONFIG if oci else DOCKER_CONFIG


# SBOMs, attached to an image as OCI 1.1 referrers: an artifact manifest (an image manifest with
# `artifactType`, the empty config and a `subject`) whose one layer is the document.
SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"  # the empty config `{}` of an artifact
SBOM_SUFFIXES = {".spdx.json": SPDX_JSON, ".cdx.json": CYCLONEDX_JSON}
EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = {
    "mediaType": OCI_EMPTY,
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}


def sbom_artifact_type(path: str) -> str:
    """The artifact type of an SBOM file, by its suffix (SBOM_SUFFIXES)."""
    for suffix, media_type in SBOM_SUFFIXES.items():
        if path.endswith(suffix):
            return media_type
    raise InvalidInput(
        f"{path}: not an SBOM file name: it must end with {' or '.join(SBOM_SUFFIXES)}"
    )


def sbom_suffix(artifact_type: str) -> str:
    """The file suffix of an SBOM artifact type (the inverse of sbom_artifact_type)."""
    return next(s for s, media_type in SBOM_SUFFIXES.items() if media_type == artifact_type)
