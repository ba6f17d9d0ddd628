"""`command-files`: every host file build-time commands' sandbox holds for its programs (their
loader, libraries, `#!` interpreters, fakeroot's daemon and library), with its sha256, so that
the layer's cache key holds all a script can read."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from strata.core.command_files import FAKEROOT_FLUSH, sandbox_files
from strata.core.errors import InvalidInput
from strata_harness import require_tool
from strata_harness.tools import unavailable


def host(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        unavailable(f"`{name}` is not installed")
    return path


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def loader_list(program: str) -> list:
    """The loader and the libraries of `program`, as the machine's loader lists them."""
    (interpreter,) = [line.split()[0] for line in subprocess.run(
        ["ldd", program], capture_output=True, text=True, check=True).stdout.splitlines()
        if line.strip().startswith("/")]
    listed = subprocess.run([interpreter, "--list", program], capture_output=True, text=True,
                            check=True).stdout
    return [interpreter] + [line.split(" => ")[1].split(" (")[0]
                            for line in listed.splitlines() if " => " in line]


def test_an_elf_program_needs_its_loader_and_libraries_each_fingerprinted() -> None:
    ls = host("ls")
    files = sandbox_files([ls])
    expected = loader_list(ls)
    assert len(expected) >= 3  # the loader, libc and libselinux on Debian
    assert sorted(files) == sorted(expected)
    assert all(files[path] == sha256(path) for path in files)
    assert ls not in files  # a program itself is the tools' and runners' part


def test_a_script_needs_its_interpreter_and_what_that_needs(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    files = sandbox_files([str(script)])
    assert "/bin/sh" in files and set(loader_list("/bin/sh")) <= set(files)


def test_a_static_program_needs_nothing() -> None:
    assert sandbox_files([require_tool("busybox")]) == {}


def test_fakeroot_needs_its_daemon_its_preload_library_and_the_flushing_ls() -> None:
    fakeroot = require_tool("fakeroot")
    files = sandbox_files([host("sh"), fakeroot], fakeroot=fakeroot)
    script = Path(fakeroot).read_text()
    daemons = [path for path in files if Path(path).name.startswith("faked")]
    libraries = [path for path in files if Path(path).name.startswith("libfakeroot")]
    assert len(daemons) == 1 and Path(daemons[0]).name in script
    assert len(libraries) == 1 and Path(libraries[0]).name in script
    assert FAKEROOT_FLUSH in files and FAKEROOT_FLUSH in script
    assert "/bin/sh" in files  # its #! line


def test_a_fakeroot_that_names_no_daemon_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "fakeroot"
    fake.write_text("#!/bin/sh\nexec \"$@\"\n")
    with pytest.raises(InvalidInput, match="is not a fakeroot script naming its daemon"):
        sandbox_files([str(fake)], fakeroot=str(fake))


def test_a_script_without_an_absolute_interpreter_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!sh\n")
    with pytest.raises(InvalidInput, match="names no absolute interpreter"):
        sandbox_files([str(script)])
