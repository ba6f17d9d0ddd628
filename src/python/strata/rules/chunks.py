"""Cutting many paths into chunks whose bounds depend on the paths alone.

Pants re-does a request whole when any of its inputs changes: a snapshot of 10,000 paths is
rebuilt, and a sandbox of 10,000 files rewritten, when one of them changes. Asked chunk by
chunk, only the changed path's chunk is done again. A chunk ends after a path whose hash says
so (or at four times the mean size), so an edit to a file moves no bound and a new file moves
only its neighbours'.
"""

from __future__ import annotations

import zlib
from typing import Callable, Iterable, List, TypeVar

T = TypeVar("T")

MEAN_CHUNK = 256  # items


def path_chunks(items: Iterable[T], path_of: Callable[[T], str]) -> List[List[T]]:
    """`items` in path order, in chunks of MEAN_CHUNK paths on average."""
    chunks: List[List[T]] = []
    current: List[T] = []
    for item in sorted(items, key=path_of):
        current.append(item)
        if (zlib.crc32(path_of(item).encode()) % MEAN_CHUNK == 0
                or len(current) >= 4 * MEAN_CHUNK):
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks
