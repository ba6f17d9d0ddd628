"""The blob store (docs/architecture.md, "The blob store"): layer tars and archives live outside
Pants' store, dist/ links to them, and a blob that is missing or wrong there is put back, checked,
before anything reads it; `[strata].dist = "copy"` gives the same bytes as real files; checkouts
share one store; a full store fails clearly."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from strata_harness import ScratchRepo, assert_valid_image, ran_processes, require_tool

GREETING = "hello from the blob store\n"
BUILD = """
    file(name="busybox", source="bin/busybox")
    files(name="etc", sources=["etc/*.txt"], dependencies=[":busybox"])
    files(name="big", sources=["big/*"])

    IMAGE = dict(
        dependencies=[":etc", ":big"],
        symlinks={"/bin/sh": "/bin/busybox"},
        entrypoint=["/bin/busybox", "cat", "/etc/greeting.txt"],
    )
    oci_image(name="archive", **IMAGE)
    oci_image(name="layout", output_format="oci", **IMAGE)
    oci_image(name="oci-archive", output_format="oci-archive", compression="gzip", **IMAGE)
    oci_image(name="descriptor", output_format="descriptor", **IMAGE)
"""
OUTPUTS = {"archive": "archive.tar", "layout": "layout", "oci-archive": "oci-archive.tar"}
BIG = {f"big/blob-{i}.bin": hashlib.sha256(b"%d" % i).digest() * 40000 for i in range(5)}
# The emit Processes: a layer's or an archive's bytes, written again or copied from the store.
REGENERATED = ": its bytes"


def busybox_repo(root: Path, **kwargs) -> ScratchRepo:
    repo = ScratchRepo(root, **kwargs)
    repo.write(
        {
            "bin/busybox": Path(require_tool("busybox")).read_bytes(),
            "etc/greeting.txt": GREETING,
            # Over Pants' 512 KiB threshold for hardlinked inputs, and 6 MB in all: more than
            # the SBOM hashes in pantsd (its `describe` Processes do, chunk by chunk).
            **BIG,
            "BUILD": BUILD,
        }
    )
    (repo.root / "bin/busybox").chmod(0o755)
    return repo


def tree_digests(path: Path) -> dict[str, str]:
    """sha256 of every file of an output (through its symlinks), by relative path."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*")) if p.is_file()
    }


def outputs(repo: ScratchRepo) -> dict[str, dict[str, str]]:
    return {name: tree_digests(repo.root / "dist" / out) for name, out in OUTPUTS.items()}


def layer_blobs(repo: ScratchRepo) -> list[Path]:
    """The layout's layer blobs in the blob store, largest first."""
    blobs = (repo.root / "dist/layout/blobs/sha256").iterdir()
    targets = [Path(os.readlink(b)) for b in blobs if b.is_symlink()]
    return sorted(targets, key=lambda p: p.stat().st_size, reverse=True)


def test_linked_and_copied_outputs_are_the_same_images(tmp_path: Path, run_image) -> None:
    linked = busybox_repo(tmp_path / "linked", isolated_cache=True)
    linked.run("package", "::")
    dist = linked.root / "dist"
    # Linked: an archive is a symlink to its blob; a layout's layers are symlinks, its
    # index.json (and manifest and config) files.
    assert (dist / "archive.tar").is_symlink()
    assert Path(os.readlink(dist / "archive.tar")).is_relative_to(linked.blob_store)
    assert not (dist / "layout/index.json").is_symlink()
    assert len(layer_blobs(linked)) >= 3
    # No layer's bytes went through Pants' store.
    copied = busybox_repo(tmp_path / "copied", isolated_cache=True)
    copied.run("--strata-dist=copy", "package", "::")
    assert not any(p.is_symlink() for p in (copied.root / "dist").rglob("*"))
    assert outputs(linked) == outputs(copied)
    for repo in (linked, copied):
        for out in OUTPUTS.values():
            assert_valid_image(repo.root / "dist" / out)
    assert run_image(dist / "archive.tar") == (0, GREETING)
    # Its SBOM lists every big file with its checksum.
    spdx = json.loads((dist / "archive.spdx.json").read_text())
    listed = {f["fileName"].lstrip("./"): {c["algorithm"]: c["checksumValue"] for c in f["checksums"]}
              for f in spdx.get("files", [])}
    for path, data in BIG.items():
        assert listed[path]["SHA256"] == hashlib.sha256(data).hexdigest(), path

    # The `descriptor` format: the layout's very manifest and config, each layer's blob in the
    # store; the same document in both modes.
    document = json.loads((dist / "descriptor.json").read_text())
    assert (dist / "descriptor.json").read_bytes() == (
        copied.root / "dist/descriptor.json").read_bytes()
    index = json.loads((dist / "layout/index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    assert document["manifest"]["digest"] == manifest_digest
    manifest = document["manifest"]["json"].encode()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == manifest_digest
    config = document["config"]["json"].encode()
    assert "sha256:" + hashlib.sha256(config).hexdigest() == document["config"]["digest"]
    for layer in document["layers"]:
        blob = linked.blob_store / "sha256" / layer["digest"].split(":")[1]
        assert blob.stat().st_size == layer["size"]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]


def test_a_missing_or_wrong_blob_is_put_back_before_it_is_read(tmp_path: Path, run_image) -> None:
    repo = busybox_repo(tmp_path / "repo", isolated_cache=True)
    repo.run("package", "::")
    before = outputs(repo)
    largest, second, third = layer_blobs(repo)[:3]
    archive = Path(os.readlink(repo.root / "dist/archive.tar"))
    largest.unlink()  # deleted
    os.truncate(second, second.stat().st_size // 2)  # truncated
    data = bytearray(third.read_bytes())  # corrupted in place, same size
    data[len(data) // 2] ^= 0xFF
    third.write_bytes(bytes(data))
    os.truncate(archive, 1024)  # the archive's blob too

    again = repo.run("package", "::")
    put_back = ran_processes(again, "")
    assert any(REGENERATED in p for p in put_back), put_back
    assert "held wrong bytes" in again.stderr
    assert outputs(repo) == before
    for out in OUTPUTS.values():
        assert_valid_image(repo.root / "dist" / out)
    assert run_image(repo.root / "dist/archive.tar") == (0, GREETING)
    # Put back once: a third run finds every blob and writes nothing again.
    third_run = repo.run("package", "::")
    assert [p for p in ran_processes(third_run, "") if REGENERATED in p] == []


def test_two_checkouts_share_one_blob_store_at_once(tmp_path: Path) -> None:
    shared = tmp_path / "shared-blobs"
    repos = [
        busybox_repo(tmp_path / name, isolated_cache=True, config={"strata": {"blob_store": str(shared)}})
        for name in ("one", "two")
    ]
    runs = [
        subprocess.Popen(
            [str(repo.pants), "--no-pantsd", "--no-pantsrc", "--no-watch-filesystem",
             "package", "::"],
            cwd=repo.root, env={**os.environ, "LANG": "C.UTF-8", "NO_SCIE_WARNING": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for repo in repos
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=1200)
        assert run.returncode == 0, stderr[-5000:]
    assert outputs(repos[0]) == outputs(repos[1])
    for out in OUTPUTS.values():
        assert_valid_image(repos[0].root / "dist" / out)
    assert not list((shared / "tmp").iterdir())  # no temporary file left behind
    # Both wrote the same blobs into one store: every one is whole and right.
    for blob in (shared / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def test_a_full_blob_store_fails_clearly_and_leaves_no_output(tmp_path: Path) -> None:
    unshare = require_tool("unshare")
    repo = busybox_repo(tmp_path / "repo", isolated_cache=True)
    store = repo.blob_store
    store.mkdir()
    # A 512 KiB tmpfs, in a mount namespace of this test's own: the machine's mounts are not
    # touched. The image's big layer (1.2 MB) cannot fit.
    listing = tmp_path / "left-in-store.txt"
    script = (
        f"mount -t tmpfs -o size=512k strata-test {store} || exit 99\n"
        f"{repo.pants} --no-pantsd --no-pantsrc --no-watch-filesystem package :archive\n"
        f"status=$?; ls -A {store}/tmp > {listing}; exit $status"
    )
    result = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
        cwd=repo.root, env={**os.environ, "LANG": "C.UTF-8", "NO_SCIE_WARNING": "1"},
        capture_output=True, text=True, timeout=1200,
    )
    if result.returncode == 99 and "CI" not in os.environ:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here: {result.stderr.strip()}")
    assert result.returncode != 0, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert f"the blob store {store} is full" in message, result.stderr[-3000:]
    assert not (repo.root / "dist/archive.tar").exists()
    assert not (repo.root / "dist/archive.tar").is_symlink()
    assert listing.read_text() == ""  # no partial blob left in the store
