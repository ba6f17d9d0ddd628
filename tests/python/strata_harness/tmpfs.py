"""A small tmpfs of a test's own, to fill: what a full disk does to a writer."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

from strata_harness.tools import unavailable


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A private tmpfs of `size` at `path`, unmounted on the way out."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "strata-test",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def shrink(mount: Path) -> None:
    """Shrinks the tmpfs at `mount` to what it holds now (and 64 KiB)."""
    stat = os.statvfs(mount)
    used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    subprocess.run(["mount", "-o", f"remount,size={used + (64 << 10)}", str(mount)], check=True)
