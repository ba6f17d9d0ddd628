"""`nix-links`: dockerTools' `copyToRoot` links, as `symlinkJoin`/`buildEnv` makes them.

For each top-level store path, in order, and each of `paths_to_link` it has (`bin`, ...), every
file or symlink below gets a symlink at the same relative path in the image's root, pointing at
its absolute store path; directories stay real directories, shared between store paths. Two
store paths with something other than a directory at one relative path collide (buildEnv's
error): the image could hold only one of them.

Read from the machine's store: like copying a store path's NAR, the result depends on the store
paths alone, which never change once built.
"""

import json
import os
from typing import Dict, List, Sequence, Tuple

from strata.core.atomic import write_bytes_atomically
from strata.core.errors import InvalidInput


def root_links(roots: Sequence[str], paths_to_link: Sequence[str]) -> List[Tuple[str, str]]:
    """(image path relative to /, link target) pairs, sorted by path."""
    links: Dict[str, str] = {}
    directories: Dict[str, str] = {}  # relative path -> the first store path with it
    for root in roots:
        for top in paths_to_link:
            start = os.path.join(root, top)
            if os.path.islink(start) and not os.path.isdir(start) or os.path.isfile(start):
                _claim(links, directories, top, start)
                continue
            if not os.path.isdir(start):
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
    """`nix-links --root STORE_PATH [--root ...] --link DIR [--link ...] --out FILE`."""
    for root in options.root:
        if not os.path.isdir(root) and not os.path.lexists(root):
            raise InvalidInput(f"{root} is not in this machine's Nix store")
    links = root_links(options.root, options.link or [])
    write_bytes_atomically(options.out, json.dumps(links, indent=0).encode() + b"\n")
