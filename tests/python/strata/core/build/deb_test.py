import bz2
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Dict, Optional

import pytest

from strata.core.cli import main
from strata.core.build.deb import MERGED_USR_DIRS, open_deb
from strata.core.debian.rootfs import (
    ca_certificates_bundle,
    merged_usr_entries,
    nss_files,
)
from strata.core.build import layer
from strata.core.build.spec import LayerSpec
from strata_harness.tools import require_tool, unavailable


def build_layer(spec: dict, sandbox_root, out_dir) -> dict:
    """The `layer` subcommand's work, on a spec as JSON data (what the rules write)."""
    return layer.build_layer(LayerSpec.from_json(spec), sandbox_root, out_dir)


ZSTD = "/usr/bin/zstd"
SETTINGS = {"mtime": 1, "uid": 0, "gid": 0, "uname": "root", "gname": "root",
            "compression": "none", "zstd": ZSTD}

CONTROL = """\
Package: {name}
Version: 1.2-3
Architecture: amd64
Maintainer: Strata Tests <tests@example.invalid>
Depends: libc6 (>= 2.36)
Description: a test package
 with a long description
 .
 over several lines
"""


def dpkg_deb() -> str:
    return require_tool("dpkg-deb")


def build_deb(tmp: Path, name: str = "demo", compression: str = "xz", setup=None) -> Path:
    """A .deb built by dpkg-deb from a tree that `setup(root)` fills (default: `demo_tree`)."""
    root = tmp / f"{name}-{compression}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN").chmod(0o755)
    (root / "DEBIAN/control").write_text(CONTROL.format(name=name))
    (setup or demo_tree)(root)
    out = tmp / f"{name}-{compression}.deb"
    subprocess.run([dpkg_deb(), "--root-owner-group", f"-Z{compression}", "--build", str(root),
                    str(out)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return out


def demo_tree(root: Path) -> None:
    def write(path: str, data: bytes, mode: int) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    write("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
    write("usr/bin/sudo-ish", b"setuid binary\n", 0o4755)
    write("usr/bin/crontab-ish", b"setgid binary\n", 0o2755)
    write("bin/legacy", b"legacy\n", 0o755)
    write("sbin/admin", b"admin\n", 0o700)
    write("lib/x86_64-linux-gnu/libdemo.so.1.0", b"\x7fELF library\n", 0o644)
    (root / "lib/x86_64-linux-gnu/libdemo.so.1").symlink_to("libdemo.so.1.0")
    (root / "lib64").mkdir()
    (root / "lib64/ld-demo.so.2").symlink_to("/lib/x86_64-linux-gnu/libdemo.so.1.0")
    write("usr/share/doc/demo/copyright", b"free\n", 0o644)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-hardlink")
    (root / "var/spool/demo").mkdir(parents=True)
    (root / "var/spool/demo").chmod(0o1777)
    (root / "usr/bin/alias").symlink_to("tool")


def read_layer(out: Path):
    """(layer.json, {path: (type, mode, uid, gid, uname, mtime, content or target)})."""
    meta = json.loads((out / "layer.json").read_text())
    raw = (out / meta["blob"]).read_bytes()
    if meta["compression"] == "gzip":
        raw = gzip.decompress(raw)
    elif meta["compression"] == "zstd":
        raw = subprocess.run([ZSTD, "-d", "-c"], input=raw, stdout=subprocess.PIPE,
                             check=True).stdout
    assert meta["diff_id"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    entries = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for info in tar:
            kind = "dir" if info.isdir() else "symlink" if info.issym() else "file"
            value = (info.linkname if info.issym()
                     else tar.extractfile(info).read() if info.isfile() else None)
            entries[info.name.rstrip("/")] = (kind, info.mode, info.uid, info.gid, info.uname,
                                              info.mtime, value)
    return meta, entries


def deb_spec(*debs, **settings) -> dict:
    return {"settings": {**SETTINGS, **settings},
            "debs": [{"source": source, "package": package} for source, package in debs]}


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "sandbox/debs").mkdir(parents=True)
    return tmp_path / "sandbox"


def place(sandbox: Path, deb: Path) -> str:
    shutil.copy(deb, sandbox / "debs" / deb.name)
    return f"debs/{deb.name}"


def test_deb_layer_keeps_modes_links_and_rewrites_merged_usr(tmp_path: Path, sandbox: Path):
    source = place(sandbox, build_deb(tmp_path))
    out = tmp_path / "out"
    meta = build_layer(deb_spec((source, "demo"), uid=7, gid=8, uname="app",
                                gname="grp", mtime=99), sandbox, out)
    _, entries = read_layer(out)
    assert meta["entries"] == len(entries)
    assert entries["usr/bin/sudo-ish"][:2] == ("file", 0o4755)
    assert entries["usr/bin/crontab-ish"][:2] == ("file", 0o2755)
    assert entries["usr/sbin/admin"][:2] == ("file", 0o700)
    assert entries["var/spool/demo"][:2] == ("dir", 0o1777)
    assert entries["usr/bin/legacy"] == ("file", 0o755, 7, 8, "app", 99, b"legacy\n")
    assert entries["usr/bin/tool-hardlink"] == entries["usr/bin/tool"]
    assert entries["usr/bin/alias"][::6] == ("symlink", "tool")
    assert entries["usr/lib/x86_64-linux-gnu/libdemo.so.1"][::6] == ("symlink",
                                                                      "libdemo.so.1.0")
    assert entries["usr/lib64/ld-demo.so.2"][::6] == (
        "symlink", "/lib/x86_64-linux-gnu/libdemo.so.1.0")
    # Nothing may sit under a directory that merged-/usr makes a symlink.
    assert not [path for path in entries if path.split("/")[0] in MERGED_USR_DIRS]
    assert {value[2:6] for value in entries.values()} == {(7, 8, "app", 99)}
    # The layer is written like any other: parents first, sorted.
    assert list(entries) == sorted(entries, key=lambda p: p.encode())
    assert not list(sandbox.glob(".strata-scratch-*"))  # the extraction area is gone


def test_status_file_holds_the_control_fields(tmp_path: Path, sandbox: Path):
    source = place(sandbox, build_deb(tmp_path))
    build_layer(deb_spec((source, "demo")), sandbox, tmp_path / "out")
    _, entries = read_layer(tmp_path / "out")
    kind, mode, *_, status = entries["var/lib/dpkg/status.d/demo"]
    assert (kind, mode) == ("file", 0o644)
    text = status.decode()
    assert text.startswith("Package: demo\nStatus: install ok installed\n")
    assert "Version: 1.2-3\n" in text and "Architecture: amd64\n" in text
    assert "Maintainer: Strata Tests <tests@example.invalid>\n" in text
    assert "Depends: libc6 (>= 2.36)\n" in text
    assert text.endswith("Description: a test package\n with a long description\n .\n"
                         " over several lines\n")


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "none"])
def test_data_tar_compressions_give_the_same_layer(tmp_path: Path, sandbox: Path,
                                                   compression: str):
    if compression == "zstd" and not os.path.exists(ZSTD):
        unavailable(f"{ZSTD} (Debian package zstd) is missing")
    reference = place(sandbox, build_deb(tmp_path / "ref", compression="xz"))
    other = place(sandbox, build_deb(tmp_path, compression=compression))
    a = build_layer(deb_spec((reference, "demo")), sandbox, tmp_path / "a")
    b = build_layer(deb_spec((other, "demo")), sandbox, tmp_path / "b")
    assert a == b


def test_zstd_data_needs_the_binary(tmp_path: Path, sandbox: Path):
    if not os.path.exists(ZSTD):
        unavailable(f"{ZSTD} (Debian package zstd) is missing")
    source = place(sandbox, build_deb(tmp_path, compression="zstd"))
    with pytest.raises(ValueError, match="needs the zstd binary"):
        build_layer(deb_spec((source, "demo"), zstd=None), sandbox, tmp_path / "out")


def test_zstd_data_is_read_without_the_zstd_environment(tmp_path: Path, sandbox: Path,
                                                       monkeypatch):
    """Every zstd pipe keeps ZSTD_* settings out, reading included (one place: compression.py)."""
    if not os.path.exists(ZSTD):
        unavailable(f"{ZSTD} (Debian package zstd) is missing")
    recorder = tmp_path / "zstd"
    recorder.write_text(f'#!/bin/sh\nenv > "{tmp_path}/zstd-env"\nexec {ZSTD} "$@"\n')
    recorder.chmod(0o755)
    source = place(sandbox, build_deb(tmp_path, compression="zstd"))
    monkeypatch.setenv("ZSTD_NBTHREADS", "2")
    build_layer(deb_spec((source, "demo"), zstd=str(recorder)), sandbox, tmp_path / "out")
    environment = (tmp_path / "zstd-env").read_text().splitlines()
    assert [line for line in environment if line.startswith("ZSTD_")] == []


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_deb_layer_compression_options_match_the_layer_subcommand(
        tmp_path: Path, sandbox: Path, compression: str):
    if compression == "zstd" and not os.path.exists(ZSTD):
        unavailable(f"{ZSTD} (Debian package zstd) is missing")
    source = place(sandbox, build_deb(tmp_path))
    plain = build_layer(deb_spec((source, "demo")), sandbox, tmp_path / "plain")
    packed = build_layer(deb_spec((source, "demo"), compression=compression), sandbox,
                         tmp_path / "packed")
    meta, _ = read_layer(tmp_path / "packed")
    assert packed["diff_id"] == plain["diff_id"] == meta["diff_id"]
    assert packed["blob"] == "layer.tar" + {"gzip": ".gz", "zstd": ".zst"}[compression]
    blob = (tmp_path / "packed" / packed["blob"]).read_bytes()
    assert packed["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()


def test_an_empty_debs_list_changes_nothing(tmp_path: Path, sandbox: Path):
    (sandbox / "rootfs/app").mkdir(parents=True)
    (sandbox / "rootfs/app/run").write_bytes(b"run\n")
    spec = {"settings": SETTINGS, "trees": [{"source": "rootfs", "dest": "", "executables": []}],
            "entries": [{"path": "tmp", "type": "dir", "mode": 0o1777}]}
    build_layer(spec, sandbox, tmp_path / "layer")
    build_layer({**spec, "debs": []}, sandbox, tmp_path / "deb")
    for name in ("layer.json", "layer.tar"):
        assert (tmp_path / "layer" / name).read_bytes() == (tmp_path / "deb" / name).read_bytes()


def two_files(content: bytes):
    def setup(root: Path) -> None:
        (root / "usr/share/common").mkdir(parents=True)
        (root / "usr/share/common/file").write_bytes(content)
    return setup


def test_shared_layer_of_debs_and_trees(tmp_path: Path, sandbox: Path):
    a = place(sandbox, build_deb(tmp_path, "pkg-a", setup=two_files(b"same\n")))
    b = place(sandbox, build_deb(tmp_path, "pkg-b", setup=two_files(b"same\n")))
    (sandbox / "rootfs/app").mkdir(parents=True)
    (sandbox / "rootfs/app/main.py").write_bytes(b"print()\n")
    spec = {**deb_spec((a, "pkg-a"), (b, "pkg-b")),
            "trees": [{"source": "rootfs", "dest": "", "executables": []}]}
    build_layer(spec, sandbox, tmp_path / "out")
    _, entries = read_layer(tmp_path / "out")
    assert {"app/main.py", "usr/share/common/file", "var/lib/dpkg/status.d/pkg-a",
            "var/lib/dpkg/status.d/pkg-b"} <= set(entries)


def test_debs_disagreeing_on_a_path_are_an_error(tmp_path: Path, sandbox: Path):
    a = place(sandbox, build_deb(tmp_path, "pkg-a", setup=two_files(b"one\n")))
    b = place(sandbox, build_deb(tmp_path, "pkg-b", setup=two_files(b"two\n")))
    with pytest.raises(ValueError, match="conflicting entries for 'usr/share/common/file'"):
        build_layer(deb_spec((a, "pkg-a"), (b, "pkg-b")), sandbox, tmp_path / "out")


def test_merged_usr_duplicate_is_an_error(tmp_path: Path, sandbox: Path):
    def setup(root: Path) -> None:
        for path in ("bin/dup", "usr/bin/dup"):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(path.encode())
    source = place(sandbox, build_deb(tmp_path, setup=setup))
    with pytest.raises(ValueError,
                       match="/bin/dup and /usr/bin/dup are both /usr/bin/dup on merged-/usr"):
        build_layer(deb_spec((source, "demo")), sandbox, tmp_path / "out")


def test_package_name_must_match(tmp_path: Path, sandbox: Path):
    source = place(sandbox, build_deb(tmp_path))
    with pytest.raises(ValueError, match=r"debs\[0\].*expected package 'other'.*'demo'"):
        build_layer(deb_spec((source, "other")), sandbox, tmp_path / "out")


# --- Hand-assembled .debs: formats dpkg-deb no longer writes, and entries it cannot ---


def ar(members: Dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        out.append(b"%-16s%-12d%-6d%-6d%-8s%-10d`\n" % (name.encode(), 0, 0, 0, b"100644",
                                                       len(data)))
        out.append(data + b"\n" * (len(data) % 2))
    return b"".join(out)


def tar_bytes(members, compress=lambda data: data) -> bytes:
    """members: (TarInfo, content or None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return compress(buffer.getvalue())


def entry(name: str, kind=tarfile.REGTYPE, mode=0o644, linkname="") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, linkname
    return info


def handmade_deb(path: Path, data_members, name="demo", data_suffix=".bz2",
                 compress=bz2.compress, extra: Optional[Dict[str, bytes]] = None) -> Path:
    control = tar_bytes([(entry("./control"), CONTROL.format(name=name).encode())],
                        gzip.compress)
    path.write_bytes(ar({"debian-binary": b"2.0\n", "control.tar.gz": control, **(extra or {}),
                         f"data.tar{data_suffix}": tar_bytes(data_members, compress)}))
    return path


def test_bz2_data_and_a_hardlink(tmp_path: Path, sandbox: Path):
    deb = handmade_deb(sandbox / "debs/demo.deb", [
        (entry("./", tarfile.DIRTYPE, 0o755), None),
        (entry("./usr/bin/perl5.36", mode=0o755), b"perl\n"),
        (entry("./usr/bin/perl", tarfile.LNKTYPE, 0o755, "./usr/bin/perl5.36"), None),
    ])
    build_layer(deb_spec((deb.relative_to(sandbox).as_posix(), "demo")), sandbox,
                tmp_path / "out")
    _, entries = read_layer(tmp_path / "out")
    assert entries["usr/bin/perl"] == entries["usr/bin/perl5.36"]
    assert entries["usr/bin/perl"][::6] == ("file", b"perl\n")


def test_base_files_merged_usr_symlinks_are_left_to_merged_usr_entries(tmp_path: Path,
                                                                        sandbox: Path):
    deb = handmade_deb(sandbox / "debs/demo.deb", [
        (entry("./bin", tarfile.SYMTYPE, 0o777, "usr/bin"), None),
        (entry("./lib64", tarfile.SYMTYPE, 0o777, "/usr/lib64"), None),
        (entry("./usr/bin/sh", tarfile.SYMTYPE, 0o777, "dash"), None),
    ])
    build_layer(deb_spec(("debs/demo.deb", "demo")), sandbox, tmp_path / "out")
    _, entries = read_layer(tmp_path / "out")
    assert "bin" not in entries and "lib64" not in entries and "usr/bin/sh" in entries
    deb = handmade_deb(deb, [(entry("./lib", tarfile.SYMTYPE, 0o777, "elsewhere"), None)])
    with pytest.raises(ValueError, match="merged-/usr needs /lib -> usr/lib"):
        build_layer(deb_spec(("debs/demo.deb", "demo")), sandbox, tmp_path / "out2")


@pytest.mark.parametrize("data_members, error", [
    ([(entry("./dev/null", tarfile.CHRTYPE, 0o666), None)], "device and fifo"),
    ([(entry("./usr/a", tarfile.LNKTYPE, 0o644, "./usr/missing"), None)],
     "hard link to './usr/missing'"),
    ([(entry("../escape"), b"x")], "escapes the image root"),
])
def test_entries_a_layer_cannot_hold(tmp_path: Path, sandbox: Path, data_members, error):
    handmade_deb(sandbox / "debs/demo.deb", data_members)
    with pytest.raises(ValueError, match=error):
        build_layer(deb_spec(("debs/demo.deb", "demo")), sandbox, tmp_path / "out")


def test_damaged_debs_are_rejected(tmp_path: Path, sandbox: Path):
    good = handmade_deb(tmp_path / "good.deb", [(entry("./usr/a"), b"a" * 5000)])
    data = good.read_bytes()

    def wrong_crc(tar: bytes) -> bytes:
        return gzip.compress(tar)[:-8] + struct.pack("<II", 12345, len(tar))

    bad_crc = handmade_deb(tmp_path / "crc.deb", [(entry("./usr/a"), b"a")], data_suffix=".gz",
                           compress=wrong_crc)
    cases = {
        "not-ar.deb": (b"PK\x03\x04" + data, "no ar archive signature"),
        "truncated.deb": (data[: len(data) - 40], "the .deb ends inside member 'data.tar.bz2'"),
        "corrupt.deb": (data[:-30] + bytes(30), "data.tar.bz2: Invalid data stream"),
        "bad-crc.deb": (bad_crc.read_bytes(), "data.tar.gz: CRC check failed"),
        "strange.deb": (handmade_deb(tmp_path / "s.deb", [], extra={"extra": b"?"}).read_bytes(),
                        "unexpected .deb member 'extra'"),
    }
    for name, (content, error) in cases.items():
        (sandbox / "debs" / name).write_bytes(content)
        with pytest.raises(ValueError, match=error):
            build_layer(deb_spec((f"debs/{name}", "demo")), sandbox, tmp_path / name)
    assert not list(sandbox.glob(".strata-scratch-*"))


def test_deb_layer_subcommand(tmp_path: Path, sandbox: Path, monkeypatch, capsys):
    source = place(sandbox, build_deb(tmp_path))
    (sandbox / "spec.json").write_text(json.dumps(deb_spec((source, "demo"))))
    monkeypatch.chdir(sandbox)
    assert main(["layer", "--spec", "spec.json", "--out", "out"]) == 0
    _, entries = read_layer(sandbox / "out")
    assert "usr/bin/tool" in entries
    (sandbox / "spec.json").write_text(json.dumps(deb_spec(("debs/missing.deb", "demo"))))
    assert main(["layer", "--spec", "spec.json", "--out", "out2"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("strata.core layer: error: debs[0] (debs/missing.deb): ")
    assert error.count("\n") == 1


def test_control_and_data_are_read_as_a_stream(tmp_path: Path):
    deb = build_deb(tmp_path)

    class OneWay(io.RawIOBase):  # no seek, no tell: a pipe
        def __init__(self, data: bytes):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self._data.readinto(buffer)

    with open_deb(OneWay(deb.read_bytes())) as (control, tar):
        names = [info.name for info in tar]
    assert control.startswith("Package: demo\n")
    assert "./usr/bin/tool" in names


# --- Root files for package-built images ---


def certificates(root: Path) -> None:
    (root / "usr/share/ca-certificates/mozilla").mkdir(parents=True)
    (root / "usr/share/ca-certificates/mozilla/B_Root.crt").write_bytes(b"-----B-----\n")
    (root / "usr/share/ca-certificates/mozilla/A_Root.crt").write_bytes(b"-----A-----")
    (root / "usr/share/ca-certificates/extra").mkdir()
    (root / "usr/share/ca-certificates/extra/Z.crt").write_bytes(b"-----Z-----\n")
    (root / "usr/share/ca-certificates/mozilla/README").write_bytes(b"not a certificate\n")
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/update-ca-certificates").write_bytes(b"#!/bin/sh\n")


def test_ca_certificates_bundle(tmp_path: Path):
    deb = build_deb(tmp_path, "ca-certificates", setup=certificates)
    with open(deb, "rb") as f:
        bundle = ca_certificates_bundle(f)
    assert bundle == b"-----Z-----\n-----A-----\n-----B-----\n"
    with open(build_deb(tmp_path, "empty", setup=lambda root: None), "rb") as f:
        with pytest.raises(ValueError, match="no usr/share/ca-certificates"):
            ca_certificates_bundle(f)


def test_root_files_are_valid_layer_entries(tmp_path: Path, sandbox: Path):
    deb = build_deb(tmp_path, "ca-certificates", setup=certificates)
    with open(deb, "rb") as f:
        files = {**nss_files(),
                 "etc/ssl/certs/ca-certificates.crt": ca_certificates_bundle(f)}
    for path, content in files.items():
        (sandbox / "custom" / path).parent.mkdir(parents=True, exist_ok=True)
        (sandbox / "custom" / path).write_bytes(content)
    spec = {"settings": SETTINGS, "trees": [{"source": "custom", "dest": "", "executables": []}],
            "entries": [entry.to_json() for entry in merged_usr_entries()]}
    build_layer(spec, sandbox, tmp_path / "out")
    _, layer = read_layer(tmp_path / "out")
    assert layer["etc/passwd"][::6] == ("file", nss_files()["etc/passwd"])
    passwd = layer["etc/passwd"][6].decode().splitlines()
    assert [line.split(":")[:4] for line in passwd] == [["root", "x", "0", "0"],
                                                        ["nobody", "x", "65534", "65534"]]
    assert b"nogroup:x:65534:" in layer["etc/group"][6]
    assert b"hosts: files dns\n" in layer["etc/nsswitch.conf"][6]
    assert layer["etc/ssl/certs/ca-certificates.crt"][1] == 0o644
    for name in MERGED_USR_DIRS:
        assert layer[name][::6] == ("symlink", f"usr/{name}")
        assert layer[f"usr/{name}"][0] == "dir"
