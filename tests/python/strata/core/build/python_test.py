"""Python venv layers (strata.core.build.python): a venv's skeleton, distributions from pex's
installed-wheel chroots, first-party sources and their pycs.

The layers are unpacked and run: their venv is placed at a path of this machine equal to its
image path (under the test's tmp dir), so shebangs, pyvenv.cfg and pycs' file names mean what
they mean in the image, and the venv's python is this machine's python3.11."""

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import strata.core
from strata.core.__main__ import layer_sources
from strata.core.build import layer
from strata.core.build.spec import LayerSpec
from strata_harness.tools import unavailable

PYTHON = "/usr/bin/python3.11"  # Debian's, as in the demo image
VERSION = "3.11"
DIST = "fake-1.0"
SITE = "lib/python3.11/site-packages"

TOOL_SCRIPT = b"#!python\nimport sys\nfrom fakepkg.cli import main\nsys.exit(main())\n"
CLI_PY = b"def main():\n    print('fake cli')\n    return 3\n"

# (zip name, content or None for a directory entry, mode) as pex writes a chroot, plus what
# pex's chroots also hold and an install must ignore: a bogus `../` entry and bytecode.
FAKE_CHROOT = [
    ("../", None, 0o755),
    (".layout.json", json.dumps({"record_relpath": f"{DIST}.dist-info/RECORD",
                                 "stash_dir": ".prefix"}).encode(), 0o644),
    ("fake.py", b"VALUE = 1\n", 0o644),
    ("fakepkg/", None, 0o755),
    ("fakepkg/__init__.py", b"", 0o644),
    ("fakepkg/cli.py", CLI_PY, 0o644),
    ("fakepkg/native.so", b"\x7fELF not really", 0o755),
    ("fakepkg/__pycache__/cli.cpython-311.pyc", b"stale", 0o644),
    ("fakepkg/old.pyc", b"stale", 0o644),
    (f"{DIST}.dist-info/INSTALLER", b"pip\n", 0o644),
    (f"{DIST}.dist-info/METADATA", b"Metadata-Version: 2.1\nName: fake\nVersion: 1.0\n", 0o644),
    (f"{DIST}.dist-info/REQUESTED", b"", 0o644),
    (f"{DIST}.dist-info/WHEEL", b"Wheel-Version: 1.0\nTag: py3-none-any\n", 0o644),
    (f"{DIST}.dist-info/entry_points.txt", b"[console_scripts]\ntool = fakepkg.cli:main\n",
     0o644),
    (".prefix/bin/tool", TOOL_SCRIPT, 0o755),
    (".prefix/bin/shell", b"#!/bin/sh\necho shell\n", 0o755),
    (".prefix/share/x/data.txt", b"data\n", 0o644),
    (".prefix/include/site/pythonX.Y/fake/h.h", b"/* header */\n", 0o644),
]


def make_chroot(path: Path, members=FAKE_CHROOT) -> Path:
    with zipfile.ZipFile(path, "w") as chroot:
        for name, content, mode in members:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            kind = 0 if mode > 0o7777 else 0o040000 if content is None else 0o100000
            info.external_attr = (kind | mode) << 16
            chroot.writestr(info, b"" if content is None else content)
    return path


def chroot_with(replaced: dict) -> list:
    """FAKE_CHROOT with some members' contents replaced (None removes one), or added."""
    members = [(name, replaced.get(name, content), mode) for name, content, mode in FAKE_CHROOT
               if not (name in replaced and replaced[name] is None)]
    known = {name for name, _, _ in FAKE_CHROOT}
    return members + [(name, content, 0o644) for name, content in replaced.items()
                      if name not in known and content is not None]


def venv_spec(venv: str, launchers=(), **parts) -> dict:
    return {"settings": {"compression": "none"},
            "venvs": [{"path": venv, "python": PYTHON, "version": VERSION,
                       "launchers": [list(launcher) for launcher in launchers]}], **parts}


def wheel(source: str, venv: str, bytecode: str = "none", version: str = VERSION,
          machine: str = "x86_64") -> dict:
    return {"source": source, "venv": venv, "version": version, "machine": machine,
            "bytecode": bytecode}


def build(spec: dict, sandbox: Path) -> Path:
    """The layer, written in this process (which is not CPython 3.11: no bytecode)."""
    layer.build_layer(LayerSpec.from_json(spec), sandbox, sandbox / "out")
    return sandbox / "out/layer.tar"


def members(tar_path: Path) -> dict:
    """{path: (kind, mode, content or link target)} of a layer."""
    with tarfile.open(tar_path) as tar:
        return {m.name: ("dir", m.mode, None) if m.isdir() else
                ("symlink", m.mode, m.linkname) if m.issym() else
                ("file", m.mode, tar.extractfile(m).read()) for m in tar.getmembers()}


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def place(tar_path: Path, root: Path) -> None:
    """Extracts the layer's entries under `root` (an image path that is also this machine's
    path) to where the image would hold them."""
    prefix = str(root).lstrip("/") + "/"
    with tarfile.open(tar_path) as tar:
        tar.extractall("/", [m for m in tar.getmembers() if m.name.startswith(prefix)])


def python311() -> str:
    if not Path(PYTHON).is_file():
        unavailable(f"{PYTHON} (Debian package python3.11) is not installed")
    return PYTHON


def standalone_core(sandbox: Path) -> Path:
    """What the rules materialise of the core in a layer Process's sandbox."""
    core = Path(strata.core.__file__).parent
    (sandbox / "strata").mkdir(parents=True)
    (sandbox / "strata/__init__.py").write_bytes(b"")
    for name in layer_sources(core):
        target = sandbox / "strata/core" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(core / name, target)
    return sandbox


def run_layer(sandbox: Path, spec: dict, out: str, python: str = PYTHON, flags=("-E",),
              env=None) -> subprocess.CompletedProcess:
    """The layer step as the rules run it: `python -E -s -S -B -m strata.core.build`."""
    (sandbox / f"{out}.json").write_text(json.dumps(spec))
    return subprocess.run(
        [python, *flags, "-s", "-S", "-B", "-m", "strata.core.build", "--spec", f"{out}.json",
         "--out", out],
        cwd=sandbox, env=env or {}, capture_output=True, text=True)


# --- the venv skeleton -----------------------------------------------------------------------

def test_venv_skeleton(tmp_path):
    entries = members(build(venv_spec("app/venv"), tmp_path))
    assert entries == {
        "app": ("dir", 0o755, None),
        "app/venv": ("dir", 0o755, None),
        "app/venv/bin": ("dir", 0o755, None),
        "app/venv/bin/python": ("symlink", 0o777, PYTHON),
        "app/venv/bin/python3": ("symlink", 0o777, PYTHON),
        "app/venv/bin/python3.11": ("symlink", 0o777, PYTHON),
        "app/venv/lib": ("dir", 0o755, None),
        "app/venv/lib/python3.11": ("dir", 0o755, None),
        f"app/venv/{SITE}": ("dir", 0o755, None),
        "app/venv/pyvenv.cfg": ("file", 0o644, b"home = /usr/bin\n"
                                b"include-system-site-packages = false\nversion = 3.11\n"),
    }


def test_launchers_run_with_the_venv_python(tmp_path):
    sources = tmp_path / "sandbox/src"
    (sources / "hello").mkdir(parents=True)
    (sources / "hello/__init__.py").write_text("")
    (sources / "hello/cli.py").write_text(
        "import sys\nclass App:\n    @staticmethod\n    def main():\n"
        "        print('cli', sys.argv[1:], sys.prefix)\n        return 7\n")
    (sources / "hello/run.py").write_text("import sys\nprint('run', __name__, sys.argv[1:])\n"
                                          "sys.exit(5)\n")
    venv = str(tmp_path / "venv").lstrip("/")
    spec = venv_spec(venv, [("cli", "hello.cli:App.main"), ("run", "hello.run")],
                     python_sources=[{"source": "src", "venv": venv, "version": VERSION,
                                      "bytecode": "none"}])
    tar_path = build(spec, tmp_path / "sandbox")
    entries = members(tar_path)
    assert entries[f"{venv}/bin/cli"][:2] == ("file", 0o755)
    assert entries[f"{venv}/bin/cli"][2].decode().splitlines()[:5] == [
        f"#!/{venv}/bin/python", "# -*- coding: utf-8 -*-", "import re", "import sys",
        "from hello.cli import App"]
    assert entries[f"{venv}/{SITE}/hello/run.py"][:2] == ("file", 0o644)
    python311()
    place(tar_path, tmp_path / "venv")
    done = subprocess.run([tmp_path / "venv/bin/cli", "a"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (7, f"cli ['a'] {tmp_path / 'venv'}\n")
    done = subprocess.run([tmp_path / "venv/bin/run", "b"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (5, "run __main__ ['b']\n")


@pytest.mark.parametrize("entry", ["hello.cli:", "hello-world", "hello:main()", "1up:main",
                                   "hello:main:x", "hello..cli"])
def test_launcher_entry_points_must_be_dotted_identifiers(tmp_path, entry):
    with pytest.raises(ValueError, match=rf"venvs\[0\] launcher 'x': entry point "
                                         rf"'{re.escape(entry)}' is not `module` or `module:"):
        build(venv_spec("app/venv", [("x", entry)]), tmp_path)


# --- spec parsing ----------------------------------------------------------------------------

GOOD_VENV = {"path": "/app/venv", "python": "/usr/bin/python3.11", "version": "3.11",
             "launchers": [["hello", "hello.main:main"]]}
GOOD_WHEEL = wheel("deps/six.whl", "/app/venv")
GOOD_SOURCES = {"source": "src", "venv": "app/venv", "version": "3.11", "bytecode": "none"}


def test_python_parts_parse_to_normalised_image_paths():
    spec = LayerSpec.from_json({"venvs": [GOOD_VENV], "wheels": [GOOD_WHEEL],
                                "python_sources": [GOOD_SOURCES]})
    parts = dict(spec.parts)
    assert parts["venvs"][0] == ("app/venv", "usr/bin/python3.11", "3.11",
                                 (("hello", "hello.main:main"),))
    assert parts["wheels"][0] == ("deps/six.whl", "app/venv", "3.11", "x86_64", "none")
    assert parts["python_sources"][0] == ("src", "app/venv", "3.11", "none")


@pytest.mark.parametrize("part, item, message", [
    ("venvs", {**GOOD_VENV, "version": "3"}, r"venvs\[0\]: version must be MAJOR.MINOR"),
    ("venvs", {**GOOD_VENV, "version": 3.11}, r"venvs\[0\]: version must be MAJOR.MINOR"),
    ("venvs", {**GOOD_VENV, "python": "/usr/../../python3"},
     r"venvs\[0\]: path '/usr/../../python3' escapes the image root"),
    ("venvs", {**GOOD_VENV, "launchers": [["bin/x", "m:f"]]},
     r"venvs\[0\]: a launcher is \[name, entry point\]"),
    ("venvs", {**GOOD_VENV, "launchers": [["x"]]}, r"venvs\[0\]: a launcher is \[name"),
    ("venvs", {**GOOD_VENV, "path": "../venv"}, r"venvs\[0\]: path '../venv' escapes"),
    ("wheels", {**GOOD_WHEEL, "bytecode": "yes"}, r"wheels\[0\]: bytecode must be one of"),
    ("wheels", {**GOOD_WHEEL, "version": "three.eleven"},
     r"wheels\[0\]: version must be MAJOR.MINOR"),
    ("wheels", {**GOOD_WHEEL, "machine": ""}, r"wheels\[0\]: machine must be a machine name"),
    ("wheels", {**GOOD_WHEEL, "source": "/abs.whl"}, r"wheels\[0\]: source '/abs.whl' must be"),
    ("python_sources", {**GOOD_SOURCES, "bytecode": "always"},
     r"python_sources\[0\]: bytecode must be one of"),
    ("python_sources", {**GOOD_SOURCES, "venv": ""}, r"python_sources\[0\]: path '' names"),
    ("python_sources", {**GOOD_SOURCES, "extra": 1}, r"python_sources\[0\]: .*unknown keys"),
])
def test_bad_python_parts_are_rejected(part, item, message):
    with pytest.raises(ValueError, match=message):
        LayerSpec.from_json({part: [item]})


# --- wheels ----------------------------------------------------------------------------------

def test_fake_chroot_installs_as_pip_would(tmp_path):
    make_chroot(tmp_path / "fake.whl")
    tar_path = build(venv_spec("app/venv", wheels=[wheel("fake.whl", "app/venv")]), tmp_path)
    entries = members(tar_path)
    site = f"app/venv/{SITE}"
    files = {path: (mode, content) for path, (kind, mode, content) in entries.items()
             if kind == "file" and path != "app/venv/pyvenv.cfg"}
    record = files.pop(f"{site}/{DIST}.dist-info/RECORD")
    assert files == {
        "app/venv/bin/tool": (0o755, TOOL_SCRIPT.replace(b"#!python", b"#!/app/venv/bin/python")),
        "app/venv/bin/shell": (0o755, b"#!/bin/sh\necho shell\n"),
        "app/venv/share/x/data.txt": (0o644, b"data\n"),
        "app/venv/include/site/python3.11/fake/h.h": (0o644, b"/* header */\n"),
        f"{site}/fake.py": (0o644, b"VALUE = 1\n"),
        f"{site}/fakepkg/__init__.py": (0o644, b""),
        f"{site}/fakepkg/cli.py": (0o644, CLI_PY),
        f"{site}/fakepkg/native.so": (0o755, b"\x7fELF not really"),
        f"{site}/{DIST}.dist-info/INSTALLER": (0o644, b"strata\n"),
        f"{site}/{DIST}.dist-info/METADATA":
            (0o644, b"Metadata-Version: 2.1\nName: fake\nVersion: 1.0\n"),
        f"{site}/{DIST}.dist-info/REQUESTED": (0o644, b""),
        f"{site}/{DIST}.dist-info/WHEEL": (0o644, b"Wheel-Version: 1.0\nTag: py3-none-any\n"),
        f"{site}/{DIST}.dist-info/entry_points.txt":
            (0o644, b"[console_scripts]\ntool = fakepkg.cli:main\n"),
    }
    assert not any(".." in path.split("/") or "pycache" in path or path.endswith(".pyc")
                   for path in entries)
    assert record[0] == 0o644
    rows = list(csv.reader(io.StringIO(record[1].decode())))
    assert record[1].endswith(b"\n") and b"\r" not in record[1]
    assert rows == sorted(rows)
    expected = {os.path.relpath(path, site): [record_hash(content), str(len(content))]
                for path, (mode, content) in files.items()}
    assert {path: [digest, size] for path, digest, size in rows} == {
        **expected, f"{DIST}.dist-info/RECORD": ["", ""]}
    assert "../../../bin/tool" in expected


@pytest.mark.parametrize("name", ["../evil.py", "fakepkg/../../evil.py", "/etc/evil"])
def test_chroot_entries_cannot_escape(tmp_path, name):
    make_chroot(tmp_path / "fake.whl", chroot_with({name: b"evil\n"}))
    with pytest.raises(ValueError, match=rf"wheels\[0\] \(fake.whl\): the chroot's entry "
                                         rf"'{name}' escapes it"):
        build(venv_spec("app/venv", wheels=[wheel("fake.whl", "app/venv")]), tmp_path)


@pytest.mark.parametrize("members, message", [
    ([*FAKE_CHROOT, ("fake.py", b"VALUE = 2\n", 0o644)],
     "the chroot holds 'app/venv/lib/python3.11/site-packages/fake.py' twice"),
    ([*FAKE_CHROOT, ("link.py", b"fake.py", 0o120777)],
     "the chroot's entry 'link.py' is a symlink"),
    (chroot_with({".layout.json": b'{"stash_dir": ".prefix"}'}),
     "not a pex installed-wheel chroot: no valid .layout.json"),
    (chroot_with({".layout.json": json.dumps({"stash_dir": "..",
                                              "record_relpath": f"{DIST}.dist-info/RECORD"})}),
     ".layout.json holds an unexpected layout"),
])
@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile's, writing the first case
def test_malformed_chroots_are_refused(tmp_path, members, message):
    make_chroot(tmp_path / "fake.whl", members)
    with pytest.raises(ValueError, match=rf"^wheels\[0\] \(fake.whl\): {re.escape(message)}"):
        build({"wheels": [wheel("fake.whl", "app/venv")]}, tmp_path)


@pytest.mark.parametrize("tags, version, machine", [
    ("py2.py3-none-any", "3.11", "x86_64"),
    ("py311-none-any", "3.11", "x86_64"),
    ("cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "3.11", "x86_64"),
    ("cp38-abi3-manylinux_2_28_aarch64", "3.11", "aarch64"),
    ("cp39-none-linux_x86_64", "3.9", "x86_64"),
    ("cp310-cp310-manylinux_2_17_x86_64\nTag: cp311-cp311-manylinux_2_17_x86_64", "3.11",
     "x86_64"),
])
def test_compatible_wheels_install(tmp_path, tags, version, machine):
    make_chroot(tmp_path / "fake.whl", chroot_with(
        {f"{DIST}.dist-info/WHEEL": f"Wheel-Version: 1.0\nTag: {tags}\n".encode()}))
    spec = {"wheels": [wheel("fake.whl", "app/venv", version=version, machine=machine)]}
    assert f"app/venv/lib/python{version}/site-packages/fake.py" in members(build(spec, tmp_path))


@pytest.mark.parametrize("tags, version, machine, extra", [
    ("cp310-cp310-manylinux_2_17_x86_64", "3.11", "x86_64", ""),
    ("cp311-cp311-manylinux_2_17_aarch64", "3.11", "x86_64", ""),
    ("cp311-cp311-musllinux_1_1_x86_64", "3.11", "x86_64",
     "; musllinux wheels need musl libc, and the image's CPython uses glibc"),
    ("py312-none-any", "3.11", "x86_64", ""),
    ("cp312-abi3-manylinux_2_17_x86_64", "3.11", "x86_64", ""),
    ("py2-none-any", "3.11", "x86_64", ""),
    ("pp310-pypy310_pp73-manylinux_2_17_x86_64", "3.10", "x86_64", ""),
])
def test_incompatible_wheels_name_the_distribution_and_interpreter(tmp_path, tags, version,
                                                                   machine, extra):
    make_chroot(tmp_path / "fake.whl", chroot_with(
        {f"{DIST}.dist-info/WHEEL": f"Wheel-Version: 1.0\nTag: {tags}\n".encode()}))
    spec = {"wheels": [wheel("fake.whl", "app/venv", version=version, machine=machine)]}
    with pytest.raises(ValueError) as error:
        build(spec, tmp_path)
    assert str(error.value) == (f"wheels[0] (fake.whl): fake-1.0 is not compatible with CPython "
                                f"{version} on {machine}: its tags are {tags}{extra}")
    assert not (tmp_path / "out").exists()


def test_a_chroot_without_wheel_metadata_is_refused(tmp_path):
    make_chroot(tmp_path / "fake.whl", chroot_with({f"{DIST}.dist-info/WHEEL": None}))
    with pytest.raises(ValueError, match=r"wheels\[0\] \(fake.whl\): fake-1.0 has no "
                                         r"fake-1.0.dist-info/WHEEL file"):
        build({"wheels": [wheel("fake.whl", "app/venv")]}, tmp_path)


def test_two_distributions_writing_one_path_are_both_named(tmp_path):
    make_chroot(tmp_path / "a.whl")
    make_chroot(tmp_path / "b.whl", chroot_with({"fake.py": b"VALUE = 2\n"}))
    with pytest.raises(ValueError, match=r"conflicting entries for 'app/venv/lib/python3.11/"
                                         r"site-packages/fake.py': .* from wheels\[0\] \(a.whl\): "
                                         r"fake-1.0 vs .* from wheels\[1\] \(b.whl\): fake-1.0"):
        build({"wheels": [wheel("a.whl", "app/venv"), wheel("b.whl", "app/venv")]}, tmp_path)


# --- bytecode --------------------------------------------------------------------------------

SET_CONSTANT = b"def pick(x):\n    return x in {'a', 'b', 'c', 'dd', 'eee', 'ffff'}\nPICKED = 1\n"


def bytecode_sandbox(tmp_path: Path, venv: str, bytecode: str, version: str = VERSION) -> dict:
    """A sandbox with the core, a chroot and sources, both with a set constant; returns the
    spec of their layer."""
    sandbox = standalone_core(tmp_path / "sandbox")
    make_chroot(sandbox / "fake.whl", chroot_with({"fakepkg/sets.py": SET_CONSTANT,
                                                   "fakepkg/py2.py": b"print 'py2'\n"}))
    (sandbox / "src/app").mkdir(parents=True)
    (sandbox / "src/app/__init__.py").write_bytes(b"")
    (sandbox / "src/app/sets.py").write_bytes(SET_CONSTANT)
    return {**venv_spec(venv), "wheels": [wheel("fake.whl", venv, bytecode, version)],
            "python_sources": [{"source": "src", "venv": venv, "version": version,
                                "bytecode": bytecode}]}


CODE_FILENAMES = """
import marshal, sys
for pyc in sys.argv[1:]:
    with open(pyc, "rb") as f:
        print(marshal.loads(f.read()[16:]).co_filename)
"""


@pytest.mark.parametrize("bytecode, flags", [("checked-hash", 0b11), ("unchecked-hash", 0b01)])
def test_pycs_are_valid_and_reproducible(tmp_path, bytecode, flags):
    python311()
    venv = str(tmp_path / "venv").lstrip("/")
    site = f"{venv}/{SITE}"
    spec = bytecode_sandbox(tmp_path, venv, bytecode)
    sandbox = tmp_path / "sandbox"
    blobs = []
    for run in ("one", "two"):  # -E: each run has its own random hash seed
        done = run_layer(sandbox, spec, run)
        assert (done.returncode, done.stderr) == (0, "")
        blobs.append((sandbox / run / "layer.tar").read_bytes())
    assert blobs[0] == blobs[1]
    entries = members(sandbox / "one/layer.tar")
    pycs = sorted(path for path in entries if path.endswith(".pyc"))
    assert pycs == [f"{site}/{name}.cpython-311.pyc" for name in (
        "__pycache__/fake", "app/__pycache__/__init__", "app/__pycache__/sets",
        "fakepkg/__pycache__/__init__", "fakepkg/__pycache__/cli", "fakepkg/__pycache__/sets")]
    assert f"{site}/fakepkg/py2.py" in entries  # kept without a pyc: it does not compile
    rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(
        entries[f"{site}/{DIST}.dist-info/RECORD"][2].decode()))}
    for pyc in pycs:
        content = entries[pyc][2]
        assert entries[pyc][:2] == ("file", 0o644)
        assert int.from_bytes(content[4:8], "little") == flags
        if "/fakepkg/" in pyc or "/fake." in pyc:
            assert rows[os.path.relpath(pyc, site)] == [record_hash(content), str(len(content))]

    # The image's python uses them: an unchecked-hash pyc even when its source has changed.
    place(sandbox / "one/layer.tar", tmp_path / "venv")
    done = subprocess.run([PYTHON, "-c", CODE_FILENAMES, *(f"/{pyc}" for pyc in pycs)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == [  # where the image has the sources
        f"/{pyc}".replace("__pycache__/", "").replace(".cpython-311.pyc", ".py") for pyc in pycs]
    for module in ("app.sets", "fakepkg.sets"):
        source = Path(f"/{site}/{module.replace('.', '/')}.py")
        source.write_bytes(SET_CONSTANT.replace(b"PICKED = 1", b"PICKED = 2"))
        done = subprocess.run(
            [tmp_path / "venv/bin/python", "-B", "-v", "-c",
             f"import {module} as m; print(m.PICKED, m.pick('dd'))"],
            capture_output=True, text=True, check=True)
        assert done.stdout == ("1 True\n" if bytecode == "unchecked-hash" else "2 True\n")
        loaded = f"code object from '{source.parent}/__pycache__/sets.cpython-311.pyc'"
        assert (loaded in done.stderr) == (bytecode == "unchecked-hash")


def test_no_bytecode_writes_no_pyc(tmp_path):
    spec = bytecode_sandbox(tmp_path, "app/venv", "none")
    entries = members(build(spec, tmp_path / "sandbox"))
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in entries)
    record = entries[f"app/venv/{SITE}/{DIST}.dist-info/RECORD"][2].decode()
    assert ".pyc" not in record and "fakepkg/sets.py," in record


@pytest.mark.parametrize("part", ["wheels", "python_sources"])
def test_bytecode_needs_the_image_interpreter(tmp_path, part):
    """This process is Pants' CPython 3.9: it cannot write pycs for 3.11."""
    spec = bytecode_sandbox(tmp_path, "app/venv", "checked-hash")
    running = "%s %d.%d" % (sys.implementation.name, *sys.version_info[:2])
    assert running != "cpython 3.11"
    with pytest.raises(ValueError) as error:
        build({part: spec[part]}, tmp_path / "sandbox")
    assert str(error.value) == (
        f"{part}[0]: bytecode needs CPython 3.11 to run the layer step, not {running}; set "
        f"bytecode='none' or run the layer step with CPython 3.11")


def test_bytecode_before_3_11_needs_a_fixed_hash_seed(tmp_path):
    """CPython 3.9 marshals set constants in hash order: with -E (no PYTHONHASHSEED) the step
    refuses; with PYTHONHASHSEED=0 two runs give the same bytes."""
    python39 = "/usr/bin/python3.9"
    if not Path(python39).is_file():
        unavailable(f"{python39} (Debian package python3.9) is not installed")
    spec = bytecode_sandbox(tmp_path, "app/venv", "checked-hash", version="3.9")
    sandbox = tmp_path / "sandbox"
    done = run_layer(sandbox, spec, "refused", python39)
    assert done.returncode == 1
    assert done.stderr == (
        "strata.core.build: error: wheels[0]: bytecode for CPython 3.9 needs hash "
        "randomisation off in the layer step (PYTHONHASHSEED=0, and no -E), or its pycs would "
        "differ from run to run\n")
    blobs = []
    for run in ("one", "two"):
        done = run_layer(sandbox, spec, run, python39, flags=(), env={"PYTHONHASHSEED": "0"})
        assert (done.returncode, done.stderr) == (0, "")
        blobs.append((sandbox / run / "layer.tar").read_bytes())
    assert blobs[0] == blobs[1]


# --- a real distribution, as pex installs it -------------------------------------------------

# A console script and no dependencies; a C extension (cp311 manylinux).
REAL_REQUIREMENTS = ("pyflakes==4.0.0", "markupsafe==3.0.3")


def pex_chroots(tmp_path: Path) -> list:
    """The installed-wheel chroots of a packed PEX of REAL_REQUIREMENTS, built with the
    bootstrapped pex CLI from wheels pip downloads through this machine's configuration."""
    root = os.environ.get("STRATA_ROOT")
    pex = Path(root or ".", "build-support/pex")
    if not root or not pex.is_file():
        unavailable("no bootstrapped pex CLI: run the tests through ./pants, which builds "
                    "build-support/pex and exports STRATA_ROOT")
    python = python311()
    wheels = tmp_path / "wheels"
    done = subprocess.run([python, "-m", "pip", "download", "--no-deps", "--only-binary",
                           ":all:", "--no-cache-dir", "-d", wheels, *REAL_REQUIREMENTS],
                          capture_output=True, text=True)
    if done.returncode:
        unavailable(f"pip could not download {REAL_REQUIREMENTS}: {done.stderr[-500:]}")
    subprocess.run([python, pex, "--no-pypi", "-f", wheels, *REAL_REQUIREMENTS, "--layout",
                    "packed", "-o", tmp_path / "real.pex", "--pex-root", tmp_path / "pex_root"],
                   check=True, capture_output=True)
    return sorted((tmp_path / "real.pex/.deps").iterdir())


CHECK_DISTRIBUTIONS = """
import base64, hashlib, importlib.metadata, sys
import markupsafe, markupsafe._speedups, pyflakes
print(sys.prefix, markupsafe.escape('<a>'), pyflakes.__version__)
for name in ('pyflakes', 'markupsafe'):
    for file in importlib.metadata.distribution(name).files:
        data = file.locate().read_bytes()
        if file.hash:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=')
            assert (file.hash.value, file.size) == (digest.decode(), len(data)), file
print('verified')
"""


def test_a_real_pex_chroot_installs_and_runs(tmp_path):
    chroots = pex_chroots(tmp_path)
    assert [path.name.split("-")[0] for path in chroots] == ["markupsafe", "pyflakes"]
    sandbox = standalone_core(tmp_path / "sandbox")
    (sandbox / "deps").mkdir()
    for chroot in chroots:
        shutil.copy(chroot, sandbox / "deps")
    venv = str(tmp_path / "venv").lstrip("/")
    spec = venv_spec(venv, wheels=[wheel(f"deps/{chroot.name}", venv, "checked-hash")
                                   for chroot in chroots])
    done = run_layer(sandbox, spec, "out")
    assert (done.returncode, done.stderr) == (0, "")
    entries = members(sandbox / "out/layer.tar")
    assert entries[f"{venv}/bin/pyflakes"][2].startswith(f"#!/{venv}/bin/python\n".encode())
    place(sandbox / "out/layer.tar", tmp_path / "venv")
    (tmp_path / "bad.py").write_text("import os\n")
    done = subprocess.run([tmp_path / "venv/bin/pyflakes", tmp_path / "bad.py"],
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, f"{tmp_path}/bad.py:1:1: 'os' imported but "
                                                 f"unused\n")
    done = subprocess.run([tmp_path / "venv/bin/python", "-c", CHECK_DISTRIBUTIONS],
                          capture_output=True, text=True)
    assert (done.stderr, done.stdout) == (
        "", f"{tmp_path / 'venv'} &lt;a&gt; 4.0.0\nverified\n")
