"""Part `entries`: explicit image entries, each a directory, a symlink or a sandbox file, with
the mode the spec gives (the image's own symlinks and directories, merged-/usr's root links;
other parts' readers make them too)."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
import stat
from collections import namedtuple

from strata.core.build.collector import Collector, LayerContext, LayerEntry
from strata.core.build.spec import JsonTuple, check_keys, check_mode, image_path, sandbox_path


class Entry(JsonTuple, namedtuple("Entry", "path type mode source target", defaults=(None,) * 3)):
    """One explicit image entry: a `dir` (mode), a `symlink` (target) or a `file` (a sandbox
    `source`, and its mode)."""

    __slots__ = ()

    _KEYS = {"dir": (("path", "type"), ("mode",)), "symlink": (("path", "type", "target"), ()),
             "file": (("path", "type", "source", "mode"), ())}

    @classmethod
    def dir(cls, path: str, mode: int = 0o755) -> Entry:
        return cls(path, "dir", mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        return cls(path, "symlink", target=target)

    @classmethod
    def file(cls, path: str, source: str, mode: int) -> Entry:
        return cls(path, "file", mode, source)

    @classmethod
    def from_json(cls, obj, what: str) -> Entry:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in cls._KEYS:
            raise ValueError(f"{what}: type must be 'dir', 'symlink' or 'file', got {kind!r}")
        check_keys(obj, what, *cls._KEYS[kind])
        path = image_path(obj["path"], what)
        if kind == "dir":
            return cls.dir(path, check_mode(obj.get("mode", 0o755), what))
        if kind == "symlink":
            target = obj["target"]
            if not isinstance(target, str) or not target or "\0" in target:
                raise ValueError(f"{what}: invalid symlink target {target!r}")
            return cls.symlink(path, target)
        return cls.file(path, sandbox_path(obj["source"], what), check_mode(obj["mode"], what))


Item = Entry


def add(collector: Collector, context: LayerContext, entry: Entry, what: str) -> None:
    """The entry, its file's source read from the sandbox."""
    if entry.type == "dir":
        collector.add(LayerEntry(entry.path, "dir", entry.mode, what))
    elif entry.type == "symlink":
        collector.add(LayerEntry(entry.path, "symlink", 0o777, what, target=entry.target))
    else:
        source = context.path(entry.source)
        try:
            st = os.stat(source)
        except OSError as e:
            raise ValueError(
                f"{what}: cannot read source {entry.source!r}: {e.strerror}"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{what}: source {entry.source!r} is not a regular file")
        origin = f"{what} (source {entry.source})"
        collector.add(LayerEntry(entry.path, "file", entry.mode, origin, source))
