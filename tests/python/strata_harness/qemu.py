"""Running an arm64 image's programs on this machine: `chroot` into its unpacked rootfs with
Debian's `qemu-aarch64-static` copied in, emulating one process in user mode.

The emulator is named on the command line, never registered with the kernel's binfmt_misc (a
machine-wide setting): so a script's interpreter (its shebang) is run explicitly, with the
script as its argument.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from strata_harness.tools import INSTALL_SCRIPT, unavailable

# Where build-support/install-system-tools.sh extracts the binary from qemu-user-static's .deb.
QEMU_AARCH64 = Path(os.environ.get("STRATA_QEMU_DIR", "/opt/strata/qemu")) / (
    "usr/bin/qemu-aarch64-static")
_IN_ROOTFS = "qemu-aarch64-static"

ELF_MACHINES = {62: "x86-64", 183: "aarch64"}


def elf_machine(path: str | os.PathLike[str]) -> str:
    """The architecture an ELF file is for, from its header's e_machine."""
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        raise AssertionError(f"{path} is not an ELF file")
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine, str(machine))


def run_arm64(rootfs: str | os.PathLike[str], argv: Sequence[str],
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Runs `argv` (an absolute path in the rootfs first) inside an arm64 rootfs under
    qemu-aarch64-static, with an empty environment but PATH; the emulator is removed after."""
    if not QEMU_AARCH64.is_file():
        unavailable(f"{QEMU_AARCH64} is missing: {INSTALL_SCRIPT} extracts it from Debian's "
                    "qemu-user-static")
    chroot = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if chroot is None or os.geteuid() != 0:
        unavailable("running an arm64 rootfs needs chroot and root")
    emulator = Path(rootfs) / _IN_ROOTFS
    shutil.copy(QEMU_AARCH64, emulator)
    try:
        return subprocess.run(
            [chroot, str(rootfs), f"/{_IN_ROOTFS}", *argv],
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
    finally:
        emulator.unlink()
