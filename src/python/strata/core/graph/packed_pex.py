"""Splitting a packed PEX into store nodes, so that each wheel can get a layer of its own.

`pex --layout packed` writes every wheel as `.deps/<wheel>` and the bootstrap as `.bootstrap`
(each a zip file, or a directory for loose-like tooling) beside PEX-INFO, `__main__.py` and the
user code.
"""

from __future__ import annotations

from typing import Dict, Iterable, List

_DEPS = ".deps/"
_BOOTSTRAP = ".bootstrap"


def split_packed_pex(key: str, pex_root: str, paths: Iterable[str]) -> Dict[str, List[str]]:
    """The paths of each node the PEX at `pex_root` becomes: `<key>#<wheel>` per wheel,
    `<key>#.bootstrap`, and `key` for the rest (always present: it references the others)."""
    parts: Dict[str, List[str]] = {key: []}
    prefix = pex_root.rstrip("/") + "/"
    for path in paths:
        rel = path[len(prefix):] if path.startswith(prefix) else ""
        if rel.startswith(_DEPS) and len(rel) > len(_DEPS):
            part = f"{key}#{rel[len(_DEPS):].split('/', 1)[0]}"
        elif rel.split("/", 1)[0] == _BOOTSTRAP:
            part = f"{key}#{_BOOTSTRAP}"
        else:
            part = key
        parts.setdefault(part, []).append(path)
    return parts
