"""An image's files as its layers' path lists give them, and the programs a container would run.

Strata knows every path of an image it built (each layer Process lists what it wrote), so a
program the image cannot start (a `python_venv`'s interpreter, the entrypoint) is a build error
rather than podman's `exec ...: no such file or directory` when the container starts. Paths are
resolved as the kernel resolves them inside the container: symlinks followed within the image,
absolute ones from its root, `..` never above it.
"""

from __future__ import annotations

import posixpath
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

# What runc and podman search for a bare program name when the image's Env sets no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_SYMLINKS = 40  # Linux's bound on the symlinks one lookup follows (ELOOP)


class PathEntry(NamedTuple):
    """One path of a layer: `kind` is "dir", "file" or "symlink"; `target` a symlink's."""

    kind: str
    mode: int
    target: str = ""


def read_path_list(items: Sequence[Sequence]) -> Dict[str, PathEntry]:
    """A layer's path list (`[[path, kind, mode, target], ...]`, paths relative to /, as the
    `layer` subcommand's `--paths` writes it) by path."""
    return {path: PathEntry(kind, mode, target) for path, kind, mode, target in items}


class ImageFiles:
    """The image's paths, `layers` bottom first: a path is what the topmost layer holding it
    says (Strata's layers hold no whiteouts)."""

    def __init__(self, layers: Sequence[Mapping[str, PathEntry]]) -> None:
        self._layers = list(reversed(layers))

    def entry(self, path: str) -> Optional[PathEntry]:
        """The entry at `path` (relative to /, normalised), symlinks not followed."""
        for layer in self._layers:
            found = layer.get(path)
            if found is not None:
                return found
        return None

    def resolve(self, path: str) -> Tuple[str, Optional[PathEntry]]:
        """(the absolute path `path` leads to, its entry, or None when nothing is there or the
        symlinks loop): every symlink on the way followed inside the image."""
        pending = [part for part in reversed(path.split("/")) if part]
        current = ""  # relative to /
        followed = 0
        entry: Optional[PathEntry] = PathEntry("dir", 0o755)
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                current = posixpath.dirname(current)
                entry = self.entry(current) if current else PathEntry("dir", 0o755)
                continue
            candidate = f"{current}/{name}" if current else name
            entry = self.entry(candidate)
            if entry is not None and entry.kind == "symlink":
                followed += 1
                if followed > _MAX_SYMLINKS:
                    return "/" + candidate, None
                if entry.target.startswith("/"):
                    current = ""
                pending.extend(part for part in reversed(entry.target.split("/")) if part)
                if not current and not pending:
                    entry = PathEntry("dir", 0o755)  # a link to /
                continue
            current = candidate
            if entry is None and pending and not self._has_below(candidate):
                return "/" + posixpath.join(candidate, *reversed(pending)), None
        return "/" + current, entry

    def _has_below(self, path: str) -> bool:
        """Whether some layer holds a path below `path` (a directory whose own entry a base's
        layer may lack)."""
        prefix = path + "/"
        return any(p.startswith(prefix) for layer in self._layers for p in layer)


def program_problem(files: ImageFiles, path: str) -> Optional[str]:
    """Why the absolute `path` cannot be executed in the image, or None when it can: what is
    (not) there, and where its symlinks led."""
    resolved, entry = files.resolve(path)
    via = f" (it leads to {resolved})" if resolved != posixpath.normpath(path) else ""
    if entry is None:
        return f"{path} is not in the image{via}"
    if entry.kind != "file":
        return f"{path} is a directory, not a program{via}"
    if not entry.mode & 0o111:
        return f"{path} is not executable (mode {entry.mode:04o}){via}"
    return None


def find_program(
    files: ImageFiles, program: str, env: Sequence[str], workdir: str = "/"
) -> Tuple[Optional[str], List[str]]:
    """(the path a container runtime executes for `program`, or None; the problems of each
    path tried): an absolute path is itself, one with a slash is relative to `workdir`, a bare
    name is searched on the PATH the image's `env` (`KEY=VALUE` entries) sets, as runc does."""
    if "/" in program:
        path = program if program.startswith("/") else posixpath.normpath(
            posixpath.join(workdir or "/", program))
        problem = program_problem(files, path)
        return (None, [problem]) if problem else (path, [])
    search = DEFAULT_PATH
    for item in env:
        key, _, value = item.partition("=")
        if key == "PATH":
            search = value
    problems = []
    for directory in search.split(":"):
        if not directory.startswith("/"):
            continue  # runc resolves PATH entries that are not absolute against nothing useful
        path = posixpath.join(directory, program)
        problem = program_problem(files, path)
        if problem is None:
            return path, problems
        problems.append(problem)
    return None, problems or [f"PATH ({search}) holds no absolute directory"]
