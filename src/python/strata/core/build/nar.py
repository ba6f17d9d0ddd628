"""Nix store paths as layer content: the `nars` part (strata.core.build.parts.nars) reads each NAR (`nix-store --dump`).

A NAR is "nix-archive-1", then one node: `( type regular [executable ""] contents <data> )`,
`( type symlink target <target> )` or `( type directory (entry ( name <name> node <node> ))* )`,
each word a string: its length (u64, little-endian), its bytes, zeros up to a multiple of 8.
The NAR is read once, as a stream, and hashed as it is read: its sha256 must be the spec's
`nar_hash`, checked before the layer is written. File contents are copied into the sandbox's
scratch directory, as a .deb's are; the entries get Nix's modes (directories 0555, files 0444,
or 0555 when executable) and are added like explicit entries. Parents above the store path
(`nix/`, `nix/store/`) are the layer's usual 0755 directories. No `json`, `re` or `typing`:
a layer Process imports this module.
"""

import hashlib
import os

from strata.core.build.compression import CHUNK
from strata.core.build.parts.entries import Entry

MAGIC = b"nix-archive-1"
# Tokens, names and symlink targets are short (a file name is at most 255 bytes, a target at
# most PATH_MAX); only file contents are long, and those are streamed.
_MAX_STRING = 4096


class NarReader:
    """The NAR's bytes in order, each one hashed as it is read."""

    def __init__(self, f):
        self._f = f
        self._hash = hashlib.sha256()

    def _exact(self, size: int) -> bytes:
        data = self._f.read(size)
        if len(data) != size:
            raise ValueError("the NAR ends early (truncated)")
        self._hash.update(data)
        return data

    def _padding(self, size: int) -> None:
        if size % 8 and self._exact(8 - size % 8).strip(b"\0"):
            raise ValueError("non-zero padding after a string")

    def length(self) -> int:
        return int.from_bytes(self._exact(8), "little")

    def string(self) -> bytes:
        size = self.length()
        if size > _MAX_STRING:
            raise ValueError(f"a {size}-byte name, target or token (at most {_MAX_STRING})")
        data = self._exact(size)
        self._padding(size)
        return data

    def expect(self, token: bytes) -> None:
        found = self.string()
        if found != token:
            raise ValueError(f"expected {token.decode()!r}, found {found[:40]!r}")

    def copy(self, size: int, out) -> None:
        """The next `size` bytes (a file's contents, and their padding) into `out`."""
        left = size
        while left:
            chunk = self._exact(min(CHUNK, left))
            out.write(chunk)
            left -= len(chunk)
        self._padding(size)

    def at_end(self) -> bool:
        return not self._f.read(1)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _name(raw: bytes) -> str:
    if not raw or raw in (b".", b"..") or b"/" in raw or b"\0" in raw:
        raise ValueError(f"invalid directory entry name {raw!r}")
    # Undecodable bytes survive as surrogates, which the layer reports as not UTF-8.
    return raw.decode("utf-8", "surrogateescape")


def nar_entries(nar: NarReader, top: str, work: str, sandbox_root: str) -> list:
    """Spec entries for the NAR's root node at image path `top`; file contents are copied
    under `work`. Nodes nest, so the open directories are a stack: a deep tree is no deep
    recursion."""
    nar.expect(MAGIC)
    entries = []
    directories = []  # the open directories, innermost last: [image path, last name read]
    path = top
    while path is not None:
        nar.expect(b"(")
        nar.expect(b"type")
        kind = nar.string()
        if kind == b"directory":
            entries.append(Entry.dir(path, 0o555))
            directories.append([path, None])
        else:
            if kind == b"regular":
                entries.append(_regular(nar, path, os.path.join(work, str(len(entries))),
                                        sandbox_root))
            elif kind == b"symlink":
                nar.expect(b"target")
                target = nar.string()
                if not target or b"\0" in target:
                    raise ValueError(f"/{path}: invalid symlink target {target!r}")
                entries.append(Entry.symlink(path, target.decode("utf-8", "surrogateescape")))
            else:
                raise ValueError(f"/{path}: unknown node type {kind[:40]!r}")
            nar.expect(b")")
            if directories:
                nar.expect(b")")  # the end of the directory entry that held this node
        path = _next_entry(nar, directories)
    if not nar.at_end():
        raise ValueError("bytes after the NAR's root node")
    return entries


def _regular(nar: NarReader, path: str, content: str, sandbox_root: str) -> Entry:
    tag = nar.string()
    executable = tag == b"executable"
    if executable:
        nar.expect(b"")
        tag = nar.string()
    if tag != b"contents":
        raise ValueError(f"/{path}: expected 'contents', found {tag[:40]!r}")
    with open(content, "xb") as out:
        nar.copy(nar.length(), out)
    return Entry.file(path, os.path.relpath(content, sandbox_root),
                      0o555 if executable else 0o444)


def _next_entry(nar: NarReader, directories: list):
    """The image path of the next node: the next entry of the innermost open directory, after
    closing those that end here; None after the root's end."""
    while directories:
        tag = nar.string()
        directory = directories[-1]
        if tag == b")":
            directories.pop()
            if directories:
                nar.expect(b")")  # the end of the entry holding the closed directory
            continue
        if tag != b"entry":
            raise ValueError(f"/{directory[0]}: expected 'entry' or ')', found {tag[:40]!r}")
        nar.expect(b"(")
        nar.expect(b"name")
        raw = nar.string()
        if directory[1] is not None and raw <= directory[1]:
            raise ValueError(f"/{directory[0]}: entry names not sorted or repeated "
                             f"({directory[1]!r}, then {raw!r})")
        directory[1] = raw
        nar.expect(b"node")
        return f"{directory[0]}/{_name(raw)}"
    return None
