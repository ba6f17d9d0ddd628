"""The entries of a layer as its content parts collect them (strata.core.build.parts): each
checked as it is added, identical duplicates collapsed, any other repeat an error, parents added
once all are in; and the context a part reads the sandbox through. What a part's `add` uses,
and build-time commands and permissions after it; strata.core.build.layer sorts and writes the
result. Not in layer.py: commands and parts use it, and layer.py imports them."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
from collections import namedtuple

from strata.core.build.compression import CHUNK


class LayerEntry(namedtuple("LayerEntry", "path kind mode origin source target owner",
                             defaults=("", "", None))):
    """path: in the image; kind: "dir", "file" or "symlink"; mode: from the spec, never from the
    sandbox; origin: where the entry came from, for error messages; source: a file's content;
    target: a symlink's target; owner: a tarstream.Owner, or None for the layer settings'."""

    __slots__ = ()

    def size(self) -> int:
        """A file's size, read from its source: the walk does not stat files (the writer reads
        the size from the open file), only a conflict needs it early."""
        return os.stat(self.source).st_size

    def describe(self) -> str:
        if self.kind == "symlink":
            return f"symlink to {self.target!r} from {self.origin}"
        if self.kind == "dir":
            return f"dir (mode {self.mode:04o}) from {self.origin}"
        return f"file (mode {self.mode:04o}, {self.size()} bytes) from {self.origin}"


def _same_content(a: str, b: str) -> bool:
    if os.path.samefile(a, b):
        return True
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(CHUNK)
            if chunk != fb.read(CHUNK):
                return False
            if not chunk:
                return True


class Collector:
    """Entries by image path; identical duplicates collapse, any other repeat is an error."""

    def __init__(self):
        self.entries: dict[str, LayerEntry] = {}

    def add(self, entry: LayerEntry) -> None:
        for text in (entry.path, entry.target):
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(f"{entry.origin}: {text!r} is not valid UTF-8") from None
        old = self.entries.get(entry.path)
        if old is None:
            self.entries[entry.path] = entry
            return
        if old.kind == entry.kind == "file":
            same = (old.mode == entry.mode and old.owner == entry.owner
                    and old.size() == entry.size()
                    and _same_content(old.source, entry.source))
        else:
            same = old._replace(origin="") == entry._replace(origin="")
        if not same:
            raise ValueError(
                f"conflicting entries for {entry.path!r}: {old.describe()} vs {entry.describe()}"
            )

    def add_parents(self) -> None:
        """Adds missing parent directories (0755); a parent that is not a directory is an error."""
        for entry in list(self.entries.values()):
            path = entry.path
            while "/" in path:
                path = path.rsplit("/", 1)[0]
                parent = self.entries.get(path)
                if parent is None:
                    self.entries[path] = LayerEntry(path, "dir", 0o755, f"parent of {entry.path!r}")
                elif parent.kind != "dir":
                    raise ValueError(
                        f"{path!r} is a {parent.describe()} but also the parent directory of "
                        f"{entry.path!r} ({entry.describe()})"
                    )
                else:
                    break  # this directory's own parents are (or will be) handled


class LayerContext:
    """What a content step needs besides its part: the layer's settings and the sandbox, whose
    root spec sources are relative to. Steps that unpack files (a .deb's) do so in its scratch
    directory, removed when the layer is written."""

    def __init__(self, root: str, settings):
        self.root = root
        self.settings = settings
        self._scratch = None

    def path(self, source: str) -> str:
        return os.path.join(self.root, source)

    def scratch(self) -> str:
        """A directory inside the sandbox (so its files are sandbox paths too), made on demand:
        `tempfile` is imported only by layers that need it."""
        if self._scratch is None:
            import tempfile

            self._scratch = tempfile.mkdtemp(prefix=".strata-scratch-", dir=self.root)
        return self._scratch

    def __enter__(self) -> LayerContext:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch)
