"""Part `trees`: a sandbox directory's files, directories and symlinks at an image path (the
files of `files`, `resources`, a `file_tree`... reach a layer this way)."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
from collections import namedtuple

from strata.core.build.collector import Collector, LayerContext, LayerEntry
from strata.core.build.spec import (
    JsonTuple, check_keys, image_path, json_list, normalise_path, sandbox_path,
)


class Tree(JsonTuple, namedtuple("Tree", "source dest executables")):
    """A sandbox directory's files at `dest` in the image; modes are 0644, or 0755 for the
    `executables` (image paths relative to `dest`): a sandbox's modes say nothing reliable."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Tree:
        check_keys(obj, what, cls._fields)
        executables = json_list(obj["executables"], f"{what}: executables")
        return cls(
            sandbox_path(obj["source"], what),
            normalise_path(obj["dest"], what),
            tuple(image_path(path, f"{what}.executables") for path in executables),
        )


Item = Tree


def add(collector: Collector, context: LayerContext, tree: Tree, what: str) -> None:
    """The files, directories and symlinks under the sandbox directory."""
    top, dest = context.path(tree.source), tree.dest
    if not os.path.isdir(top):
        raise ValueError(f"{what}: source {tree.source!r} is not a directory")
    executables = {f"{dest}/{path}" if dest else path for path in tree.executables}
    origin_top = tree.source or "."
    if dest:
        collector.add(LayerEntry(dest, "dir", 0o755, origin_top))
    pending = [(top, dest, origin_top)]
    while pending:
        fs_dir, image_dir, origin_dir = pending.pop()
        # In directory order: the entries are sorted once, at the end, by image path.
        with os.scandir(fs_dir) as children:
            for child in children:
                path = f"{image_dir}/{child.name}" if image_dir else child.name
                origin = f"{origin_dir}/{child.name}"
                # The kind comes from the directory listing: no stat per entry.
                if child.is_dir(follow_symlinks=False):
                    collector.add(LayerEntry(path, "dir", 0o755, origin))
                    pending.append((child.path, path, origin))
                elif child.is_symlink():
                    target = os.readlink(child.path)
                    collector.add(LayerEntry(path, "symlink", 0o777, origin, target=target))
                elif child.is_file(follow_symlinks=False):  # hard links too: each a file
                    mode = 0o755 if path in executables else 0o644
                    executables.discard(path)
                    collector.add(LayerEntry(path, "file", mode, origin, child.path))
                else:
                    raise ValueError(f"{origin}: not a regular file, directory or symlink")
    if executables:
        raise ValueError(
            f"{what}: executables names what is not a file of the tree: "
            f"{sorted(executables)[:5]}"
        )
