"""A real Debian package made with `dpkg-deb` in a mirror directory (serve it with
strata_harness.served as the repo's `[debian].mirror`), and a lock naming it, so a test can
change a locked version for real (a new .deb, a new sha256)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from strata_harness.tools import require_tool

PACKAGE = "strata-demo-lib"
COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: strata-demo

Files: *
Copyright: 2026 Strata
License: Expat
"""


def make_deb(mirror: Path, version: str) -> dict:
    """A real .deb of PACKAGE at `version` in the mirror's pool (its file
    /usr/share/strata-demo/VERSION holds the version); its lock entry."""
    root = mirror / "build" / version
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nSource: strata-demo\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Strata <strata@localhost>\nDescription: a package for the SBOM test\n"
    )
    doc = root / "usr" / "share" / "doc" / PACKAGE
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    (root / "usr" / "share" / "strata-demo").mkdir(parents=True)
    (root / "usr" / "share" / "strata-demo" / "VERSION").write_text(version + "\n")
    path = f"pool/main/s/strata-demo/{PACKAGE}_{version}_all.deb"
    (mirror / path).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [require_tool("dpkg-deb"), "--root-owner-group", "--build", str(root), str(mirror / path)],
        check=True,
        capture_output=True,
    )
    data = (mirror / path).read_bytes()
    return {
        "architecture": "all",
        "depends": [],
        "path": path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "version": version,
    }


def debian_lock(entry: dict) -> str:
    """debian.lock.json (amd64) locking PACKAGE to `entry`."""
    return json.dumps(
        {
            "architectures": {
                "amd64": {
                    "packages": {PACKAGE: entry},
                    "snapshot": {"date": "Tue, 01 Dec 2026 00:00:00 UTC",
                                 "release_sha256": "0" * 64},
                }
            },
            "lock_version": 2,
            "requested": [PACKAGE],
            "suite": "bookworm",
        },
        indent=2,
        sort_keys=True,
    ) + "\n"
