"""CHANGELOG.md's newest release is the version of the wheel Pants builds
(`src/python/strata:dist`), so no version ships without its entry."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

# Keep a Changelog's release heading: "## [1.2.3] - 2026-12-07"; "## [Unreleased]" is not one.
RELEASE = re.compile(r"^## \[(\d[^\]]*)\] - \d{4}-\d{2}-\d{2}$", re.MULTILINE)


def wheel_version() -> str:
    """The Version field of the built wheel's METADATA (the wheel is at the sandbox's root)."""
    (wheel,) = Path.cwd().glob("pants_backend_strata-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    return re.search(r"^Version: (\S+)$", text, re.MULTILINE).group(1)


def test_the_newest_changelog_entry_is_the_wheels_version() -> None:
    releases = RELEASE.findall(Path("CHANGELOG.md").read_text())
    assert releases, "CHANGELOG.md has no release entry (## [X.Y.Z] - YYYY-MM-DD)"
    assert releases[0] == wheel_version(), (releases[0], wheel_version())
