"""The `rootfs` output format (dockerTools' `exportImage`): an image's layers, its base's first,
merged into one tar of the filesystem a container of the image starts with.

OCI's rules for applying layers: an entry replaces what lower layers had at its path (a
directory over a directory only changes the directory's own metadata, anything else also drops
what was below it); `.wh.<name>` deletes <name> of the lower layers, and `.wh..wh..opq` every
child the lower layers gave its directory; neither whiteout touches entries of its own layer,
and neither appears in the output. The merged entries are written sorted by path (bytewise, so
each directory before its children), each with the header values of the layer it comes from.

Layers are read three times: once checked whole against layer.json (blob digest, diff_id;
compressed layers are decompressed on the way into unnamed scratch files beside the output, so
nothing is held in memory but headers, and nothing is left behind), once for their headers
(strata.core.oci.layertar: a corrupt tar is an error, never a shorter tree), which make the
merged tree in memory, and once for the contents, in output order.
"""

import json
import os
import tarfile
import tempfile

from strata.core.atomic import write_bytes_atomically
from strata.core.build.tarstream import (
    BLOCK,
    USTAR_HEADER,
    USTAR_MAGIC,
    octal_field,
    pax_record,
    split_ustar,
)
from strata.core.build.compression import CHUNK
from strata.core.oci import layertar
from strata.core.oci.archive import ARCHIVE_MTIME
from strata.core.oci.layer_reader import LayerReader
from strata.core.oci.model import load_base

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_TYPEFLAGS = {
    tarfile.SYMTYPE: b"2",
    tarfile.CHRTYPE: b"3",
    tarfile.BLKTYPE: b"4",
    tarfile.DIRTYPE: b"5",
    tarfile.FIFOTYPE: b"6",
}
# What this writer encodes from the header's fields itself; every other PAX record of an entry
# (xattrs such as file capabilities, atime) is kept as the layer has it.
_OWN_RECORDS = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "hdrcharset"}
_ENCODING = layertar.ENCODING


class _Entry:
    """A path of the merged tree: its header and layer, and for a directory its children. Hard
    links to one file share one _Entry."""

    __slots__ = ("info", "layer", "children")

    def __init__(self, info, layer: int):
        self.info = info  # None for a directory no layer has an entry for (a parent implied)
        self.layer = layer
        self.children = {} if info is None or info.isdir() else None


def _parts(name: str, where: str) -> list:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{where}: entry {name!r} escapes the root")
    return parts


class _Tree:
    def __init__(self):
        self.root = _Entry(None, -1)

    def find(self, parts: list):
        """The entry at `parts`, or None (a missing path, or one under a non-directory)."""
        entry = self.root
        for part in parts:
            if entry.children is None:
                return None
            entry = entry.children.get(part)
            if entry is None:
                return None
        return entry

    def parent(self, parts: list, where: str) -> dict:
        """The children of the directory holding `parts`, directories implied as needed."""
        entry = self.root
        for i, part in enumerate(parts[:-1]):
            child = entry.children.get(part)
            if child is None:
                child = entry.children[part] = _Entry(None, -1)
            elif child.children is None:
                raise ValueError(
                    f"{where}: {'/'.join(parts)} is under {'/'.join(parts[: i + 1])}, which "
                    "is not a directory"
                )
            entry = child
        return entry.children

    def whiteout(self, parts: list) -> None:
        """Applies a whiteout entry of an upper layer to what the lower layers left."""
        directory = self.find(parts[:-1])
        if directory is None or directory.children is None:
            return
        name = parts[-1]
        if name == OPAQUE:
            directory.children.clear()
        elif not name.startswith(WHITEOUT + WHITEOUT):  # other .wh..wh. names are aufs' own
            directory.children.pop(name[len(WHITEOUT):], None)

    def add(self, parts: list, info, layer: int, where: str) -> None:
        children = self.parent(parts, where)
        name = parts[-1]
        if info.islnk():
            target = self.find(_parts(info.linkname, where))
            if target is None or target.children is not None:
                raise ValueError(
                    f"{where}: hard link {'/'.join(parts)} names {info.linkname!r}, which is "
                    "not a file of this or a lower layer"
                )
            children[name] = target
            return
        old = children.get(name)
        entry = _Entry(info, layer)
        if old is not None and old.children is not None and entry.children is not None:
            entry.children = old.children  # a directory over a directory keeps its contents
        children[name] = entry

    def sorted_entries(self) -> list:
        """(path, entry) for every path, sorted bytewise."""
        found, pending = [], [("", self.root)]
        while pending:
            prefix, directory = pending.pop()
            for name, entry in directory.children.items():
                path = prefix + name
                found.append((path.encode(*_ENCODING), path, entry))
                if entry.children is not None:
                    pending.append((path + "/", entry))
        found.sort(key=lambda item: item[0])
        return [(path, entry) for _, path, entry in found]


def _layer_file(layer, zstd, scratch_dir: str):
    """The layer's tar as a seekable file, checked against layer.json: the blob itself, or its
    contents decompressed into an unnamed scratch file."""
    if layer.info["compression"] == "none":
        with LayerReader(layer, zstd) as data:
            while data.read(CHUNK):
                pass
        return open(layer.blob_path, "rb")
    scratch = tempfile.TemporaryFile(dir=scratch_dir)
    try:
        with LayerReader(layer, zstd) as data:
            while True:
                chunk = data.read(CHUNK)
                if not chunk:
                    break
                scratch.write(chunk)
    except BaseException:
        scratch.close()
        raise
    scratch.seek(0)
    return scratch


def _merge(layers: list, files: list) -> _Tree:
    tree = _Tree()
    for index, (layer, f) in enumerate(zip(layers, files)):
        where = f"layer {index} ({layer.blob_path})"
        members = []
        for info in layertar.entries(f, where):
            parts = _parts(info.name, where)
            if not parts:
                continue  # the root itself: the output has no entry for it
            if parts[-1].startswith(WHITEOUT):
                tree.whiteout(parts)  # before the layer's own entries: lower layers only
            elif info.issparse() or not (info.isreg() or info.islnk()
                                         or info.type in _TYPEFLAGS):
                raise ValueError(f"{where}: {info.name} is a sparse file or of tar type "
                                 f"{info.type!r}, which rootfs does not write")
            else:
                members.append((parts, info))
        for parts, info in members:
            tree.add(parts, info, index, where)
    return tree


def _field(value: int, width: int, key: str, records: list) -> bytes:
    """An octal field, or 0 and a PAX record when `value` does not fit it."""
    if 0 <= value < 8 ** (width - 1):
        return octal_field(value, width, key)
    records.append((key.encode(), b"%d" % value))
    return octal_field(0, width, key)


def _name_field(name: str, key: str, records: list) -> bytes:
    encoded = name.encode(*_ENCODING)
    if name.isascii() and len(encoded) < 32:
        return encoded
    records.append((key.encode(), encoded))
    return b""


def _header(path: str, typeflag: bytes, info, size: int, link: str) -> bytes:
    """The entry's ustar header with `info`'s mode, owner, mtime and device numbers, after a
    PAX header for whatever ustar cannot hold and the layer's own other records."""
    records = []
    name = path.encode(*_ENCODING)
    split = split_ustar(name) if path.isascii() else None
    if split is None:
        records.append((b"path", name))
        split = (name[:100], b"")
    link_bytes = link.encode(*_ENCODING)
    if not link.isascii() or len(link_bytes) > 100:
        records.append((b"linkpath", link_bytes))
        link_bytes = link_bytes[:100]
    mtime = info.mtime if info is not None else ARCHIVE_MTIME
    if int(mtime) != mtime:  # a PAX mtime with a fraction: kept as the layer wrote it
        records.append((b"mtime", info.pax_headers["mtime"].encode()))
        mtime_field = _field(int(mtime), 12, "mtime", [])
    else:
        mtime_field = _field(int(mtime), 12, "mtime", records)
    fields = (
        octal_field(info.mode if info is not None else 0o755, 8, "mode"),
        _field(info.uid if info is not None else 0, 8, "uid", records),
        _field(info.gid if info is not None else 0, 8, "gid", records),
        _field(size, 12, "size", records),
        mtime_field,
    )
    owner = (
        _name_field(info.uname if info is not None else "root", "uname", records),
        _name_field(info.gname if info is not None else "root", "gname", records),
    )
    devices = (info.devmajor, info.devminor) if typeflag in (b"3", b"4") else (0, 0)
    if info is not None:
        records.extend(
            (key.encode(*_ENCODING), value.encode(*_ENCODING))
            for key, value in sorted(info.pax_headers.items()) if key not in _OWN_RECORDS
        )
    pax = b""
    if records:
        payload = b"".join(pax_record(key, value) for key, value in records)
        base = name.rstrip(b"/").rsplit(b"/", 1)[-1]
        pax = _block((b"PaxHeaders/" + base)[:100], b"", b"x", octal_field(0o644, 8, "mode"),
                     octal_field(0, 8, "uid"), octal_field(0, 8, "gid"),
                     octal_field(len(payload), 12, "size"), fields[4], b"", (b"root", b"root"),
                     (0, 0))
        pax += payload + bytes(-len(payload) % BLOCK)
    return pax + _block(split[0], split[1], typeflag, *fields, link_bytes, owner, devices)


def _block(name, prefix, typeflag, mode, uid, gid, size, mtime, link, owner, devices) -> bytes:
    fields = [name, mode, uid, gid, size, mtime, b" " * 8, typeflag, link, USTAR_MAGIC, *owner,
              octal_field(devices[0], 8, "devmajor"), octal_field(devices[1], 8, "devminor"),
              prefix]
    fields[6] = b"%06o\0 " % sum(USTAR_HEADER.pack(*fields))
    return USTAR_HEADER.pack(*fields)


def _copy(src, offset: int, size: int, out, path: str) -> None:
    src.seek(offset)
    remaining = size
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise ValueError(f"rootfs: {path} ends {remaining} bytes short in its layer")
        out.write(chunk)
        remaining -= len(chunk)
    out.write(bytes(-size % BLOCK))


def _write(tree: _Tree, files: list, out) -> None:
    written = {}  # id(entry) -> the path a file was first written at: later paths link to it
    for path, entry in tree.sorted_entries():
        info = entry.info
        if entry.children is not None:
            out.write(_header(path + "/", b"5", info, 0, ""))
        elif id(entry) in written:
            out.write(_header(path, b"1", info, 0, written[id(entry)]))
        elif info.isreg():
            written[id(entry)] = path
            out.write(_header(path, b"0", info, info.size, ""))
            _copy(files[entry.layer], info.offset_data, info.size, out, path)
        else:
            written[id(entry)] = path
            out.write(_header(path, _TYPEFLAGS[info.type], info, 0, info.linkname))
    out.write(bytes(2 * BLOCK))


def write_rootfs(layers: list, out, scratch_dir: str, zstd=None) -> None:
    """The merged filesystem of `layers` (model.Layer, bottom first) as one tar to `out`;
    `zstd` decompresses zstd layers, `scratch_dir` holds decompressed layers while it runs."""
    files = []
    try:
        for layer in layers:
            files.append(_layer_file(layer, zstd, scratch_dir))
        _write(_merge(layers, files), files, out)
    finally:
        for f in files:
            f.close()


def merged_paths(layers: list, scratch_dir: str, zstd=None) -> list:
    """The merged filesystem's paths, sorted, as `[path, kind, mode, symlink target]` (kind
    "dir", "file", "symlink" or "other"; the `layer` subcommand's `--paths` form): what the
    shell checks an image's programs against when its base is one Strata did not build."""
    files = []
    try:
        for layer in layers:
            files.append(_layer_file(layer, zstd, scratch_dir))
        tree = _merge(layers, files)
    finally:
        for f in files:
            f.close()
    return [[path, *_path_kind(entry)] for path, entry in tree.sorted_entries()]


def _path_kind(entry: _Entry) -> list:
    info = entry.info
    if entry.children is not None:
        return ["dir", 0o755 if info is None else info.mode, ""]
    if info.issym():
        return ["symlink", info.mode, info.linkname]
    return ["file" if info.isreg() or info.islnk() else "other", info.mode, ""]


def base_paths_command(options) -> None:
    """`base-paths --base DIR --out FILE [--zstd PATH]`: the merged paths of a base dir's
    layers."""
    _, layers = load_base(options.base)
    scratch = os.path.dirname(os.path.abspath(options.out))
    paths = merged_paths(layers, scratch, options.zstd)
    write_bytes_atomically(options.out, json.dumps(paths, separators=(",", ":")).encode())
