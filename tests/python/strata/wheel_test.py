"""The plugin wheel (`src/python/strata:dist`, built by Pants for this test): it holds every
file of the plugin's source tree, and it is the same bytes from another checkout, at another
path, built under umask 077 with no cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from strata_harness.scratch import copy_tracked_files, strata_root

TARGET = "src/python/strata:dist"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def built_wheel() -> Path:
    """At the sandbox's root, the distribution's output path (runtime_package_dependencies)."""
    (wheel,) = Path.cwd().glob("pants_backend_strata-*.whl")
    return wheel


def test_the_wheel_holds_every_file_of_the_source_tree() -> None:
    """Dependency inference reaches what is imported; the core's modules that only Processes
    run reach the wheel by explicit dependencies, which a new module could miss."""
    source = strata_root() / "src/python"
    tree = {
        str(p.relative_to(source)) for p in (source / "strata").rglob("*")
        if p.is_file() and p.name != "BUILD" and "__pycache__" not in p.parts
    }
    with zipfile.ZipFile(built_wheel()) as wheel:
        packaged = {n for n in wheel.namelist() if ".dist-info/" not in n}
    assert packaged == tree


def test_the_wheel_is_the_same_bytes_from_another_checkout_under_umask_077(tmp_path: Path):
    built = built_wheel()
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
