"""The OCI image layout directory format: its blobs are the layers' files, copied (checked) from
the blob store, or a base's hard-linked when they can be."""

import os
import shutil

from strata.core.build.blobstore import copy_out
from strata.core.build.compression import CHUNK
from strata.core.oci import image
from strata.core.oci.model import Image, Layer

OCI_LAYOUT = image.canonical_json({"imageLayoutVersion": "1.0.0"})


def oci_contents(img: Image):
    """The layout's blobs as sorted, deduplicated (hex, bytes or Layer) pairs, and index.json."""
    manifest = img.manifest_bytes(oci=True)
    index = image.canonical_json(image.make_index(manifest, img.tag, img.platform))
    blobs = {image.digest_hex(layer.info["digest"]): layer for layer in img.layers}
    blobs[image.digest_hex(img.config_digest)] = img.config_bytes
    blobs[image.digest_hex(image.sha256_digest(manifest))] = manifest
    return sorted(blobs.items()), index


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def link_or_copy(src: str, dst: str) -> None:
    """A hard link costs no read at all; across filesystems, one chunked copy."""
    try:
        os.link(src, dst)
    except OSError:
        with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
            shutil.copyfileobj(fsrc, fdst, CHUNK)


def write_oci_layout(img: Image, directory: str) -> None:
    blobs, index = oci_contents(img)
    blob_dir = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blob_dir)
    for hex_id, blob in blobs:
        dst = os.path.join(blob_dir, hex_id)
        if isinstance(blob, Layer) and blob.stored:  # checked as it is copied
            copy_out(img.store, blob.info["digest"], blob.info["blob_size"], dst, blob.comment)
        elif isinstance(blob, Layer):
            link_or_copy(blob.blob_path, dst)
        else:
            _write_bytes(dst, blob)
    _write_bytes(os.path.join(directory, "index.json"), index)
    _write_bytes(os.path.join(directory, "oci-layout"), OCI_LAYOUT)
