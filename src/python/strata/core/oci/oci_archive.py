"""The oci-archive format: an OCI image layout as one tar, written in one forward pass."""

import os

from strata.core.atomic import write_file_atomically
from strata.core.build.tarstream import TarWriter
from strata.core.oci import image
from strata.core.oci.archive import ARCHIVE_MTIME, add_verified
from strata.core.oci.layout import OCI_LAYOUT, oci_contents
from strata.core.oci.model import DiskFiles, Image, Layer


def write_oci_archive(img: Image, out) -> None:
    blobs, index = oci_contents(img)
    files = [
        (hex_id, (blob.blob_path, blob.info["blob_size"]) if isinstance(blob, Layer) else blob)
        for hex_id, blob in blobs
    ]
    write_layout_tar(out, files, index)


def write_layout_tar(out, blobs, index: bytes) -> None:
    """An OCI layout as a tar in one forward pass, sorted by path with each directory before
    its contents. `blobs`: sorted (hex, bytes or (file path, size)) pairs; each file is
    checked against its name on the way."""
    tar = TarWriter(out, mtime=ARCHIVE_MTIME)
    tar.add_dir("blobs")
    tar.add_dir("blobs/sha256")
    for hex_id, blob in blobs:
        path = f"blobs/sha256/{hex_id}"
        if isinstance(blob, bytes):
            tar.add_file(path, len(blob), blob)
            continue
        blob_path, size = blob
        add_verified(tar, path, size, blob_path, f"sha256:{hex_id}")
    tar.add_file("index.json", len(index), index)
    tar.add_file("oci-layout", len(OCI_LAYOUT), OCI_LAYOUT)
    tar.close()


def layout_archive_command(options) -> None:
    """An OCI layout directory (an image index's, composed by the rules) as an oci-archive."""
    layout = options.layout
    blob_dir = os.path.join(layout, "blobs", "sha256")
    names = sorted(os.listdir(layout)), os.listdir(os.path.join(layout, "blobs"))
    if names != (["blobs", "index.json", "oci-layout"], ["sha256"]):
        raise ValueError(f"{layout} must hold only blobs/sha256/, index.json and oci-layout")
    if DiskFiles().read(os.path.join(layout, "oci-layout")) != OCI_LAYOUT:
        raise ValueError(f"{layout}/oci-layout is not {OCI_LAYOUT.decode()}")
    blobs = []
    for hex_id in sorted(os.listdir(blob_dir)):
        image.digest_hex(f"sha256:{hex_id}")
        path = os.path.join(blob_dir, hex_id)
        blobs.append((hex_id, (path, os.stat(path).st_size)))
    index = DiskFiles().read(os.path.join(layout, "index.json"))
    os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
    write_file_atomically(options.out, lambda f: write_layout_tar(f, blobs, index))
