"""The OCI image layout directory format."""

import glob
import json
import os
import pathlib

import pytest

from strata.core.oci import image, media_types

from formats_test import (
    assemble,
    make_spec,
    oci_image_tool_validate,
    run,
    sha256_file,
    tool,
    unpack_and_check,
)  # pants: no-infer-dep


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_oci_layout(tmp_path, compression):
    if compression == "zstd":
        tool("zstd")
    out, metadata = assemble(tmp_path, make_spec(tmp_path, "oci", compression))
    assert json.loads((out / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    (descriptor,) = json.loads((out / "index.json").read_bytes())["manifests"]
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
    assert descriptor["digest"] == metadata["manifest_digest"]
    blobs = out / "blobs" / "sha256"
    for name in os.listdir(blobs):
        assert sha256_file(blobs / name) == "sha256:" + name
    manifest = json.loads((blobs / image.digest_hex(descriptor["digest"])).read_bytes())
    assert manifest["config"]["digest"] == metadata["config_digest"]
    assert manifest["config"]["mediaType"] == media_types.OCI_CONFIG
    suffix = {"none": "", "gzip": "+gzip", "zstd": "+zstd"}[compression]
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        media_types.OCI_LAYER + suffix
    ] * 2
    assert [layer["digest"] for layer in manifest["layers"]] == [
        l["digest"] for l in metadata["layers"]
    ]
    config = json.loads((blobs / image.digest_hex(metadata["config_digest"])).read_bytes())
    assert config["rootfs"]["diff_ids"] == [l["diff_id"] for l in metadata["layers"]]
    assert sorted(os.listdir(blobs)) == sorted(
        image.digest_hex(d)
        for d in [metadata["config_digest"], metadata["manifest_digest"]]
        + [l["digest"] for l in metadata["layers"]]
    )
    assert not glob.glob(f"{out}.*tmp")
    # Same filesystem: the layer blobs are hard links, not copies.
    spec = json.loads((tmp_path / f"spec-oci-{compression}.json").read_text())
    for layer, meta in zip(spec["layers"], metadata["layers"]):
        source = os.path.join(
            layer["dir"], json.loads(pathlib.Path(layer["dir"], "layer.json").read_text())["blob"]
        )
        assert os.path.samefile(source, blobs / image.digest_hex(meta["digest"]))


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_oci_layout_strict(tmp_path, compression):
    out, _ = assemble(tmp_path, make_spec(tmp_path, "oci", compression))
    oci_image_tool_validate(tmp_path, out, "v1")
    unpack_and_check(tmp_path, f"oci:{out}:v1")


def test_oci_layout_zstd_is_readable(tmp_path):
    """umoci 0.4 predates zstd layers: skopeo alone checks these (digests and sizes)."""
    tool("zstd")
    out, _ = assemble(tmp_path, make_spec(tmp_path, "oci", "zstd"))
    copy = tmp_path / "copy"
    run(
        tmp_path,
        tool("skopeo"),
        "--insecure-policy",
        "copy",
        "--quiet",
        f"oci:{out}:v1",
        f"oci:{copy}:t",
    )
    assert sorted(os.listdir(copy / "blobs/sha256")) == sorted(os.listdir(out / "blobs/sha256"))
