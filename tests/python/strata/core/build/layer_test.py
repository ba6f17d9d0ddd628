import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import strata.core
from strata.core.__main__ import layer_sources
from strata.core.cli import main
from strata.core.build import layer, parts
from strata.core.build.spec import JsonTuple, LayerSpec


def build_layer(spec: dict, sandbox_root, out_dir) -> dict:
    """The `layer` subcommand's work, on a spec as JSON data (what the rules write)."""
    return layer.build_layer(LayerSpec.from_json(spec), sandbox_root, out_dir)


ZSTD = "/usr/bin/zstd"
BIG = bytes(range(256)) * 5000  # > 1 MiB

CONTRACT_SPEC = {
    "settings": {"mtime": 1, "uid": 0, "gid": 0, "uname": "root", "gname": "root",
                 "compression": "none", "zstd": None},
    "trees": [{"source": "nodes/3", "dest": "app", "executables": ["bin/hello"]}],
    "entries": [
        {"path": "tmp", "type": "dir", "mode": 1023},
        {"path": "bin/sh", "type": "symlink", "target": "busybox"},
        {"path": "etc/motd", "type": "file", "source": "custom/motd", "mode": 420},
    ],
}

# (path, type, mode, content or target) in the order the layer must hold them.
CONTRACT_LAYER = [
    ("app", "dir", 0o755, None),
    ("app/bin", "dir", 0o755, None),
    ("app/bin/hello", "file", 0o755, b"#!/bin/sh\necho hello\n"),
    ("app/bin/hi", "symlink", 0o777, "hello"),
    ("app/lib", "dir", 0o755, None),
    ("app/lib/big.bin", "file", 0o644, BIG),
    ("app/lib/hard", "file", 0o644, b"data\n"),
    ("app/lib/data", "file", 0o644, b"data\n"),
    ("app/lib/empty-file", "file", 0o644, b""),
    ("app/lib/Ωmega", "file", 0o644, b"unicode\n"),
    ("app/share", "dir", 0o755, None),
    ("app/share/empty", "dir", 0o755, None),
    ("bin", "dir", 0o755, None),
    ("bin/sh", "symlink", 0o777, "busybox"),
    ("etc", "dir", 0o755, None),
    ("etc/motd", "file", 0o644, b"Welcome\n"),
    ("tmp", "dir", 0o1777, None),
]
CONTRACT_LAYER.sort(key=lambda e: e[0].encode())


def make_sandbox(root: Path, umask: int = 0o022, mtime: int = 1_600_000_000) -> Path:
    """The contract example's inputs, created under `umask` with every mtime set to `mtime`."""
    old = os.umask(umask)
    try:
        tree = root / "nodes/3"
        for path, kind, mode, value in CONTRACT_LAYER:
            if not path.startswith("app/") or path == "app/lib/hard":
                continue
            target = tree / path[len("app/"):]
            if kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
            elif kind == "symlink":
                target.symlink_to(value)
            else:
                target.write_bytes(value)
                if mode == 0o755:
                    target.chmod(0o777 & ~umask)
        os.link(tree / "lib/data", tree / "lib/hard")
        (root / "custom").mkdir()
        (root / "custom/motd").write_bytes(b"Welcome\n")
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    finally:
        os.umask(old)
    return root


def read_layer(path: Path):
    with tarfile.open(path) as tar:
        return [
            (m.name, "dir" if m.isdir() else "symlink" if m.issym() else "file", m.mode,
             m.linkname if m.issym() else tar.extractfile(m).read() if m.isfile() else None)
            for m in tar.getmembers()
        ]


def spec_with(**changes):
    return {**CONTRACT_SPEC, "settings": {**CONTRACT_SPEC["settings"], **changes}}


def test_contract_example(tmp_path):
    sandbox = make_sandbox(tmp_path / "sandbox")
    result = build_layer(CONTRACT_SPEC, sandbox, tmp_path / "out")
    blob = (tmp_path / "out/layer.tar").read_bytes()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    assert result == {"diff_id": digest, "size": len(blob), "blob": "layer.tar", "digest": digest,
                      "blob_size": len(blob), "compression": "none", "entries": len(CONTRACT_LAYER)}
    assert json.loads((tmp_path / "out/layer.json").read_text()) == result
    assert read_layer(tmp_path / "out/layer.tar") == CONTRACT_LAYER
    with tarfile.open(tmp_path / "out/layer.tar") as tar:
        owners = {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in tar}
    assert owners == {(0, 0, "root", "root", 1)}


def test_paths_list_every_entry_of_the_layer(tmp_path, monkeypatch):
    """`--paths` lists what the tar holds, for the shell's program checks."""
    monkeypatch.chdir(make_sandbox(tmp_path / "sandbox"))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(CONTRACT_SPEC))
    assert main(["layer", "--spec", str(spec), "--out", str(tmp_path / "out"),
                 "--paths", str(tmp_path / "paths.json")]) == 0
    listed = json.loads((tmp_path / "paths.json").read_text())
    assert listed == [[path, kind, mode, value if kind == "symlink" else ""]
                      for path, kind, mode, value in CONTRACT_LAYER]


def test_gnu_tar_extracts_the_layer(tmp_path):
    build_layer(CONTRACT_SPEC, make_sandbox(tmp_path / "sandbox"), tmp_path / "out")
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xpf", str(tmp_path / "out/layer.tar"), "-C", str(dest)], check=True)
    assert (dest / "app/lib/Ωmega").read_bytes() == b"unicode\n"
    assert os.readlink(dest / "bin/sh") == "busybox"
    assert (dest / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert os.access(dest / "app/bin/hello", os.X_OK)
    assert (dest / "app/lib/big.bin").read_bytes() == BIG


def test_same_bytes_whatever_the_umask_and_mtimes(tmp_path):
    spec = spec_with(compression="gzip")
    first = build_layer(spec, make_sandbox(tmp_path / "a"), tmp_path / "o1")
    second = build_layer(spec, make_sandbox(tmp_path / "b", umask=0o077, mtime=5), tmp_path / "o2")
    assert first == second
    for name in ("layer.tar.gz", "layer.json"):
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()


def test_pinned_digest_of_a_small_layer(tmp_path):
    (tmp_path / "t/bin").mkdir(parents=True)
    (tmp_path / "t/bin/hello").write_bytes(b"hello\n")
    spec = {"settings": {"mtime": 1}, "trees": [{"source": "t", "dest": "/", "executables": []}],
            "entries": [{"path": "bin/sh", "type": "symlink", "target": "hello"}]}
    result = build_layer(spec, tmp_path, tmp_path / "out")
    # Pins the exact bytes: any change in the layer's encoding must be deliberate.
    assert result["diff_id"] == (
        "sha256:156a3254991873f39b5b8f2668f7131bde5f19721d100b5822227935d42cc17c"
    )
    assert result["entries"] == 3


def test_gzip_and_zstd_blobs_hold_the_same_tar(tmp_path):
    sandbox = make_sandbox(tmp_path / "sandbox")
    plain = build_layer(CONTRACT_SPEC, sandbox, tmp_path / "none")
    tar = (tmp_path / "none/layer.tar").read_bytes()
    gz = build_layer(spec_with(compression="gzip"), sandbox, tmp_path / "gz")
    blob = (tmp_path / "gz/layer.tar.gz").read_bytes()
    assert gzip.decompress(blob) == tar
    assert (gz["diff_id"], gz["size"]) == (plain["diff_id"], plain["size"])
    assert gz["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest() != plain["digest"]
    assert (gz["blob"], gz["blob_size"], gz["compression"]) == ("layer.tar.gz", len(blob), "gzip")
    if not Path(ZSTD).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ZSTD} is missing: CI must exercise zstd compression")
        pytest.skip(f"{ZSTD} is not installed")
    zst = build_layer(spec_with(compression="zstd", zstd=ZSTD), sandbox, tmp_path / "zst")
    blob = (tmp_path / "zst/layer.tar.zst").read_bytes()
    assert subprocess.run([ZSTD, "-dc"], input=blob, capture_output=True, check=True).stdout == tar
    assert zst["diff_id"] == plain["diff_id"] and zst["blob"] == "layer.tar.zst"
    assert zst["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()


def test_paths_are_normalised_and_sorted_bytewise(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t/f").write_bytes(b"x")
    files = ["/a-b", "a.b", "ä", "Z", "a/b/c", "/./a/b0"]
    spec = {"trees": [{"source": "./t/", "dest": "/r/./", "executables": []}],
            "entries": [{"path": "./a//b/", "type": "dir"}]
            + [{"path": name, "type": "file", "source": "t//f", "mode": 0o644}
               for name in files]}
    build_layer(spec, tmp_path, tmp_path / "out")
    got = [name for name, *_ in read_layer(tmp_path / "out/layer.tar")]
    assert got == ["Z", "a", "a-b", "a.b", "a/b", "a/b/c", "a/b0", "r", "r/f", "ä"]
    assert got == sorted(got, key=str.encode)


def test_empty_spec_is_an_empty_archive(tmp_path):
    result = build_layer({}, tmp_path, tmp_path / "out")
    assert (tmp_path / "out/layer.tar").read_bytes() == bytes(1024)
    assert result["entries"] == 0 and result["size"] == 1024


@pytest.mark.parametrize("spec, message", [
    ({"entries": [{"path": "a/../b", "type": "dir"}]}, r"entries\[0\]: path 'a/../b' escapes"),
    ({"entries": [{"path": "/../etc", "type": "dir"}]}, r"path '/../etc' escapes"),
    ({"entries": [{"path": "/", "type": "dir"}]}, r"path '/' names the image root"),
    ({"trees": [{"source": "t", "dest": "../x", "executables": []}]}, r"trees\[0\]: path '../x' escapes"),
    ({"trees": [{"source": "../t", "dest": "x", "executables": []}]}, r"trees\[0\]: path '../t' escapes"),
    ({"trees": [{"source": "/etc", "dest": "x", "executables": []}]}, r"source '/etc' must be relative"),
    ({"trees": [{"source": "missing", "dest": "x", "executables": []}]}, r"source 'missing' is not a directory"),
    ({"entries": [{"path": "f", "type": "file", "source": "nope", "mode": 0o644}]}, r"cannot read source 'nope'"),
    ({"entries": [{"path": "f", "type": "fifo"}]}, r"type must be"),
    ({"entries": [{"path": "d", "type": "dir", "mode": "755"}]}, r"mode must be an integer"),
    ({"entries": [{"path": "d", "type": "dir", "owner": 1}]}, r"unknown keys \['owner'\]"),
    ({"settings": {"compression": "xz"}}, r"unknown compression 'xz'"),
    ({"settings": {"mtime": "1"}}, r"mtime has the wrong type"),
    # What a tar header cannot hold fails as the spec is read, by the tar writer's rules.
    ({"settings": {"mtime": -1}}, r"settings: mtime must be from 1970-01-01T00:00:00Z"),
    ({"settings": {"uid": 2097152}}, r"settings: uid must be an integer in 0..2097151"),
    ({"settings": {"uname": ""}}, r"settings: uname must be 1 to 31 ASCII characters"),
])
def test_invalid_specs_are_rejected(tmp_path, spec, message):
    (tmp_path / "t").mkdir()
    with pytest.raises(ValueError, match=message):
        build_layer(spec, tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def two_trees(tmp_path, first: bytes, second: bytes):
    for name, content in (("one", first), ("two", second)):
        (tmp_path / name / "etc").mkdir(parents=True)
        (tmp_path / name / "etc/conf").write_bytes(content)
    return {"trees": [{"source": "one", "dest": "", "executables": []},
                      {"source": "two", "dest": "/", "executables": []}]}


def test_conflicting_files_name_the_path_and_both_sources(tmp_path):
    with pytest.raises(ValueError) as error:
        build_layer(two_trees(tmp_path, b"a\n", b"b\n"), tmp_path, tmp_path / "out")
    assert "conflicting entries for 'etc/conf'" in str(error.value)
    assert "one/etc/conf" in str(error.value) and "two/etc/conf" in str(error.value)


def test_identical_duplicates_are_written_once(tmp_path):
    result = build_layer(two_trees(tmp_path, b"same\n", b"same\n"), tmp_path, tmp_path / "out")
    assert [name for name, *_ in read_layer(tmp_path / "out/layer.tar")] == ["etc", "etc/conf"]
    assert result["entries"] == 2


@pytest.mark.parametrize("entry, message", [
    ({"path": "etc/conf", "type": "file", "source": "one/etc/conf", "mode": 0o600},
     r"conflicting entries for 'etc/conf': file \(mode 0644, 2 bytes\) from one/etc/conf vs "
     r"file \(mode 0600, 2 bytes\) from entries\[0\] \(source one/etc/conf\)"),
    ({"path": "etc", "type": "dir", "mode": 0o700}, r"conflicting entries for 'etc'"),
    ({"path": "etc/conf", "type": "symlink", "target": "x"}, r"conflicting entries for 'etc/conf'"),
    ({"path": "etc/conf/x", "type": "dir"},
     r"'etc/conf' is a file .* from one/etc/conf but also the parent directory of 'etc/conf/x'"),
])
def test_other_conflicts(tmp_path, entry, message):
    spec = two_trees(tmp_path, b"a\n", b"a\n")
    spec["entries"] = [entry]
    with pytest.raises(ValueError, match=message):
        build_layer(spec, tmp_path, tmp_path / "out")


def test_a_symlink_cannot_be_a_parent(tmp_path):
    spec = {"entries": [{"path": "bin", "type": "symlink", "target": "usr/bin"},
                        {"path": "bin/sh", "type": "symlink", "target": "busybox"}]}
    with pytest.raises(ValueError, match="'bin' is a symlink to 'usr/bin' from entries\\[0\\]"):
        build_layer(spec, tmp_path, tmp_path / "out")


def test_special_files_are_rejected(tmp_path):
    (tmp_path / "t").mkdir()
    os.mkfifo(tmp_path / "t/pipe")
    with pytest.raises(ValueError, match="t/pipe: not a regular file, directory or symlink"):
        build_layer({"trees": [{"source": "t", "dest": "x", "executables": []}]}, tmp_path,
                    tmp_path / "out")


def test_names_that_are_not_utf8_are_rejected(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t").joinpath(os.fsdecode(b"bad\xff")).write_bytes(b"x")
    with pytest.raises(ValueError, match="is not valid UTF-8"):
        build_layer({"trees": [{"source": "t", "dest": "x", "executables": []}]}, tmp_path,
                    tmp_path / "out")


def standalone_core(where: Path) -> Path:
    """What the Pants rules materialise of the core for a layer Process."""
    core = Path(strata.core.__file__).parent
    (where / "strata").mkdir(parents=True)
    (where / "strata/__init__.py").write_bytes(b"")
    for name in layer_sources(core):
        (where / "strata/core" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(core / name, where / "strata/core" / name)
    return where


def run_layer(python: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The layer Process's program, `python -m strata.core.build`."""
    if not Path(python).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{python} is missing")
        pytest.skip(f"{python} is not installed")
    return subprocess.run([python, "-E", "-s", "-B", "-m", "strata.core.build", *args], cwd=cwd,
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)


PYTHONS = ["/usr/bin/python3.9", "/usr/bin/python3.11"]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_the_layer_program_is_standalone_and_identical_across_pythons(tmp_path, compression):
    if compression == "zstd" and not Path(ZSTD).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ZSTD} is missing: CI must exercise zstd compression")
        pytest.skip(f"{ZSTD} is not installed")
    sandbox = standalone_core(make_sandbox(tmp_path / "sandbox"))
    spec = spec_with(compression=compression, zstd=ZSTD if compression == "zstd" else None)
    (sandbox / "spec.json").write_text(json.dumps(spec))
    outputs = []
    for python in PYTHONS:
        out = f"out-{Path(python).name}"
        done = run_layer(python, sandbox, "--spec", "spec.json", "--out", out)
        assert (done.returncode, done.stderr) == (0, "")
        outputs.append({p.name: p.read_bytes() for p in sorted((sandbox / out).iterdir())})
    assert outputs[0] == outputs[1]
    meta = json.loads(outputs[0]["layer.json"])
    assert meta["digest"] == "sha256:" + hashlib.sha256(outputs[0][meta["blob"]]).hexdigest()
    assert meta["entries"] == len(CONTRACT_LAYER)


@pytest.mark.parametrize("python", PYTHONS)
def test_layer_errors_exit_1_and_usage_errors_2_with_one_line(tmp_path, python):
    sandbox = standalone_core(tmp_path)
    (sandbox / "conflict.json").write_text(json.dumps({"entries": [
        {"path": "a", "type": "dir"}, {"path": "a", "type": "symlink", "target": "b"}]}))
    (sandbox / "escape.json").write_text(json.dumps({"entries": [{"path": "../a", "type": "dir"}]}))
    for spec, message in (("conflict.json", "conflicting entries for 'a'"),
                          ("escape.json", "path '../a' escapes the image root"),
                          ("missing.json", "No such file or directory")):
        done = run_layer(python, sandbox, "--spec", spec, "--out", "out")
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and message in done.stderr
        assert done.stderr.startswith("strata.core.build: error: ")
    done = run_layer(python, sandbox, "--out", "out")
    assert done.returncode == 2
    assert done.stderr == "strata.core.build: error: the following arguments are required: --spec\n"
    done = run_layer(python, sandbox, "--spec", "conflict.json", "--out", "out", "nonsense")
    assert (done.returncode, done.stderr) == (
        2, "strata.core.build: error: unrecognized argument: nonsense\n")


def test_dispatcher_runs_layer_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps({"entries": [{"path": "d", "type": "dir"}]}))
    assert main(["layer", "--spec", "spec.json", "--out", "out"]) == 0
    assert json.loads((tmp_path / "out/layer.json").read_text())["entries"] == 1
    assert main([]) == 2 and "usage:" in capsys.readouterr().err


def test_file_modes_come_from_the_spec_never_from_the_sandbox(tmp_path):
    """In a Pants sandbox, large inputs are hardlinks into a store where every file is 0555:
    the spec's `executables` is what says a file is executable."""
    (tmp_path / "t/bin").mkdir(parents=True)
    for name, mode in (("data", 0o555), ("tool", 0o444), ("plain", 0o644)):
        (tmp_path / "t/bin" / name).write_bytes(name.encode())
        (tmp_path / "t/bin" / name).chmod(mode)
    spec = {"trees": [{"source": "t", "dest": "x", "executables": ["bin/tool", "./bin//tool"]}]}
    build_layer(spec, tmp_path, tmp_path / "out")
    modes = {name: mode for name, kind, mode, _ in read_layer(tmp_path / "out/layer.tar")
             if kind == "file"}
    assert modes == {"x/bin/data": 0o644, "x/bin/plain": 0o644, "x/bin/tool": 0o755}


@pytest.mark.parametrize("executables, message", [
    (["bin"], r"trees\[0\]: executables names what is not a file of the tree: \['x/bin'\]"),
    (["bin/missing"], r"not a file of the tree: \['x/bin/missing'\]"),
    (["../up"], r"trees\[0\].executables: path '../up' escapes"),
    ("bin/tool", r"trees\[0\]: executables must be a list"),
])
def test_executables_must_name_files_of_the_tree(tmp_path, executables, message):
    (tmp_path / "t/bin").mkdir(parents=True)
    (tmp_path / "t/bin/tool").write_bytes(b"tool")
    spec = {"trees": [{"source": "t", "dest": "x", "executables": executables}]}
    with pytest.raises(ValueError, match=message):
        build_layer(spec, tmp_path, tmp_path / "out")


def test_trees_and_file_entries_must_state_their_modes(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t/f").write_bytes(b"f")
    with pytest.raises(ValueError, match=r"trees\[0\]: missing keys \['executables'\]"):
        build_layer({"trees": [{"source": "t", "dest": ""}]}, tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match=r"entries\[0\]: missing keys \['mode'\]"):
        build_layer({"entries": [{"path": "f", "type": "file", "source": "t/f"}]}, tmp_path,
                    tmp_path / "out")


def test_every_module_of_the_parts_package_is_a_part_with_an_item_type_and_a_step():
    names = sorted(path.stem for path in Path(parts.__file__).parent.glob("[!_]*.py"))
    assert names == ["debs", "entries", "nars", "python_sources", "trees", "venvs", "wheels"]
    for name in names:
        assert parts.exists(name)
        module = parts.load(name)
        assert callable(module.add) and issubclass(module.Item, JsonTuple), name


@pytest.mark.parametrize("key", ["os", "layer", "__init__", "_private", "trees.x", "../spec"])
def test_a_key_naming_no_part_module_is_refused(key):
    with pytest.raises(ValueError, match=r"layer spec: missing keys \[\], unknown keys"):
        LayerSpec.from_json({key: []})


def test_parts_are_added_in_the_spec_s_order_which_changes_no_byte(tmp_path):
    # The same entry from two parts, in either order: the same layer.
    (tmp_path / "t").mkdir()
    (tmp_path / "t/f").write_bytes(b"f")
    tree = [{"source": "t", "dest": "", "executables": []}]
    entry = [{"path": "f", "type": "file", "source": "t/f", "mode": 0o644}]
    first = build_layer({"trees": tree, "entries": entry}, tmp_path, tmp_path / "a")
    second = build_layer({"entries": entry, "trees": tree}, tmp_path, tmp_path / "b")
    assert first == second


def test_with_a_blob_store_the_blob_goes_there_and_emit_gives_it_back(tmp_path, monkeypatch):
    """`--blob-store`: layer.json names no blob file, the blob is the store's; `--expect` writes
    that blob out as a file: copied from the store, or written again when the store lost it."""
    sandbox = make_sandbox(tmp_path / "sandbox")
    plain = build_layer(CONTRACT_SPEC, sandbox, tmp_path / "plain")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(CONTRACT_SPEC))
    monkeypatch.chdir(sandbox)
    store = tmp_path / "store"
    assert main(["layer", "--spec", str(spec), "--out", str(tmp_path / "out"),
                 "--blob-store", str(store)]) == 0
    described = json.loads((tmp_path / "out/layer.json").read_text())
    assert "blob" not in described
    assert described == {k: v for k, v in plain.items() if k != "blob"}
    blob = store / "sha256" / described["digest"].split(":")[1]
    assert blob.read_bytes() == (tmp_path / "plain/layer.tar").read_bytes()
    assert json.loads((tmp_path / "out/blob-stamp.json").read_text())[1] == blob.stat().st_ino
    assert sorted(os.listdir(tmp_path / "out")) == ["blob-stamp.json", "layer.json"]

    for lost in (False, True):
        if lost:
            blob.unlink()
        out = tmp_path / f"emitted-{lost}"
        assert main(["layer", "--spec", str(spec), "--out", str(out), "--blob-store",
                     str(store), "--expect", str(tmp_path / "out/layer.json")]) == 0
        assert (out / "layer.tar").read_bytes() == (tmp_path / "plain/layer.tar").read_bytes()
        assert json.loads((out / "layer.json").read_text()) == plain

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**described, "diff_id": "sha256:" + "0" * 64}))
    assert not blob.exists()  # lost above: written again, and compared
    with pytest.raises(ValueError, match="the layer written again differs"):
        layer.emit_layer(LayerSpec.from_json(CONTRACT_SPEC), sandbox, tmp_path / "bad",
                         layer.BlobStore(store), json.loads(wrong.read_text()))
