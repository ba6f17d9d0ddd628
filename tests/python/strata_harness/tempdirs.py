"""Per-session temp directories that are removed afterwards, even after a killed run."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "strata-pytest-"


def remove_abandoned() -> None:
    """Removes the session directories of test processes that died without cleaning up (Pants
    SIGKILLs a cancelled test): a live session holds an flock on its `.lock` file."""
    for d in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            with open(d / ".lock") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live session, or being created
            continue
        shutil.rmtree(d, ignore_errors=True)


class SessionDir:
    """A fresh directory under the system temp dir, locked while this process lives."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX))
        # Locked before it gets its final name, so a sweeper never sees it unlocked.
        self._lock = open(self.path / ".lock.new", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.rename(self.path / ".lock.new", self.path / ".lock")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()
