"""`output_format="rootfs"` on a scratch repo: an image on an `oci_image` on a hand-made
three-layer `oci_image_archive` whose upper layers delete files, make a directory opaque,
replace a directory by a file and a hard-linked file by another, flattened by Strata and
compared with `umoci unpack` of the same image built as an OCI layout.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata_harness import ScratchRepo, assert_valid_image, ran_processes

BUILD = """
    file(name="note", source="etc/note.txt")
    file(name="app", source="srv/app.txt")

    oci_image_archive(name="vendor", source="vendor.tar")
    oci_image(name="mid", base=":vendor", dependencies=[":note"])
    IMAGE = dict(base=":mid", dependencies=[":app"], repository="strata/flat", tag="1")
    oci_image(name="flat", output_format="rootfs", **IMAGE)
    oci_image(name="layout", output_format="oci", **IMAGE)
"""

# Each layer: path -> (kind, mode, uid, gid, content or link target); parents listed first.
LAYERS = [
    {
        "etc": ("dir", 0o755, 0, 0, None),
        "etc/keep": ("file", 0o644, 0, 0, b"keep\n"),
        "etc/gone": ("file", 0o644, 0, 0, b"gone\n"),
        "opt": ("dir", 0o755, 0, 0, None),
        "opt/cache": ("dir", 0o750, 0, 0, None),
        "opt/cache/a": ("file", 0o644, 0, 0, b"a"),
        "opt/cache/sub": ("dir", 0o755, 0, 0, None),
        "opt/cache/sub/b": ("file", 0o644, 0, 0, b"b"),
        "opt/tree": ("dir", 0o755, 0, 0, None),
        "opt/tree/leaf": ("file", 0o644, 0, 0, b"leaf"),
        "tmp": ("dir", 0o1777, 0, 0, None),
        "usr": ("dir", 0o755, 0, 0, None),
        "usr/bin": ("dir", 0o755, 0, 0, None),
        "usr/bin/tool": ("file", 0o755, 0, 0, b"#!/bin/sh\necho old\n"),
        "usr/bin/tool-alias": ("hardlink", 0o755, 0, 0, "usr/bin/tool"),
        "usr/bin/su": ("file", 0o4755, 0, 0, b"setuid"),
        "usr/bin/sh": ("symlink", 0o777, 0, 0, "tool"),
        "var": ("dir", 0o755, 0, 0, None),
        "var/data": ("dir", 0o2770, 1000, 1000, None),
        "var/data/owned": ("file", 0o600, 1000, 1000, b"mine"),
    },
    {
        "etc": ("dir", 0o755, 0, 0, None),
        "etc/.wh.gone": ("file", 0o644, 0, 0, b""),
        "opt": ("dir", 0o755, 0, 0, None),
        "opt/cache": ("dir", 0o700, 0, 0, None),
        "opt/cache/.wh..wh..opq": ("file", 0o644, 0, 0, b""),
        "opt/cache/new": ("file", 0o644, 0, 0, b"new"),
        "usr": ("dir", 0o755, 0, 0, None),
        "usr/bin": ("dir", 0o755, 0, 0, None),
        "usr/bin/tool": ("file", 0o755, 0, 0, b"#!/bin/sh\necho new\n"),
    },
    {
        "opt": ("dir", 0o755, 0, 0, None),
        "opt/tree": ("file", 0o640, 0, 0, b"now a file"),
        "var": ("dir", 0o755, 0, 0, None),
        "var/data": ("dir", 0o2770, 1000, 1000, None),
        "var/data/.wh.owned": ("file", 0o644, 0, 0, b""),
        "var/data/fresh": ("file", 0o660, 1000, 1000, b"fresh"),
    },
]
KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE}


def layer_tar(entries: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, (kind, mode, uid, gid, value) in entries.items():
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.uid, info.gid, info.mtime = KINDS[kind], mode, uid, gid, 1
            info.uname, info.gname = ("root", "root") if uid == 0 else ("", "")
            if kind == "file":
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
            else:
                info.linkname = value or ""
                tar.addfile(info)
    return buf.getvalue()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_oci_archive(out: Path) -> None:
    """The three layers (gzip, gzip, plain) as a one-image oci-archive."""
    blobs: dict[str, bytes] = {}

    def put(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    tars = [layer_tar(entries) for entries in LAYERS]
    layers = [put(gzip.compress(t, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
              for t in tars[:2]]
    layers.append(put(tars[2], "application/vnd.oci.image.layer.v1.tar"))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = {"architecture": arch, "os": "linux", "config": {},
              "rootfs": {"type": "layers",
                         "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]}}
    manifest = put(_json({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": put(_json(config), "application/vnd.oci.image.config.v1+json"),
        "layers": layers,
    }), "application/vnd.oci.image.manifest.v1+json")
    files = {f"blobs/sha256/{d}": data for d, data in sorted(blobs.items())}
    files["index.json"] = _json({"schemaVersion": 2, "manifests": [manifest]})
    files["oci-layout"] = _json({"imageLayoutVersion": "1.0.0"})
    with tarfile.open(out, "w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class Built:
    repo: ScratchRepo
    run: object  # the CompletedProcess of `package` for both images


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    repo = ScratchRepo(tmp_path_factory.mktemp("rootfs") / "repo")
    repo.write({"etc/note.txt": "note\n", "srv/app.txt": "app\n", "BUILD": BUILD})
    write_oci_archive(repo.root / "vendor.tar")
    return Built(repo, repo.run("package", "//:flat", "//:layout"))


def tree_of_rootfs_tar(path: Path) -> dict:
    """path -> (type, mode, uid, gid, sha256 or link target); hard links as their file."""
    tree: dict[str, tuple] = {}
    with tarfile.open(path) as tar:
        for info in tar:
            name = info.name.rstrip("/")
            if info.islnk():
                tree[name] = tree[info.linkname]
            elif info.isreg():
                content = hashlib.sha256(tar.extractfile(info).read()).hexdigest()
                tree[name] = ("file", info.mode, info.uid, info.gid, content)
            elif info.isdir():
                tree[name] = ("dir", info.mode, info.uid, info.gid, None)
            elif info.issym():
                tree[name] = ("symlink", None, info.uid, info.gid, info.linkname)
            else:
                raise AssertionError(f"{path}: unexpected member {info.name} ({info.type!r})")
    return tree


def tree_of_directory(root: Path) -> dict:
    """The same description of an unpacked rootfs (symlink modes are not compared)."""
    tree: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(directory, name)
            st = full.lstat()
            path = str(full.relative_to(root))
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                tree[path] = ("symlink", None, st.st_uid, st.st_gid, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                tree[path] = ("dir", mode, st.st_uid, st.st_gid, None)
            else:
                content = hashlib.sha256(full.read_bytes()).hexdigest()
                tree[path] = ("file", mode, st.st_uid, st.st_gid, content)
    return tree


def test_rootfs_is_what_umoci_unpacks(built: Built, tmp_path: Path) -> None:
    dist = built.repo.root / "dist"
    flat = dist / "flat.tar"
    assert_valid_image(dist / "layout", "oci", unpack_to=tmp_path / "bundle")
    expected = tree_of_directory(tmp_path / "bundle" / "rootfs")
    actual = tree_of_rootfs_tar(flat)
    assert sorted(actual) == sorted(expected)
    for path in expected:
        assert actual[path] == expected[path], path
    # What the upper layers did, spelled out.
    assert "etc/gone" not in actual and "var/data/owned" not in actual
    assert [p for p in actual if p.startswith("opt/cache/")] == ["opt/cache/new"]
    assert actual["opt/tree"][0] == "file" and actual["usr/bin/su"][1] == 0o4755
    assert actual["var/data/fresh"][1:4] == (0o660, 1000, 1000)
    assert actual["etc/note.txt"][0] == "file" and actual["srv/app.txt"][0] == "file"
    # The replaced file's hard link keeps the old content, in umoci's rootfs as in the tar.
    assert actual["usr/bin/tool-alias"] != actual["usr/bin/tool"]
    with tarfile.open(flat) as tar:
        names = tar.getnames()
    assert names == sorted(names, key=lambda n: n.encode())
    assert not [n for n in names if ".wh." in n]


def test_package_reports_the_image_the_layout_holds(built: Built) -> None:
    """rootfs's metadata describes the image: the OCI layout's manifest digest."""
    lines = [l for l in built.run.stderr.splitlines() if "Manifest digest:" in l]
    assert len(lines) == 2 and lines[0].split()[-1] == lines[1].split()[-1], lines
    assert "Image: strata/flat:1" in built.run.stderr


def test_rootfs_is_reproducible(built: Built) -> None:
    first = (built.repo.root / "dist" / "flat.tar").read_bytes()
    rerun = built.repo.run("--no-local-cache", "package", "//:flat")
    assert ran_processes(rerun, "Assembling //:flat") != []
    assert (built.repo.root / "dist" / "flat.tar").read_bytes() == first


def test_an_index_refuses_rootfs(built: Built) -> None:
    built.repo.write({"index/BUILD": """
        oci_image_index(name="index", images=["//:layout"], output_format="rootfs")
    """})
    result = built.repo.run("package", "index:index", check=False)
    assert result.returncode != 0
    assert ("The 'output_format' field in target index:index is `rootfs`, one image's "
            "filesystem") in result.stderr
    assert not (built.repo.root / "dist" / "index").exists()
