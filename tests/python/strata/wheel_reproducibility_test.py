"""The plugin wheel is the same bytes from another checkout, at another path, built under umask
077 with no cache: `./pants package src/python/strata:dist` in a fresh copy gives the wheel
Pants built for this test."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from strata_harness.scratch import copy_tracked_files, strata_root

TARGET = "src/python/strata:dist"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_wheel_is_the_same_bytes_from_another_checkout_under_umask_077(tmp_path: Path):
    (built,) = Path.cwd().glob("pants_backend_strata-*.whl")  # runtime_package_dependencies
    clone = tmp_path / "another" / "checkout"
    copy_tracked_files(strata_root(), clone)
    shutil.copy2(strata_root() / "build-support/pex", clone / "build-support/pex")
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.path.expanduser("~"),  # the shared named caches: pex, pip
        "LANG": "C.UTF-8",
    }
    result = subprocess.run(
        ["bash", "-c", 'umask 077 && exec ./pants "$@"', "bash",
         "--no-pantsd", "--no-pantsrc", "--no-local-cache", "package", TARGET],
        cwd=clone, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    again = clone / "dist" / built.name
    print(f"{built.name}: {built.stat().st_size} bytes, sha256 {sha256(built)} (this checkout), "
          f"{sha256(again)} (another)")
    assert sha256(again) == sha256(built)
