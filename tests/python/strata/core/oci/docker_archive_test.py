"""The docker-archive format, and `stream`, which writes it to stdout."""

import glob
import hashlib
import io
import json
import os
import pathlib
import sys
import tarfile

from strata.core import cli as core_cli
from strata.core.oci import image
from strata.core.oci.archive import ARCHIVE_MTIME
from strata.core.oci.docker_archive import DOCKER_MAX_LAYERS

from formats_test import (
    ENTRYPOINT,
    LAYER_FILES,
    assemble,
    make_spec,
    read_docker_archive,
    sha256_file,
    tar_bytes,
    unpack_and_check,
    write_json,
    write_layer,
)  # pants: no-infer-dep


def test_docker_archive_reads_back(tmp_path):
    out, metadata = assemble(tmp_path, make_spec(tmp_path))
    names, members = read_docker_archive(out)
    assert names[-1] == "manifest.json"
    (manifest,) = json.loads(members["manifest.json"])
    assert manifest["RepoTags"] == ["app/image:v1"]
    config_bytes = members[manifest["Config"]]
    assert manifest["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert metadata["config_digest"] == "sha256:" + manifest["Config"][: -len(".json")]
    config = json.loads(config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]
    assert manifest["Layers"] == [d[len("sha256:") :] + "/layer.tar" for d in diff_ids]
    for layer_path, diff_id in zip(manifest["Layers"], diff_ids):
        assert image.sha256_digest(members[layer_path]) == diff_id
    assert [tar_bytes(files) for files in LAYER_FILES] == [members[p] for p in manifest["Layers"]]
    assert [h["comment"] for h in config["history"]] == ["layer 0", "layer 1"]
    assert config["config"]["Entrypoint"] == ENTRYPOINT
    assert metadata["repo_tag"] == "app/image:v1"
    assert metadata["layers"] == [
        {"diff_id": d, "digest": d, "size": len(members[p])}
        for p, d in zip(manifest["Layers"], diff_ids)
    ]
    assert metadata["manifest_digest"] == image.sha256_digest(
        image.canonical_json(
            image.make_manifest(
                config_bytes,
                [
                    {"digest": d, "blob_size": len(members[p]), "compression": "none"}
                    for p, d in zip(manifest["Layers"], diff_ids)
                ],
                oci=False,
            )
        )
    )
    assert not glob.glob(f"{out}.*tmp")


def test_docker_archive_entries_are_fixed(tmp_path):
    out, _ = assemble(tmp_path, make_spec(tmp_path))
    with tarfile.open(out) as tar:
        for member in tar.getmembers():
            assert (member.mtime, member.uid, member.gid) == (ARCHIVE_MTIME, 0, 0)
            assert (member.uname, member.gname) == ("root", "root")


def test_identical_layers_are_stored_once(tmp_path):
    data = tar_bytes(LAYER_FILES[0])
    layers = [{"dir": write_layer(tmp_path / name, data), "comment": name} for name in ("a", "b")]
    out, metadata = assemble(tmp_path, make_spec(tmp_path, layers=layers))
    names, members = read_docker_archive(out)
    (manifest,) = json.loads(members["manifest.json"])
    assert manifest["Layers"][0] == manifest["Layers"][1]
    assert names.count(manifest["Layers"][0]) == 1
    assert len(metadata["layers"]) == 2
    oci_out, _ = assemble(tmp_path, make_spec(tmp_path, "oci", layers=layers), "oci")
    assert len(os.listdir(oci_out / "blobs/sha256")) == 3


# The docker-archive of make_spec(): pins the archive bytes (entry order, headers, JSON).
GOLDEN_DOCKER_ARCHIVE = "sha256:6faacd6e6a0f815d5eb14ddd208b49c5da4e5939684936a28f2ee912a5eb2b6e"


def test_golden_docker_archive(tmp_path):
    out, _ = assemble(tmp_path, make_spec(tmp_path))
    assert sha256_file(out) == GOLDEN_DOCKER_ARCHIVE


def test_stream_equals_assemble(tmp_path, monkeypatch):
    """stream ignores the spec's format: it always writes docker-archive, and only to stdout."""
    spec = make_spec(tmp_path, "oci-archive")
    before = sorted(os.listdir(tmp_path))
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    assert core_cli.main(["stream", "--spec", spec]) == 0
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == before
    spec_data = json.loads(pathlib.Path(spec).read_text())
    out, _ = assemble(
        tmp_path, write_json(tmp_path / "d.json", dict(spec_data, format="docker-archive"))
    )
    assert stdout.buffer.getvalue() == out.read_bytes()


def test_stream_rejects_compressed_layers(tmp_path, capsys, monkeypatch):
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    assert core_cli.main(["stream", "--spec", make_spec(tmp_path, "oci", "gzip")]) == 1
    assert stdout.buffer.getvalue() == b""
    assert "docker-archive needs uncompressed layers" in capsys.readouterr().err


def test_docker_archive_strict(tmp_path):
    out, _ = assemble(tmp_path, make_spec(tmp_path))
    unpack_and_check(tmp_path, f"docker-archive:{out}")


def test_docker_archive_rejects_compressed_layers(tmp_path, capsys):
    code = core_cli.main(
        ["assemble", "--spec", make_spec(tmp_path, compression="gzip"), "--out", str(tmp_path / "o")]
    )
    assert code == 1
    assert "docker-archive needs uncompressed layers; layers[0]" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


def test_docker_archive_refuses_more_layers_than_docker_loads(tmp_path, capsys):
    """`docker load` fails with "max depth exceeded" beyond 125 layers."""
    layer_dir = write_layer(tmp_path / "layer", tar_bytes({"f": b"x"}))
    layers = [{"dir": layer_dir, "comment": str(i)} for i in range(DOCKER_MAX_LAYERS + 1)]
    spec = make_spec(tmp_path, layers=layers)
    assert core_cli.main(["assemble", "--spec", spec, "--out", str(tmp_path / "o")]) == 1
    assert ("docker-archive: the image has 126 layers, base layers included, but `docker load` "
            "takes at most 125") in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")
    assemble(tmp_path, make_spec(tmp_path, "oci", layers=layers))  # no docker load
