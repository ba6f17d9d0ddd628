"""`nix-links`: dockerTools' `copyToRoot` links, as `symlinkJoin`/`buildEnv` makes them.

For each top-level store path, in order, and each of `paths_to_link` it has (`bin`, ...), every
file or symlink below gets a symlink at the same relative path in the image's root, pointing at
its absolute store path; directories stay real directories, shared between store paths. Two
store paths with something other than a directory at one relative path collide (buildEnv's
error): the image could hold only one of them.

Only the closure is read: the image holds nothing else. A symlink is followed only when every
step of it stays inside the closure's store paths; one that leaves them (`etc -> /etc`, a store
path the closure lacks, `../../..`) is linked as it is, never walked, as buildEnv links a
symlink it does not descend into. Walking it would mirror the build machine's files.

Read from the machine's store: like copying a store path's NAR, the result depends on the store
paths alone, which never change once built.
"""

import json
import os
from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple

from strata.core.atomic import write_bytes_atomically
from strata.core.errors import InvalidInput
from strata.core.nix.spec import NixClosure

_MAX_SYMLINKS = 40  # Linux's bound on the symlinks one lookup follows (ELOOP)


def root_links(
    roots: Sequence[str], paths_to_link: Sequence[str], closure: AbstractSet[str]
) -> List[Tuple[str, str]]:
    """(image path relative to /, link target) pairs, sorted by path; `closure` is every store
    path of the roots' closure."""
    links: Dict[str, str] = {}
    directories: Dict[str, str] = {}  # relative path -> the first store path with it
    for root in roots:
        if not _is_directory_in(root, closure):
            continue  # a store path that is a file, or a symlink, links nothing
        for top in paths_to_link:
            start = os.path.join(root, top)
            if not os.path.lexists(start):
                continue
            if not _is_directory_in(start, closure):
                _claim(links, directories, top, start)
                continue
            for parent, dirs, files in os.walk(start):
                relative = os.path.relpath(parent, root)
                _directory(links, directories, relative, root)
                for name in sorted(dirs):
                    if os.path.islink(os.path.join(parent, name)):
                        _claim(links, directories, f"{relative}/{name}", os.path.join(parent, name))
                for name in sorted(files):
                    _claim(links, directories, f"{relative}/{name}", os.path.join(parent, name))
                dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(parent, d)))
    return sorted(links.items())


def _is_directory_in(path: str, closure: AbstractSet[str]) -> bool:
    """Whether `path` is a directory of the closure, its symlinks followed inside it only."""
    real = resolve_in_closure(path, closure)
    return real is not None and os.path.isdir(real)


def resolve_in_closure(path: str, closure: AbstractSet[str]) -> Optional[str]:
    """`path` with every symlink resolved, as the kernel resolves it, or None when a step leaves
    the closure's store paths (or the path does not exist, or its symlinks loop). Only paths
    inside the closure are looked at: their ancestors (`/nix/store`) are taken as directories."""
    pending = [part for part in reversed(path.split("/")) if part]
    current = "/"
    followed = 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        if not _inside(candidate, closure):
            if not any(member.startswith(candidate + "/") for member in closure):
                return None
            current = candidate  # an ancestor of store paths: /nix, /nix/store
            continue
        if os.path.islink(candidate):
            followed += 1
            if followed > _MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending.extend(part for part in reversed(target.split("/")) if part)
            continue
        if not os.path.lexists(candidate):
            return None
        current = candidate
    return current if _inside(current, closure) else None


def _inside(path: str, closure: AbstractSet[str]) -> bool:
    """Whether `path` is a store path of `closure` or below one."""
    while path not in closure:
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return True


def _claim(links: Dict[str, str], directories: Dict[str, str], path: str, target: str) -> None:
    other = links.get(path) or (directories.get(path) and f"{directories[path]}/{path}")
    if other:
        raise InvalidInput(f"/{path} would link to both {other} and {target}: two top-level "
                           "paths provide it")
    links[path] = target


def _directory(links: Dict[str, str], directories: Dict[str, str], path: str, root: str) -> None:
    if path in links:
        raise InvalidInput(f"/{path} would link to both {links[path]} and the directory "
                           f"{root}/{path}: two top-level paths provide it")
    directories.setdefault(path, root)


def nix_links_command(options) -> None:
    """`nix-links --closure FILE --link DIR [--link ...] --out FILE`: the closure's roots'
    links (FILE as `nix-closure` writes it)."""
    with open(options.closure, "rb") as f:
        closure = NixClosure.from_json(json.load(f), options.closure)
    for root in closure.roots:
        if not os.path.lexists(root):
            raise InvalidInput(f"{root} is not in this machine's Nix store")
    members = frozenset(info.path for info in closure.paths)
    links = root_links(closure.roots, options.link or [], members)
    write_bytes_atomically(options.out, json.dumps(links, indent=0).encode() + b"\n")
