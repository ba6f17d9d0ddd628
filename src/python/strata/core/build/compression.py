"""Deterministic streaming compressors: `write(data)` then `close()`, which never closes `out`.

Same input, same bytes: gzip with a fixed header and level, zstd through a given binary at a fixed
level (its output does not depend on the Python version).
"""

import os
import struct
import sys
import threading
import zlib

CHUNK = 1 << 20
# Each compression of a layer blob, and the suffix of its file name.
SUFFIXES = {"none": "", "gzip": ".gz", "zstd": ".zst"}


class _Compressor:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class _Plain(_Compressor):
    def __init__(self, out):
        self._out = out

    def write(self, data) -> None:
        self._out.write(data)

    def close(self) -> None:
        pass


class _Gzip(_Compressor):
    # Magic, deflate, no flags (so no file name), mtime 0, no extra flags, OS "unknown": written
    # here rather than by zlib, whose OS byte depends on the platform it was built for.
    _HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

    def __init__(self, out):
        self._out = out
        self._deflate = zlib.compressobj(
            6, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY
        )
        self._crc = 0
        self._size = 0
        out.write(self._HEADER)

    def write(self, data) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        compressed = self._deflate.compress(data)
        if compressed:
            self._out.write(compressed)

    def close(self) -> None:
        if self._deflate is not None:
            trailer = struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
            self._out.write(self._deflate.flush() + trailer)
            self._deflate = None


def _enlarge_pipe(fd: int) -> None:
    """Moves data through the pipe in up to 1 MiB at a time rather than Linux's default 64 KiB:
    far fewer wake-ups of each side. Only the speed changes, never the bytes."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)  # the name is 3.10+
    except OSError:
        pass  # e.g. above /proc/sys/fs/pipe-max-size: the default size works, only slower


def _zstd(binary: str, flag: str, pump, other_end):
    """The `zstd` binary as a pipe, stdin to stdout (its stderr kept for a failure's message),
    and a thread running `pump(proc, other_end)`, one side of the pipe, so that neither pipe
    fills up. The one place zstd runs: ZSTD_CLEVEL, ZSTD_NBTHREADS and the like from the
    environment must not change what is written or read."""
    if not binary or not os.path.isabs(binary):
        raise ValueError(f"zstd binary must be an absolute path, got {binary!r}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZSTD_")}
    import subprocess  # here: a layer without zstd does not pay for importing it

    proc = subprocess.Popen([binary, flag, "-q", "-c", "--no-progress"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _enlarge_pipe(proc.stdin.fileno())
    _enlarge_pipe(proc.stdout.fileno())
    thread = threading.Thread(target=pump, args=(proc, other_end), daemon=True)
    thread.start()
    return proc, thread


def copy_stream(source, out) -> None:
    """Chunk by chunk to the end of `source` (shutil.copyfileobj without shutil's imports): one
    side of a zstd pipe, in its own thread; a blob into or out of the blob store."""
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        out.write(chunk)


def _failure(proc) -> str:
    """What a zstd that exited with an error said, after its exit status."""
    said = proc.stderr.read().decode(errors="replace").strip()
    return f"{proc.args[0]} exited with status {proc.returncode}" + (f": {said}" if said else "")


class _Zstd(_Compressor):
    """Pipes through the `zstd` binary; a thread drains its stdout so neither pipe fills up."""

    def __init__(self, out, binary: str):
        self._error = None
        self._proc, self._pump = _zstd(binary, "-3", self._drain, out)

    def _drain(self, proc, out) -> None:
        try:
            copy_stream(proc.stdout, out)
        except BaseException as e:  # re-raised by close() in the writing thread
            self._error = e
            proc.kill()  # unblocks a writer waiting on a full stdin pipe

    def write(self, data) -> None:
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            self.close()  # raises the reason zstd went away
            raise

    def close(self) -> None:
        if self._proc.stdin.closed:
            return
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass  # reported below from the exit status
        self._pump.join()
        self._proc.stdout.close()
        status = self._proc.wait()
        if self._error is not None:
            raise self._error
        if status != 0:
            raise OSError(_failure(self._proc))


def _feed(proc, source) -> None:
    try:
        copy_stream(source, proc.stdin)
    except (OSError, ValueError):
        pass  # zstd went away, or the reader stopped: the exit status tells which
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


class ZstdReader:
    """`zstd -d` of a readable file object, as a readable stream: a thread feeds it, so neither
    pipe fills up. Reading to the end checks zstd's exit status (a ValueError naming `what`)."""

    def __init__(self, binary: str, source, what: str):
        self._what = what
        self._proc, self._feeder = _zstd(binary, "-d", _feed, source)

    def read(self, size: int = CHUNK) -> bytes:
        data = self._proc.stdout.read(size)
        if not data:
            self._feeder.join()
            if self._proc.wait() != 0:
                raise ValueError(f"{self._what}: {_failure(self._proc)}")
        return data

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._feeder.join()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            pipe.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def open_compressor(kind: str, out, zstd=None) -> _Compressor:
    """A compressor writing to `out`: `none`, `gzip`, or `zstd` (`zstd`: the binary's path)."""
    if kind == "none":
        return _Plain(out)
    if kind == "gzip":
        return _Gzip(out)
    if kind == "zstd":
        if not zstd:
            raise ValueError("zstd compression needs the zstd binary's absolute path")
        return _Zstd(out, zstd)
    raise ValueError(f"unknown compression {kind!r}: expected one of {sorted(SUFFIXES)}")
