"""The `rootfs` writer on hand-made layer tars: OCI's whiteouts and replacement rules, hard
links, compressed layers, header values kept, and the same bytes every time."""

import gzip
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import tarfile

import pytest

from strata.core import cli as core_cli
from strata.core.oci import rootfs
from strata.core.oci.model import load_layer
from strata.core.oci.spec import LayerRef

_LAYER_DIRS = itertools.count()


def entry(path, kind="file", data=b"", mode=None, link="", **header):
    """A tar entry: file, dir, symlink or hardlink; `header` sets TarInfo attributes."""
    info = tarfile.TarInfo(path)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                 "hardlink": tarfile.LNKTYPE}[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.linkname, info.size = link, len(data) if kind == "file" else 0
    info.mtime, info.uname, info.gname = 1, "root", "root"
    for key, value in header.items():
        setattr(info, key, value)
    return info, data


def layer_tar(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def zstd_binary() -> str:
    """Real tools are the strict check; CI must have them, a workstation may not."""
    path = shutil.which("zstd")
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail("zstd is required under CI=true (build-support/install-system-tools.sh)")
    pytest.skip("zstd is not installed (build-support/install-system-tools.sh)")


def write_layer(directory, tar: bytes, compression="none") -> str:
    """A layer directory as `layer` writes it: the blob and layer.json."""
    blob = tar
    if compression == "gzip":
        blob = gzip.compress(tar, mtime=0)
    elif compression == "zstd":
        blob = subprocess.run([zstd_binary(), "-q", "-c"], input=tar, stdout=subprocess.PIPE,
                              check=True).stdout
    name = {"none": "layer.tar", "gzip": "layer.tar.gz", "zstd": "layer.tar.zst"}[compression]
    os.makedirs(directory)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(blob)
    info = {"diff_id": "sha256:" + hashlib.sha256(tar).hexdigest(), "size": len(tar),
            "blob": name, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
            "blob_size": len(blob), "compression": compression}
    with open(os.path.join(directory, "layer.json"), "w") as f:
        json.dump(info, f)
    return str(directory)


def flatten(tmp_path, *layers, compression="none", zstd=None) -> bytes:
    """The rootfs tar of `layers` (each a list of entries), bottom first."""
    loaded = []
    for i, entries in enumerate(layers):
        directory = write_layer(tmp_path / f"layer-{next(_LAYER_DIRS)}", layer_tar(*entries),
                                compression)
        loaded.append(load_layer(LayerRef(directory)))
    out = io.BytesIO()
    rootfs.write_rootfs(loaded, out, str(tmp_path), zstd)
    return out.getvalue()


def members(data: bytes) -> dict:
    """path -> (type, mode, uid, gid, uname, gname, mtime, linkname, content), in tar order."""
    result = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            content = tar.extractfile(info).read() if info.isreg() else None
            result[info.name] = (info.type, info.mode, info.uid, info.gid, info.uname, info.gname,
                                 info.mtime, info.linkname, content)
    return result


def paths(data: bytes) -> list:
    return list(members(data))


BASE = [
    entry("etc", "dir"),
    entry("etc/keep", data=b"keep\n"),
    entry("etc/gone", data=b"gone\n"),
    entry("opt", "dir"),
    entry("opt/app", "dir"),
    entry("opt/app/lib", "dir"),
    entry("opt/app/lib/a.so", data=b"a"),
    entry("opt/app/bin", data=b"b"),
    entry("var", "dir"),
    entry("var/cache", "dir"),
    entry("var/cache/old", data=b"old"),
]


def test_a_whiteout_deletes_a_file_and_is_not_written(tmp_path):
    out = flatten(tmp_path, BASE, [entry("etc", "dir"), entry("etc/.wh.gone")])
    assert "etc/gone" not in paths(out) and "etc/keep" in paths(out)
    assert not [p for p in paths(out) if ".wh." in p]


def test_a_whiteout_deletes_a_directory_with_its_children(tmp_path):
    out = flatten(tmp_path, BASE, [entry("opt", "dir"), entry("opt/.wh.app")])
    assert [p for p in paths(out) if p.startswith("opt")] == ["opt"]


def test_an_opaque_directory_hides_the_lower_children_only(tmp_path):
    upper = [entry("var", "dir"), entry("var/cache", "dir", mode=0o700),
             entry("var/cache/.wh..wh..opq"), entry("var/cache/new", data=b"new")]
    out = members(flatten(tmp_path, BASE, upper))
    assert [p for p in out if p.startswith("var/")] == ["var/cache", "var/cache/new"]
    assert out["var/cache"][1] == 0o700
    # The opaque marker comes after the layer's own entry in the tar: it still hides only
    # the lower layers' children.
    upper = [entry("var/cache/new", data=b"new"), entry("var/cache/.wh..wh..opq")]
    assert [p for p in paths(flatten(tmp_path, BASE, upper)) if p.startswith("var/")] == [
        "var/cache", "var/cache/new"]


def test_a_file_replacing_a_directory_drops_its_children(tmp_path):
    out = members(flatten(tmp_path, BASE, [entry("opt/app", data=b"now a file")]))
    assert [p for p in out if p.startswith("opt")] == ["opt", "opt/app"]
    assert out["opt/app"][-1] == b"now a file"


def test_a_directory_replacing_a_file_and_one_over_a_directory(tmp_path):
    upper = [entry("etc/gone", "dir", mode=0o750), entry("etc/gone/inner", data=b"i"),
             entry("opt/app", "dir", mode=0o711, uid=5)]
    out = members(flatten(tmp_path, BASE, upper))
    assert out["etc/gone"][:3] == (tarfile.DIRTYPE, 0o750, 0)
    assert out["etc/gone/inner"][-1] == b"i"
    # A directory over a directory: its own header wins, its children stay.
    assert out["opt/app"][1:3] == (0o711, 5)
    assert "opt/app/lib/a.so" in out and "opt/app/bin" in out


def test_symlinks_and_header_values_are_kept(tmp_path):
    layer = [
        entry("bin", "dir", uid=0),
        entry("bin/su", data=b"su", mode=0o4755, uid=0, gid=0, mtime=1234),
        entry("bin/sh", "symlink", link="busybox"),
        entry("data", "dir", mode=0o1777, uid=1000, gid=1001, uname="app", gname="staff"),
        entry("data/x", data=b"x", mode=0o600, uid=70000, gid=70001, uname="", gname="",
              mtime=1700000000, pax_headers={"SCHILY.xattr.user.note": "kept"}),
    ]
    data = flatten(tmp_path, layer)
    out = members(data)
    assert out["bin/su"][:-1] == (tarfile.REGTYPE, 0o4755, 0, 0, "root", "root", 1234, "")
    assert out["bin/sh"][0] == tarfile.SYMTYPE and out["bin/sh"][7] == "busybox"
    assert out["data"][:6] == (tarfile.DIRTYPE, 0o1777, 1000, 1001, "app", "staff")
    assert out["data/x"][:7] == (tarfile.REGTYPE, 0o600, 70000, 70001, "", "", 1700000000)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getmember("data/x").pax_headers == {"SCHILY.xattr.user.note": "kept"}
        assert tar.getmember("bin/su").pax_headers == {}  # PAX only where needed


def test_output_is_sorted_bytewise_with_directories_first(tmp_path):
    layer = [entry("b", data=b""), entry("a-c", data=b""), entry("a", "dir"),
             entry("a/z", data=b""), entry("a/b", "dir"), entry("a/b/c", data=b"")]
    assert paths(flatten(tmp_path, layer)) == ["a", "a-c", "a/b", "a/b/c", "a/z", "b"]


def test_a_hard_link_is_kept_while_its_target_survives(tmp_path):
    layer = [entry("usr", "dir"), entry("usr/z-tool", data=b"tool", mode=0o755),
             entry("usr/a-alias", "hardlink", link="usr/z-tool")]
    out = members(flatten(tmp_path, layer))
    # The first path in output order holds the content; the other links to it.
    assert out["usr/a-alias"][0] == tarfile.REGTYPE and out["usr/a-alias"][-1] == b"tool"
    assert out["usr/z-tool"][0] == tarfile.LNKTYPE and out["usr/z-tool"][7] == "usr/a-alias"
    assert out["usr/a-alias"][1] == 0o755


def test_a_hard_link_whose_target_was_whited_out_becomes_the_file(tmp_path):
    lower = [entry("usr", "dir"), entry("usr/tool", data=b"tool", mode=0o755),
             entry("usr/alias", "hardlink", link="usr/tool")]
    upper = [entry("usr", "dir"), entry("usr/.wh.tool")]
    out = members(flatten(tmp_path, lower, upper))
    assert "usr/tool" not in out
    assert out["usr/alias"][:2] == (tarfile.REGTYPE, 0o755) and out["usr/alias"][-1] == b"tool"
    # Replaced rather than deleted: the link keeps the old content, as on a real filesystem.
    out = members(flatten(tmp_path, lower, [entry("usr/tool", data=b"new")]))
    assert out["usr/alias"][-1] == b"tool" and out["usr/tool"][-1] == b"new"


def test_a_hard_link_to_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="hard link usr/alias names 'usr/none'"):
        flatten(tmp_path, [entry("usr", "dir"), entry("usr/alias", "hardlink", link="usr/none")])


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_layers_flatten_like_plain_ones(tmp_path, compression):
    upper = [entry("etc", "dir"), entry("etc/.wh.gone"), entry("etc/new", data=b"n" * 100000)]
    zstd = zstd_binary() if compression == "zstd" else None
    plain = flatten(tmp_path, BASE, upper)
    assert flatten(tmp_path, BASE, upper, compression=compression, zstd=zstd) == plain
    # Nothing is left in the scratch directory but the layers.
    assert all(name.startswith("layer-") for name in os.listdir(tmp_path))


def test_two_runs_give_the_same_bytes(tmp_path):
    upper = [entry("var/cache/.wh..wh..opq"), entry("etc/.wh.gone"),
             entry("x" * 120 + "/long-name-" + "y" * 120, data=b"long path")]
    first, second = flatten(tmp_path, BASE, upper), flatten(tmp_path, BASE, upper)
    assert first == second
    assert members(first)["x" * 120 + "/long-name-" + "y" * 120][-1] == b"long path"


def test_assemble_writes_rootfs_and_reports_the_image(tmp_path):
    """Through the `assemble` subcommand: the FORMATS row; the metadata is the OCI image's."""
    dirs = [write_layer(tmp_path / f"l{i}", layer_tar(*entries))
            for i, entries in enumerate([BASE, [entry("etc/.wh.gone")]])]
    spec = {"layers": [{"dir": d, "comment": d} for d in dirs],
            "config": {"architecture": "amd64", "os": "linux",
                       "created": "1970-01-01T00:00:01Z", "config": {}},
            "repository": "app/image", "tag": "v1"}
    results = {}
    for fmt in ("rootfs", "oci-archive"):
        (tmp_path / f"{fmt}.json").write_text(json.dumps({**spec, "format": fmt}))
        argv = ["assemble", "--spec", str(tmp_path / f"{fmt}.json"),
                "--out", str(tmp_path / "dist" / f"{fmt}.tar"),
                "--metadata", str(tmp_path / f"{fmt}.meta.json")]
        assert core_cli.main(argv) == 0
        results[fmt] = json.loads((tmp_path / f"{fmt}.meta.json").read_text())
    assert results["rootfs"] == results["oci-archive"]
    out = (tmp_path / "dist" / "rootfs.tar").read_bytes()
    assert "etc/gone" not in paths(out) and "opt/app/bin" in paths(out)
    assert sorted(os.listdir(tmp_path / "dist")) == ["oci-archive.tar", "rootfs.tar"]


def test_a_zstd_layer_without_the_binary_fails_leaving_nothing(tmp_path):
    directory = write_layer(tmp_path / "l0", layer_tar(*BASE), "zstd")
    (tmp_path / "spec.json").write_text(json.dumps({
        "format": "rootfs", "layers": [{"dir": directory, "comment": "zstd"}],
        "config": {"architecture": "amd64", "os": "linux",
                   "created": "1970-01-01T00:00:01Z", "config": {}},
        "repository": "app/image", "tag": "v1"}))
    out = tmp_path / "dist" / "rootfs.tar"
    argv = ["assemble", "--spec", str(tmp_path / "spec.json"), "--out", str(out),
            "--metadata", str(tmp_path / "meta.json")]
    assert core_cli.main(argv) == 1
    assert os.listdir(tmp_path / "dist") == []


# Corrupt layers: tarfile would stop at the fault as at the archive's end and write a shorter
# tree, exit 0 (umoci refuses such a layer). Each is an error naming the layer, and no output.

THREE = [entry("a", data=b"first"), entry("b", data=b"second"), entry("c", data=b"third")]


def assemble_rootfs(tmp_path, layer_dirs, out) -> int:
    """`assemble`'s exit code for a rootfs of `layer_dirs`."""
    (tmp_path / "spec.json").write_text(json.dumps({
        "format": "rootfs", "layers": [{"dir": d, "comment": d} for d in layer_dirs],
        "config": {"architecture": "amd64", "os": "linux",
                   "created": "1970-01-01T00:00:01Z", "config": {}},
        "repository": "app/image", "tag": "v1"}))
    return core_cli.main(["assemble", "--spec", str(tmp_path / "spec.json"), "--out", str(out)])


def bad_header_mid_way() -> bytes:
    tar = bytearray(layer_tar(*THREE))  # a's header and data, then b's header at byte 1024
    tar[1024 + 148:1024 + 156] = b"0000000\0"  # b's checksum
    return bytes(tar)


def bad_pax_size() -> bytes:
    info, data = entry("b", data=b"b's contents, which tarfile then reads as a header")
    info.pax_headers = {"size": "twelve"}
    tar = layer_tar(THREE[0], (info, data), THREE[2])
    assert b"size=twelve" in tar
    return tar


def truncated_mid_header() -> bytes:
    return layer_tar(*THREE)[:2048 + 300]  # into c's header


def truncated_data() -> bytes:
    return layer_tar(*THREE)[:2048 + 512 + 3]  # into c's contents


def garbage_after_the_end() -> bytes:
    tar = layer_tar(*THREE)
    return tar + b"\0" * 512 + b"d" * 512


@pytest.mark.parametrize(
    "tar, message",
    [
        (bad_header_mid_way, r"layer 1 \(.*\): bad tar header at byte 1024"),
        (bad_pax_size, r"layer 1 \(.*\): 'b' has PAX size 'twelve', not a number"),
        (truncated_mid_header, r"layer 1 \(.*\): the tar is truncated at byte 2048"),
        (truncated_data, r"layer 1 \(.*\): the tar ends at byte 3072 without its end-of-archive"),
        (garbage_after_the_end, r"layer 1 \(.*\): data follows the tar's end-of-archive block"),
    ],
)
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_corrupt_layer_tar_is_an_error_naming_the_layer(tmp_path, capsys, tar, message,
                                                          compression):
    layers = [write_layer(tmp_path / "l0", layer_tar(*BASE)),
              write_layer(tmp_path / "l1", tar(), compression)]
    out = tmp_path / "dist" / "rootfs.tar"
    assert assemble_rootfs(tmp_path, layers, out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert os.listdir(tmp_path / "dist") == []


def tamper_layer_json(directory, **changes) -> str:
    path = os.path.join(directory, "layer.json")
    with open(path) as f:
        info = json.load(f)
    with open(path, "w") as f:
        json.dump({**info, **changes}, f)
    return directory


WRONG = "sha256:" + "0" * 64


@pytest.mark.parametrize(
    "compression, changes, message",
    [
        ("none", {"digest": WRONG, "diff_id": WRONG},
         r"its blob digest is sha256:\w+, layer.json says sha256:0+; its diff_id is"),
        ("gzip", {"digest": WRONG}, r"its blob digest is sha256:\w+, layer.json says sha256:0+$"),
        ("gzip", {"diff_id": WRONG}, r": its diff_id is sha256:\w+, layer.json says sha256:0+$"),
    ],
)
def test_a_layer_unlike_its_layer_json_is_an_error(tmp_path, capsys, compression, changes,
                                                   message):
    layers = [write_layer(tmp_path / "l0", layer_tar(*BASE)),
              tamper_layer_json(write_layer(tmp_path / "l1", layer_tar(*THREE), compression),
                                **changes)]
    out = tmp_path / "dist" / "rootfs.tar"
    assert assemble_rootfs(tmp_path, layers, out) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: layer \S+/l1 does not match its layer.json: ", err), err
    assert re.search(message, err.strip()), err
    assert os.listdir(tmp_path / "dist") == []


def test_merged_paths_list_what_a_container_of_the_layers_sees(tmp_path):
    """A base Strata did not build: its layers' paths, whiteouts applied, for the shell's check
    of the programs an image on it starts; written by `base-paths` from a base dir."""
    from strata.core.oci import baseimage

    upper = [entry(".wh.var"), entry("etc/.wh.gone"), entry("bin", "symlink", link="usr/bin"),
             entry("usr/bin/tool", data=b"t", mode=0o755),
             entry("usr/bin/again", "hardlink", link="usr/bin/tool")]
    dirs = [write_layer(tmp_path / f"layer-{i}", layer_tar(*entries), compression)
            for i, (entries, compression) in enumerate([(BASE, "gzip"), (upper, "none")])]
    layers = [load_layer(LayerRef(d)) for d in dirs]
    listed = rootfs.merged_paths(layers, str(tmp_path))
    assert listed == [
        ["bin", "symlink", 0o644, "usr/bin"],
        ["etc", "dir", 0o755, ""],
        ["etc/keep", "file", 0o644, ""],
        ["opt", "dir", 0o755, ""],
        ["opt/app", "dir", 0o755, ""],
        ["opt/app/bin", "file", 0o644, ""],
        ["opt/app/lib", "dir", 0o755, ""],
        ["opt/app/lib/a.so", "file", 0o644, ""],
        ["usr", "dir", 0o755, ""],  # implied by usr/bin/tool
        ["usr/bin", "dir", 0o755, ""],
        ["usr/bin/again", "file", 0o755, ""],
        ["usr/bin/tool", "file", 0o755, ""],
    ]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [layer.info["diff_id"] for layer in layers]}}).encode()
    baseimage.write_base_dir(config, dirs, str(tmp_path / "base"))
    out = tmp_path / "paths.json"
    assert core_cli.main(["base-paths", "--base", str(tmp_path / "base"), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == listed
