"""Locating the real system tools the tests drive, and running them with useful failures."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import struct
import subprocess
from typing import Mapping, Sequence

INSTALL_SCRIPT = "build-support/install-system-tools.sh"

# The tools tests may ask for, with the Debian package providing each (see INSTALL_SCRIPT).
TOOLS = {
    "skopeo": "skopeo",
    "umoci": "umoci",
    "podman": "podman",
    "runc": "runc",
    "docker-registry": "docker-registry",
    "busybox": "busybox-static",
    "oci-image-tool": "oci-image-tool",
    "bwrap": "bubblewrap",
    "fakeroot": "fakeroot",
    "htpasswd": "apache2-utils",
    "dockerd": "docker.io",
    "containerd": "containerd",
    "dpkg-deb": "dpkg",
    "nix-build": "nix-bin",
    "nix-store": "nix-bin",
    "nix": "nix-bin",
    "unshare": "util-linux",
}
# Daemons (dockerd) live here, which the tests' PATH (Pants' [pex].executable_search_paths)
# lacks.
SBIN = ("/usr/sbin", "/sbin")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class Unavailable(Exception):
    """A tool or setup is missing, outside pytest (e.g. in the benchmark, which reports it)."""


def unavailable(reason: str) -> None:
    """Skips the test locally, but fails it under CI: a CI run must never pass by skipping.
    Outside pytest, raises Unavailable."""
    try:
        import pytest
    except ImportError:
        raise Unavailable(reason) from None
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def die_with_parent() -> None:
    """A Popen preexec_fn: SIGTERM the child when the test process dies, even by SIGKILL
    (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def _is_static_elf(path: str) -> bool:
    """True when the ELF file has no PT_INTERP program header, i.e. needs no dynamic loader."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if ident[:4] != b"\x7fELF" or ident[4] != 2:  # 64-bit ELF only
            return False
        order = "<" if ident[5] == 1 else ">"
        header = f.read(48)
        phoff = struct.unpack_from(order + "Q", header, 16)[0]
        phentsize, phnum = struct.unpack_from(order + "HH", header, 38)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type,) = struct.unpack(order + "I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return False
    return True


def require_tool(name: str) -> str:
    """The absolute path of a system tool, or skip (fail under CI) naming how to install it."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; expected one of {sorted(TOOLS)}")
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if path is None:
        unavailable(
            f"{name} (Debian package {TOOLS[name]}) is not on PATH={os.environ.get('PATH', '')} "
            f"nor in {' '.join(SBIN)}; install it with {INSTALL_SCRIPT}"
        )
    path = os.path.abspath(path)
    # Images get a copy of the host's busybox, which only runs there if statically linked.
    if name == "busybox" and not _is_static_elf(path):
        unavailable(f"{path} is dynamically linked; install busybox-static with {INSTALL_SCRIPT}")
    return path


def run_tool(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[bytes]:
    """Runs a tool to completion; a non-zero exit raises AssertionError carrying its stderr."""
    proc = subprocess.run(
        list(cmd),
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)}\nexited {proc.returncode}:\n"
            f"{proc.stderr.decode(errors='replace')}{proc.stdout.decode(errors='replace')}"
        )
    return proc
