"""`layer_sources` is all a layer process's sandbox holds of the core: the layer program
(`python -m strata.core.build`), writing a tree (with permissions), .debs, a Python venv, Nix
store paths' NARs or running build-time commands, must run with just those modules (the set is
complete) and import every one of them (it is minimal, so a change to another module leaves
cached layers valid)."""

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import strata.core
from strata.core.__main__ import layer_sources
from strata.core.command_files import sandbox_files
from strata_harness.tools import unavailable

SETTINGS = {"mtime": 1, "uid": 0, "gid": 0, "uname": "root", "gname": "root",
            "compression": "gzip", "zstd": None}

# Runs each argument (a JSON argv) through the layer program, then lists the strata modules
# loaded.
PROBE = """
import json, sys
import strata.core.build.__main__  # what `-m strata.core.build` runs
from strata.core.build.program import LAYER, run
codes = [run("strata.core.build", LAYER, json.loads(argv)) for argv in sys.argv[1:]]
print(json.dumps({"codes": codes, "modules": sorted(m for m in sys.modules if m.startswith("strata"))}))
"""


def module_name(file: str) -> str:
    """`build/layer.py` -> `strata.core.build.layer`; `build/__init__.py` -> `strata.core.build`."""
    parts = ["strata", "core", *file[: -len(".py")].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python3() -> str:
    """The interpreter layer processes run ([strata].python_search_paths)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        unavailable("no python3 in /usr/bin or /bin")
    return python


def host_tool(name: str) -> list:
    """A build-time command tool as the rules give it: [name, path, sha256]."""
    path = shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        unavailable(f"build-time commands need `{name}` in /usr/bin or /bin")
    return [name, path, hashlib.sha256(Path(path).read_bytes()).hexdigest()]


def small_deb(tmp_path: Path) -> Path:
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        unavailable("dpkg-deb (Debian package dpkg) is not on PATH")
    root = tmp_path / "deb-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: demo\nVersion: 1\nArchitecture: all\nMaintainer: Tests <t@example.invalid>\n"
        "Description: a test package\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/demo").write_text("#!/bin/sh\n")
    subprocess.run([dpkg_deb, "--root-owner-group", "--build", str(root), str(tmp_path / "demo.deb")],
                   check=True, capture_output=True)
    return tmp_path / "demo.deb"


def small_wheel_chroot(path: Path) -> Path:
    """A distribution as pex installs it in a chroot (strata.core.build.python): one module."""
    with zipfile.ZipFile(path, "w") as chroot:
        chroot.writestr(".layout.json", json.dumps(
            {"record_relpath": "demo-1.dist-info/RECORD", "stash_dir": ".prefix"}))
        chroot.writestr("demo-1.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        chroot.writestr("demo.py", "")
    return path


def small_nar(directory: Path) -> bytes:
    """`directory` as a NAR, by nix-store --dump (as the rules dump a store path)."""
    nix_store = "/usr/bin/nix-store"
    if not os.access(nix_store, os.X_OK):
        unavailable(f"{nix_store} (Debian package nix-bin) is missing")
    return subprocess.run([nix_store, "--dump", str(directory)], check=True,
                          capture_output=True).stdout


def layer_sandbox(tmp_path: Path) -> Path:
    """A sandbox as the rules lay it out for a layer process: an empty strata/__init__.py, the
    listed core modules, a small tree, a small .deb and a small wheel chroot, with a spec for
    each subcommand."""
    sandbox = tmp_path / "sandbox"
    (sandbox / "strata/core").mkdir(parents=True)
    (sandbox / "strata/__init__.py").write_bytes(b"")
    core = Path(strata.core.__file__).parent
    for name in layer_sources(core):
        (sandbox / "strata/core" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(core / name, sandbox / "strata/core" / name)
    (sandbox / "rootfs/app").mkdir(parents=True)
    (sandbox / "rootfs/app/hello.txt").write_text("hello\n")
    (sandbox / "debs").mkdir()
    shutil.copy(small_deb(tmp_path), sandbox / "debs/demo.deb")
    small_wheel_chroot(sandbox / "demo.whl")
    nar = small_nar(sandbox / "rootfs")
    (sandbox / "demo.nar").write_bytes(nar)
    venv = {"venv": "app/venv", "version": "3.11", "bytecode": "none"}
    tools, runners = [host_tool("touch")], [host_tool(name) for name in ("bwrap", "env", "sh")]
    files = sandbox_files([path for name, path, _ in tools + runners if name != "bwrap"])
    commands = {"extra_commands": "touch made", "tools": tools, "runners": runners,
                "files": [list(item) for item in files.items()], "timeout": 60}
    specs = {
        "layer-spec.json": {"settings": SETTINGS,
                            "trees": [{"source": "rootfs", "dest": "", "executables": []}],
                            "entries": [{"path": "app/hello", "type": "symlink",
                                         "target": "hello.txt"}],
                            "permissions": [{"pattern": "app/**", "mode": 0o600, "uid": 1}]},
        "deb-spec.json": {"settings": SETTINGS,
                          "debs": [{"source": "debs/demo.deb", "package": "demo"}]},
        "venv-spec.json": {"settings": SETTINGS,
                           "venvs": [{"path": "app/venv", "python": "/usr/bin/python3.11",
                                      "version": "3.11", "launchers": [["hello", "app"]]}],
                           "wheels": [{"source": "demo.whl", "machine": "x86_64", **venv}],
                           "python_sources": [{"source": "rootfs", **venv}]},
        "commands-spec.json": {"settings": SETTINGS, "commands": commands,
                               "trees": [{"source": "rootfs", "dest": "", "executables": []}]},
        "nar-spec.json": {"settings": SETTINGS,
                          "nars": [{"source": "demo.nar",
                                    "store_path": "/nix/store/" + "0" * 32 + "-demo",
                                    "nar_hash": "sha256:" + hashlib.sha256(nar).hexdigest()}]},
    }
    for name, spec in specs.items():
        (sandbox / name).write_text(json.dumps(spec))
    return sandbox


ARGVS = (("--spec", "layer-spec.json", "--out", "out-layer"),
         ("--spec", "deb-spec.json", "--out", "out-deb"),
         ("--spec", "venv-spec.json", "--out", "out-venv"),
         ("--spec", "commands-spec.json", "--out", "out-commands"),
         ("--spec", "nar-spec.json", "--out", "out-nar"))


def interpreter_version(python: str) -> str:
    return subprocess.run(
        [python, "-E", "-s", "-S", "-c", "import sys; sys.stdout.write(sys.version)"],
        capture_output=True, text=True, check=True,
    ).stdout


def test_tree_deb_and_venv_layers_run_with_only_the_layer_sources(tmp_path):
    sandbox = layer_sandbox(tmp_path)
    keyed = f"strata_python={interpreter_version(python3())}"
    for argv in ARGVS:  # exactly as the rules run them (strata.rules.tool.ImageTool.layer_argv)
        done = subprocess.run(
            [python3(), "-E", "-s", "-S", "-B", "-X", keyed, "-m", "strata.core.build", *argv],
            cwd=sandbox, env={}, capture_output=True, text=True,
        )
        assert (done.returncode, done.stderr) == (0, ""), argv
        assert json.loads((sandbox / argv[-1] / "layer.json").read_text())["entries"] > 0


def test_a_layer_keyed_on_another_interpreter_build_is_refused(tmp_path):
    """A worker whose CPython at the keyed path is another build than the one Strata found
    there (where it looked it up) must not answer for that key: the Process fails, saying
    which interpreters differ, and writes nothing."""
    sandbox = layer_sandbox(tmp_path)
    other = "3.11.0 (main, Jan 10 2000, 00:00:00) [another build]"
    done = subprocess.run(
        [python3(), "-E", "-s", "-S", "-B", "-X", f"strata_python={other}",
         "-m", "strata.core.build", *ARGVS[0]],
        cwd=sandbox, env={}, capture_output=True, text=True,
    )
    assert done.returncode == 1
    assert f"keyed on the CPython {other!r}" in done.stderr
    # (the one-line report collapses runs of spaces, as in "Jan  1")
    assert repr(" ".join(interpreter_version(python3()).split())) in done.stderr
    assert "Building with remote execution" in done.stderr
    assert not (sandbox / ARGVS[0][-1]).exists()


def test_tree_deb_and_venv_layers_import_every_layer_source(tmp_path):
    sandbox = layer_sandbox(tmp_path)
    done = subprocess.run(
        [python3(), "-E", "-s", "-S", "-B", "-c", PROBE, *(json.dumps(a) for a in ARGVS)],
        cwd=sandbox, env={}, capture_output=True, text=True, check=True,
    )
    probe = json.loads(done.stdout.splitlines()[-1])
    assert probe["codes"] == [0] * len(ARGVS)
    sources = layer_sources(Path(strata.core.__file__).parent)
    assert set(probe["modules"]) == {"strata", *map(module_name, sources)}
