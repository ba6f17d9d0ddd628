"""A layer's tar, read strictly: the one way the core walks a layer's entries.

tarfile takes a bad header for the end of the archive, and a PAX number it cannot parse for 0,
without a word: a layer corrupt mid-way would lose its later files, a file its contents. Go's
archive/tar, which docker, podman and umoci read layers with, refuses both. Here every header
must parse, PAX numbers must be numbers, the archive must end with an end-of-archive block,
and nothing but zeros may follow that block.
"""

import re
import tarfile

from strata.core.errors import InvalidInput

ENCODING = ("utf-8", "surrogateescape")
_CHUNK = 1 << 20
_INTEGER = re.compile(r"[0-9]+\Z")
_TIME = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")
_PAX_NUMBERS = {
    "size": _INTEGER,
    "uid": _INTEGER,
    "gid": _INTEGER,
    "mtime": _TIME,
    "atime": _TIME,
    "ctime": _TIME,
}


def entries(fileobj, where: str, stream: bool = False):
    """Every entry of the tar in `fileobj`, in order: a seekable file at its start (each entry's
    `offset_data` then locates its contents) or, with `stream`, one read once, forward. A
    corrupt tar is an InvalidInput naming `where`, raised when the walk reaches the fault."""
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|" if stream else "r:",
                           encoding=ENCODING[0], errors=ENCODING[1])
    except tarfile.TarError as e:  # a bad first header: tarfile raises only there
        raise InvalidInput(f"{where} is not a tar archive: {e}") from None
    info = tar.firstmember  # read by open(); None when the first block ends the archive
    while info is not None:
        _check_entry(info, where)
        yield info
        offset = tar.offset
        tar.fileobj.seek(offset)
        try:
            info = tarfile.TarInfo.fromtarfile(tar)
        except tarfile.EOFHeaderError:
            info = None
        except tarfile.EmptyHeaderError:
            raise InvalidInput(
                f"{where}: the tar ends at byte {offset} without its end-of-archive block "
                "(truncated)"
            ) from None
        except tarfile.TruncatedHeaderError:
            raise InvalidInput(f"{where}: the tar is truncated at byte {offset}") from None
        except tarfile.HeaderError as e:
            raise InvalidInput(f"{where}: bad tar header at byte {offset}: {e}") from None
    _check_end(tar.fileobj, where)


def check(fileobj, where: str) -> None:
    """Reads the tar stream in `fileobj` to its end, checking it as `entries` does."""
    for _ in entries(fileobj, where, stream=True):
        pass


def _check_entry(info: tarfile.TarInfo, where: str) -> None:
    if info.size < 0:
        raise InvalidInput(f"{where}: {info.name!r} has a negative size")
    for key, number in _PAX_NUMBERS.items():
        value = info.pax_headers.get(key)
        if value is not None and not number.match(value):
            raise InvalidInput(f"{where}: {info.name!r} has PAX {key} {value!r}, not a number")


def _check_end(fileobj, where: str) -> None:
    """After the end-of-archive block: padding (zeros) only, as a tar writer leaves."""
    while True:
        chunk = fileobj.read(_CHUNK)
        if not chunk:
            return
        if chunk.strip(b"\0"):
            raise InvalidInput(f"{where}: data follows the tar's end-of-archive block")
