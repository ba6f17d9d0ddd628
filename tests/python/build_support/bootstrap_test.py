"""build-support/bootstrap.sh on a fresh copy of the repo, as a user with an unusual setup would
run it: umask 077, another HOME, TMPDIR and LANG. The pex CLI must still be byte for byte the one
pinned in pants.toml (its zip records file modes), and the venv must be readable by everyone."""

import hashlib
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

from strata_harness.scratch import copy_tracked_files, strata_root

# Where pip looks for a user's configuration under HOME (pip's own list, XDG default first).
PIP_USER_CONFIGS = (".config/pip/pip.conf", ".pip/pip.conf")


def fresh_home(home: Path) -> dict:
    """An empty HOME, but with the real user's pip configuration (the machine's package index
    or mirror, never named here; PIP_* and proxy variables pass through too) and, to keep the
    test quick, pip's download cache."""
    real_home = Path.home()  # Pants gives tests no HOME: the password database's
    for rel in PIP_USER_CONFIGS:
        if (real_home / rel).is_file():
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(real_home / rel, home / rel)
    env = {k: v for k, v in os.environ.items()
           if k.startswith("PIP_") or k.lower().endswith("_proxy")}
    env.setdefault("PIP_CACHE_DIR", str(real_home / ".cache/pip"))
    return env


def pinned_pex_sha256(pants_toml: Path) -> str:
    match = re.search(r'"v[\d.]+\|linux_x86_64\|([0-9a-f]{64})\|', pants_toml.read_text())
    assert match, f"no linux_x86_64 pex in {pants_toml} [pex-cli].known_versions"
    return match.group(1)


def others_can_read(path: Path) -> bool:
    if path.is_symlink():
        return True
    needed = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
    return path.stat().st_mode & needed == needed


def run_under_umask_077(argv: list, cwd: Path, env: dict, timeout: float):
    return subprocess.run(["bash", "-c", 'umask 077 && exec "$@"', "bash", *argv], cwd=cwd,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def test_a_fresh_clone_bootstraps_under_umask_077_another_home_tmpdir_and_lang(tmp_path):
    clone, home, tmpdir, venv = (tmp_path / name for name in ("clone", "home", "tmp", "venv"))
    for directory in (clone, home, tmpdir):
        directory.mkdir()
    copy_tracked_files(strata_root(), clone)
    env = {
        **fresh_home(home),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "LANG": "C",
        "STRATA_PANTS_VENV": str(venv),
    }

    start = time.monotonic()
    bootstrap = run_under_umask_077(["bash", "build-support/bootstrap.sh"], clone, env, 1200)
    print(f"bootstrap took {time.monotonic() - start:.1f} s")
    assert bootstrap.returncode == 0, bootstrap.stderr

    pex = clone / "build-support/pex"
    assert hashlib.sha256(pex.read_bytes()).hexdigest() == pinned_pex_sha256(clone / "pants.toml")
    unreadable = [str(p) for p in [venv, *venv.rglob("*")] if not others_can_read(p)]
    assert not unreadable, f"{len(unreadable)} venv paths others cannot read: {unreadable[:5]}"

    version = run_under_umask_077(["./pants", "--no-pantsd", "--version"], clone, env, 600)
    assert (version.returncode, version.stdout.strip()) == (0, "2.17.1"), version.stderr
