"""Atomic writes, the one way the core writes its outputs: a reader never sees a partial file or
directory, and a failure leaves nothing behind."""

import os
import shutil


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _temporary(path) -> str:
    """Beside `path`, so that the rename is atomic; one per writer, so that processes or
    threads writing the same path (two `pants publish` runs recording pushed blobs, two
    registry builds recording one layer) do not meet."""
    return f"{os.fspath(path)}.{os.getpid()}-{os.urandom(6).hex()}.tmp"


def write_file_atomically(path, write) -> None:
    """`write(f)` into a temporary file beside `path`, then renames it over `path`."""
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes_atomically(path, data: bytes) -> None:
    write_file_atomically(path, lambda f: f.write(data))


def write_dir_atomically(path, write) -> None:
    """`write(tmp)` into a temporary directory beside `path`, then renames it over `path`."""
    tmp = _temporary(path)
    _remove(tmp)
    try:
        os.mkdir(tmp)
        write(tmp)
        _remove(path)
        os.rename(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
