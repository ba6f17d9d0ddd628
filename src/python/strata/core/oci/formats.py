"""The output formats, and the subcommands that read an image spec: `assemble`, which writes
the image in the spec's format, and `stream`, which writes it as a docker-archive to stdout."""

import os
import sys

from strata.core.atomic import (
    write_bytes_atomically,
    write_dir_atomically,
    write_file_atomically,
)
from strata.core.build.blobstore import BlobStore
from strata.core.errors import StrataError, UsageError
from strata.core.oci import image
from strata.core.oci.descriptor import write_descriptor
from strata.core.oci.docker_archive import check_docker_archive, write_docker_archive
from strata.core.oci.layout import write_oci_layout
from strata.core.oci.model import DiskFiles, Image, image_from_spec, load_json
from strata.core.oci.oci_archive import write_oci_archive
from strata.core.oci.rootfs import write_rootfs
from strata.core.oci.spec import ImageSpec


class Format:
    """An output format: how it is written (`write(img, f, scratch)` to a file object, or
    `write(img, d)` into a new directory, `directory`), whether its manifest is OCI's (else
    Docker's v2s2, over the layers as uncompressed tars), its file's suffix, and whether it
    holds blobs (else the rules write it in-process, as it reads none)."""

    def __init__(self, write, directory: bool, oci: bool, suffix: str = "tar",
                 blobs: bool = True):
        self.write = write
        self.directory = directory
        self.oci = oci
        self.suffix = None if directory else suffix
        self.blobs = blobs


def _docker_archive(img: Image, f, scratch: str) -> None:
    check_docker_archive(img)
    write_docker_archive([img], f)


def _oci_archive(img: Image, f, scratch: str) -> None:
    write_oci_archive(img, f)


def _rootfs(img: Image, f, scratch: str) -> None:
    write_rootfs(img.layers, f, scratch, img.zstd)


# Every output format (the `output_format` field's choices): a new format is its module's writer
# and a row here.
# `rootfs` is no image but the image's merged filesystem; its metadata describes the image.
FORMATS = {
    "docker-archive": Format(_docker_archive, directory=False, oci=False),
    "oci": Format(write_oci_layout, directory=True, oci=True),
    "oci-archive": Format(_oci_archive, directory=False, oci=True),
    "rootfs": Format(_rootfs, directory=False, oci=True),
    "descriptor": Format(write_descriptor, directory=False, oci=True, suffix="json", blobs=False),
}


def load_image(spec_path: str, files=DiskFiles(), blob_store=None) -> Image:
    """Reads and validates the image spec (its format one of FORMATS) and its layers' metadata
    (never their blobs); `blob_store` overrides the spec's."""
    spec = ImageSpec.from_json(load_json(files, spec_path, "image spec"), FORMATS)
    return image_from_spec(spec, os.path.dirname(spec_path), files, blob_store)


def assemble(img: Image, output: str) -> dict:
    """Writes the image in its format to OUTPUT, atomically, and returns its metadata."""
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    fmt = FORMATS[img.format]
    if fmt.directory:
        write_dir_atomically(output, lambda d: fmt.write(img, d))
    else:
        write_file_atomically(output, lambda f: fmt.write(img, f, parent))
    return metadata(img)


def assemble_to_store(img: Image, store: BlobStore) -> dict:
    """Writes the image, an archive format, into the blob store in one pass; its metadata,
    with the archive's descriptor (`archive`: digest, size and the blob's `file_stamp`)."""
    fmt = FORMATS[img.format]
    if fmt.directory:
        raise UsageError(f"{img.format} is a directory: the blob store holds files")
    with store.writer() as out:
        fmt.write(img, out, os.getcwd())
    return dict(
        metadata(img), archive={"digest": out.digest, "size": out.size, "stamp": out.stat}
    )


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
    """Write an image from an image spec (docs/architecture.md): to `--out`, or without it
    into the spec's blob store."""
    img = load_image(options.spec)
    if options.out:
        written = assemble(img, options.out)
    elif img.store is None:
        raise UsageError("without --out, the image spec must name a blob store")
    else:
        written = assemble_to_store(img, img.store)
    for path, data in (
        (options.metadata, image.canonical_json(written)),
        (options.config_out, img.config_bytes),
    ):
        if path:
            write_bytes_atomically(path, data)


def stream_command(options) -> None:
    """docker-archive bytes to stdout, whatever the spec's format: what `run` pipes into
    `docker load`, with no copy of the image on disk."""
    img = load_image(options.spec, blob_store=options.blob_store)
    check_docker_archive(img)
    out = sys.stdout.buffer
    try:
        write_docker_archive([img], out)
        out.flush()
    except BrokenPipeError:
        # Keep the interpreter's final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise StrataError("the reader closed stdout before the image was written") from None
