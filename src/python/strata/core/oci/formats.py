"""The output formats, and the subcommands that read an image spec: `assemble`, which writes
the image in the spec's format, and `stream`, which writes it as a docker-archive to stdout."""

import os
import sys

from strata.core.atomic import (
    write_bytes_atomically,
    write_dir_atomically,
    write_file_atomically,
)
from strata.core.errors import StrataError
from strata.core.oci import image
from strata.core.oci.docker_archive import check_docker_archive, write_docker_archive
from strata.core.oci.layout import write_oci_layout
from strata.core.oci.model import DiskFiles, Image, image_from_spec, load_json
from strata.core.oci.oci_archive import write_oci_archive
from strata.core.oci.rootfs import write_rootfs
from strata.core.oci.spec import ImageSpec


class Format:
    """An output format: how `assemble` writes it (atomically), whether it is a directory, and
    whether its manifest is OCI's (else Docker's v2s2, over the layers as uncompressed tars)."""

    def __init__(self, write, directory: bool, oci: bool):
        self.write = write
        self.directory = directory
        self.oci = oci


def _docker_archive_file(img: Image, output: str) -> None:
    write_file_atomically(output, lambda f: write_docker_archive([img], f))


def _oci_layout_dir(img: Image, output: str) -> None:
    write_dir_atomically(output, lambda d: write_oci_layout(img, d))


def _oci_archive_file(img: Image, output: str) -> None:
    write_file_atomically(output, lambda f: write_oci_archive(img, f))


def _rootfs_file(img: Image, output: str) -> None:
    scratch = os.path.dirname(os.path.abspath(output))
    write_file_atomically(output, lambda f: write_rootfs(img.layers, f, scratch, img.zstd))


# Every output format (the `output_format` field's choices): a new format is its module's writer
# and a row here.
# `rootfs` is no image but the image's merged filesystem; its metadata describes the image.
FORMATS = {
    "docker-archive": Format(_docker_archive_file, directory=False, oci=False),
    "oci": Format(_oci_layout_dir, directory=True, oci=True),
    "oci-archive": Format(_oci_archive_file, directory=False, oci=True),
    "rootfs": Format(_rootfs_file, directory=False, oci=True),
}


def load_image(spec_path: str, files=DiskFiles()) -> Image:
    """Reads and validates the image spec (its format one of FORMATS) and its layers' metadata
    (never their blobs)."""
    spec = ImageSpec.from_json(load_json(files, spec_path, "image spec"), FORMATS)
    return image_from_spec(spec, os.path.dirname(spec_path), files)


def assemble(img: Image, output: str) -> dict:
    """Writes the image in its format to OUTPUT and returns its metadata."""
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    FORMATS[img.format].write(img, output)
    return metadata(img)


def metadata(img: Image) -> dict:
    """What `assemble` reports of an image. For docker-archive, manifest_digest is that of the
    Docker v2s2 manifest over the archive's (uncompressed) layers."""
    fmt = FORMATS[img.format]
    return {
        "config_digest": img.config_digest,
        "manifest_digest": image.sha256_digest(img.manifest_bytes(fmt.oci)),
        "repo_tag": img.repo_tag,
        "layers": [
            {"diff_id": info["diff_id"], "digest": info["digest"], "size": info["blob_size"]}
            for info in (img.layer_infos if fmt.oci else img.docker_layer_infos)
        ],
    }


def assemble_command(options) -> None:
    """Write an image from an image spec (docs/architecture.md)."""
    img = load_image(options.spec)
    if img.format == "docker-archive":
        check_docker_archive(img)
    written = assemble(img, options.out)
    for path, data in (
        (options.metadata, image.canonical_json(written)),
        (options.config_out, img.config_bytes),
    ):
        if path:
            write_bytes_atomically(path, data)


def stream_command(options) -> None:
    """docker-archive bytes to stdout, whatever the spec's format: what `run` pipes into
    `docker load`, with no copy of the image on disk."""
    img = load_image(options.spec)
    check_docker_archive(img)
    out = sys.stdout.buffer
    try:
        write_docker_archive([img], out)
        out.flush()
    except BrokenPipeError:
        # Keep the interpreter's final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise StrataError("the reader closed stdout before the image was written") from None
