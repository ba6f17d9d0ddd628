"""The `layer` subcommand: one layer spec in, one deterministic layer blob and its digests out.

See docs/architecture.md. Every entry is collected and checked (kinds, paths, conflicts) before
the first byte is written; a file's size is read from the open file as it is added, so it always
matches the bytes. Modes come from the spec alone: a sandbox's file modes say nothing reliable
(Pants hardlinks large inputs from a store where every file is 0555). The tar is written once,
hashed (diff_id) and compressed (digest) in the same pass, by a second thread while the main one
reads the next files.
"""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
import stat
import threading
from _queue import SimpleQueue  # what queue.SimpleQueue is, without queue's imports (heapq)

from strata.core.build import json_c, parts
from strata.core.build.blobstore import BlobStore, copy_out, write_stamp
from strata.core.build.collector import Collector, LayerContext, LayerEntry
from strata.core.build.compression import SUFFIXES, open_compressor
from strata.core.build.hashing import HashingWriter
from strata.core.build.tarstream import TarWriter
from strata.core.build.spec import LayerSpec
from strata.core.errors import InvalidInput, UsageError

# The tar's blocks: large enough that the hash, compressor and file see few writes, small enough
# to stay in the CPU's caches on their way through.
_BUFFER_SIZE = 1 << 20

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)

# Beside layer.json when the blob went to the blob store: its `file_stamp`.
STAMP = "blob-stamp.json"

class _WriterThread:
    """Feeds the tar's blocks to `write` (hash, compress, write the blob) from a second thread, so
    that this work overlaps reading the next files rather than following it: hashing, deflate and
    file writes release the GIL. The TarWriter hands over its filled buffers (`take_buffer`) and
    gets recycled ones back, so blocks are not copied and memory stays bounded; one FIFO queue and
    one thread keep the blocks in order, so the bytes are the same."""

    def __init__(self, write, block_size: int, spare: int = 16):
        self._write = write
        self._block_size = block_size
        self._free: SimpleQueue[bytearray] = SimpleQueue()
        # Up to `spare` blocks in flight, so that a burst of small files does not stall on the
        # writer; allocated as needed, so a small layer never touches that much memory.
        self._unallocated = spare
        self._full: SimpleQueue[tuple[bytearray, int] | None] = SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="layer-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            buffer, size = item
            if self._error is None:  # after an error, keep recycling so that nothing blocks
                try:
                    self._write(memoryview(buffer)[:size])
                except BaseException as e:  # re-raised in the main thread
                    self._error = e
            self._free.put(buffer)

    def take_buffer(self, buffer: bytearray, size: int) -> bytearray:
        """Queues `buffer[:size]` for writing and returns a free buffer."""
        if self._error is not None:
            raise self._error
        self._full.put((buffer, size))
        return self._free_buffer()

    def _free_buffer(self) -> bytearray:
        if self._unallocated and self._free.empty():
            self._unallocated -= 1
            return bytearray(self._block_size)
        return self._free.get()

    def write(self, data) -> None:
        """Queues a copy of `data` in free buffers (the TarWriter hands over its own instead)."""
        view = memoryview(data)
        for start in range(0, len(view), self._block_size):
            piece = view[start : start + self._block_size]
            buffer = self._free_buffer()
            buffer[: len(piece)] = piece  # same length: overwrites in place
            self._free.put(self.take_buffer(buffer, len(piece)))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self._full.put(None)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


def _add_file(tar: TarWriter, entry: LayerEntry) -> None:
    """Adds a file entry through a bare descriptor (no file object; one read for most files),
    its size read from the open file, so that it matches the bytes written."""
    try:
        fd = os.open(entry.source, _READ_FLAGS)
    except OSError as e:
        raise ValueError(f"{entry.origin}: cannot read {entry.source!r}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        tar.add_file(entry.path, st.st_size, fd, entry.mode, entry.owner)
    except (OSError, ValueError) as e:
        raise ValueError(f"{entry.origin}: {e}") from None
    finally:
        os.close(fd)


def _collect(spec: LayerSpec, context: LayerContext) -> list:
    """Every entry of the layer, checked, sorted by image path."""
    collector = Collector()
    for name, items in spec.parts:
        add = parts.load(name).add
        for index, item in enumerate(items):
            add(collector, context, item, f"{name}[{index}]")
    collector.add_parents()
    if spec.commands:
        from strata.core.build.commands import run_commands  # subprocess: only when needed

        collector.entries = run_commands(spec.commands, collector.entries, context)
    if spec.permissions:
        from strata.core.build.permissions import apply_permissions

        apply_permissions(collector.entries, spec.permissions, spec.settings)
    return [collector.entries[path] for path in sorted(collector.entries)]


def build_layer(spec: LayerSpec, sandbox_root: str | os.PathLike,
                out_dir: str | os.PathLike, paths_out: str | None = None,
                store: BlobStore | None = None) -> dict:
    """Writes layer.json for `spec` into `out_dir` and the layer blob there too, or with
    `store` into the blob store; with `paths_out` the layer's path list there; returns
    layer.json's data."""
    with LayerContext(os.fspath(sandbox_root), spec.settings) as context:
        entries = _collect(spec, context)
        if paths_out is not None:
            _write_paths(entries, paths_out)
        return _write(entries, spec.settings, out_dir, store)


def _write_paths(entries: list, paths_out: str) -> None:
    """`[[path, kind, mode, target], ...]`, one entry a line: what the shell checks the image's
    programs against (`strata.core.graph.image_files`) without reading the layer."""
    encode = json_c.encode_string
    with open(paths_out, "w", encoding="utf-8") as f:
        f.write("[" + ",\n".join(
            f"[{encode(e.path)},{encode(e.kind)},{e.mode or 0},{encode(e.target or '')}]"
            for e in entries
        ) + "]\n")


def _write(entries: list, settings, out_dir, store: BlobStore | None) -> dict:
    compression = settings.compression
    blob_name = "layer.tar" + SUFFIXES[compression]
    os.makedirs(out_dir, exist_ok=True)
    opened = store.writer() if store else open(os.path.join(out_dir, blob_name), "wb")
    with opened as blob_file:
        # Uncompressed, the blob is the tar: one hash gives both digests.
        blob = HashingWriter(blob_file) if compression != "none" else None
        sink = blob_file if blob is None else blob
        with open_compressor(compression, sink, settings.zstd) as compressor:
            tar_bytes = HashingWriter(compressor)
            with _WriterThread(tar_bytes.write, _BUFFER_SIZE) as writer:
                # Gathered into large blocks, file contents read straight into them, so that the
                # hash, compressor and file see few writes.
                tar = TarWriter(writer, mtime=settings.mtime, uid=settings.uid,
                                gid=settings.gid, uname=settings.uname,
                                gname=settings.gname, buffer_size=_BUFFER_SIZE)
                for entry in entries:
                    if entry.kind == "dir":
                        tar.add_dir(entry.path, entry.mode, entry.owner)
                    elif entry.kind == "symlink":
                        tar.add_symlink(entry.path, entry.target, entry.owner)
                    else:
                        _add_file(tar, entry)
                tar.close()
    if blob is None:
        blob = tar_bytes
    result = {
        "diff_id": tar_bytes.digest_str(),
        "size": tar_bytes.size,
        "digest": blob.digest_str(),
        "blob_size": blob.size,
        "compression": compression,
        "entries": len(entries),
    }
    if store:  # the blob is the store's sha256/<hex of digest>; its stamp beside layer.json
        write_stamp(os.path.join(out_dir, STAMP), blob_file)
    else:
        result["blob"] = blob_name
    _write_metadata(out_dir, result)
    return result


def _write_metadata(out_dir, info: dict) -> None:
    with open(os.path.join(out_dir, "layer.json"), "w", encoding="utf-8") as f:
        f.write(json_c.dumps_flat(info) + "\n")


def emit_layer(spec: LayerSpec, sandbox_root, out_dir, store: BlobStore, expected: dict) -> None:
    """The blob of the layer `expected` (a layer.json its blob went to the store with) as a
    file in `out_dir`, for Pants to cache (and share through a remote cache): copied from the
    store when it holds it, checked as it is read, else the layer written again, which must
    be the same bytes."""
    info = dict(expected, blob="layer.tar" + SUFFIXES[expected["compression"]])
    dest = os.path.join(out_dir, info["blob"])
    os.makedirs(out_dir, exist_ok=True)
    if store.has(info["digest"], info["blob_size"]):
        copy_out(store, info["digest"], info["blob_size"], dest, "the layer")
    else:
        written = build_layer(spec, sandbox_root, out_dir)
        changed = [key for key in ("digest", "blob_size", "diff_id", "size")
                   if written[key] != expected[key]]
        if changed:
            raise InvalidInput(
                f"the layer written again differs from the one first written: its "
                f"{', '.join(f'{k} is {written[k]}, not {expected[k]}' for k in changed)}; "
                "its inputs or Strata's layer code are not deterministic"
            )
    _write_metadata(out_dir, info)


def layer_command(options) -> None:
    """`layer --spec SPEC --out OUTDIR [--paths FILE] [--blob-store DIR [--expect FILE]]`, run
    in the sandbox root: see docs/architecture.md, "The blob store"."""
    with open(options.spec, encoding="utf-8") as f:
        spec = LayerSpec.from_json(json_c.loads(f.read()))
    store = BlobStore(options.blob_store) if options.blob_store else None
    if options.expect:
        if store is None:
            raise UsageError("--expect needs --blob-store")
        with open(options.expect, encoding="utf-8") as f:
            expected = json_c.loads(f.read())
        emit_layer(spec, os.getcwd(), options.out, store, expected)
        return
    build_layer(spec, os.getcwd(), options.out, options.paths, store)
