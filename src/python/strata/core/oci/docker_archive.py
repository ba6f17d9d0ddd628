"""The docker-archive format (`docker load`'s), of one image or several (`bundle`)."""

import os

from strata.core.build.tarstream import TarWriter
from strata.core.oci import image
from strata.core.oci.archive import ARCHIVE_MTIME, add_verified
from strata.core.oci.layer_reader import LayerReader
from strata.core.oci.model import Image, Layer


# The most layers Docker's layer store takes in one image (moby's layer.maxLayerDepth): `docker
# load` of a deeper one fails with "max depth exceeded".
DOCKER_MAX_LAYERS = 125


def check_docker_layer_count(count: int) -> None:
    if count > DOCKER_MAX_LAYERS:
        raise ValueError(
            f"docker-archive: the image has {count} layers, base layers included, but `docker "
            f"load` takes at most {DOCKER_MAX_LAYERS} (\"max depth exceeded\")"
        )


def check_docker_archive(img: Image) -> None:
    """docker-archive holds layers as tars (`docker load` reads them as such), at most
    DOCKER_MAX_LAYERS. A base's gzip blobs go in as they are: docker, podman and skopeo load
    gzip layer.tar entries (checked by the tests with skopeo and umoci); its zstd blobs, which
    docker does not, are decompressed."""
    check_docker_layer_count(len(img.layers))
    own = 0
    for layer in img.layers:
        compression = layer.info["compression"]
        if not layer.base and compression != "none":
            raise ValueError(
                f"docker-archive needs uncompressed layers; layers[{own}] ({layer.blob_path}) is "
                f"{compression}: use format oci or oci-archive, or compression none"
            )
        if layer.base and compression == "zstd":
            where = os.path.dirname(layer.blob_path)
            if layer.info["size"] is None:
                raise ValueError(
                    f"docker-archive: base layer {where} is zstd and was imported without the "
                    "zstd binary, so its size is unknown: install zstd, or write oci or "
                    "oci-archive output"
                )
            if img.zstd is None:
                raise ValueError(
                    f"docker-archive: base layer {where} is zstd, which Docker cannot read, and "
                    "decompressing it needs the zstd binary: install zstd, or write oci or "
                    "oci-archive output"
                )
        own += not layer.base


def _add_blob(tar: TarWriter, path: str, layer: Layer) -> None:
    add_verified(tar, path, layer.info["blob_size"], layer.blob_path, layer.info["digest"])


def _add_decompressed(tar: TarWriter, path: str, layer: Layer, zstd: str) -> None:
    with LayerReader(layer, zstd) as data:
        tar.add_file(path, layer.info["size"], data)


def write_docker_archive(images: list, out) -> None:
    """The `docker load` format: each image's layers (those not yet written) and config, then
    manifest.json last, listing the images in order, as nixpkgs' streamLayeredImage does, so
    the archive can be produced in one forward pass. A layer or config that several images
    share is stored once (dockerTools' mergeImages)."""
    for img in images:
        check_docker_archive(img)
    tar = TarWriter(out, mtime=ARCHIVE_MTIME)
    written = set()
    manifest = []
    for img in images:
        layer_paths = []
        for layer in img.layers:
            hex_id = image.digest_hex(layer.info["diff_id"])
            path = f"{hex_id}/layer.tar"
            if path not in written:
                written.add(path)
                tar.add_dir(hex_id)
                if layer.info["compression"] == "zstd":
                    _add_decompressed(tar, path, layer, img.zstd)
                else:
                    _add_blob(tar, path, layer)
            layer_paths.append(path)
        config_name = image.digest_hex(img.config_digest) + ".json"
        if config_name not in written:
            written.add(config_name)
            tar.add_file(config_name, len(img.config_bytes), img.config_bytes)
        manifest.append({"Config": config_name, "RepoTags": [img.repo_tag], "Layers": layer_paths})
    manifest_bytes = image.canonical_json(manifest)
    tar.add_file("manifest.json", len(manifest_bytes), manifest_bytes)
    tar.close()
