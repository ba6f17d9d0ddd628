"""A deterministic, streaming ustar/PAX tar writer.

Its own header encoder (rather than `tarfile`) pins every byte: `tarfile`'s output varies across
Python versions and carries whatever metadata it is handed. The header's pieces (`USTAR_HEADER`,
`octal_field`, `split_ustar`, `pax_record`) are public: the `rootfs` writer encodes the headers
it copies from layers with them.
"""

import os
import struct
from collections import namedtuple

BLOCK = 512
CHUNK = 1 << 20

_NAME_MAX = 100
_PREFIX_MAX = 155
_SIZE_LIMIT = 8 ** 11  # the 11 octal digits of the ustar size field
_ZEROS = bytes(2 * BLOCK)
# What the ustar header fields Strata writes hold (PAX records carry only long paths and large
# sizes): uid and gid in 7 octal digits, mtime in 11 (up to 2242-03-16T12:56:31Z), owner names
# in 32 bytes ending in NUL. The fields that reach a layer's headers are checked against these.
MAX_ID = 8 ** 7 - 1
MAX_MTIME = 8 ** 11 - 1
MAX_OWNER_NAME = 31
# A ustar header: name, mode, uid, gid, size, mtime, checksum, typeflag, linkname, magic and
# version, uname, gname, devmajor, devminor, prefix, padding. `s` fields are NUL-padded.
USTAR_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12x")
USTAR_MAGIC = b"ustar\x0000"
_NO_DEVICE = b"0000000\0"


class Owner(namedtuple("Owner", "uid gid uname gname")):
    """An entry's owner as its header records it; an empty name leaves readers the number."""

    __slots__ = ()


def octal_field(value: int, width: int, what: str) -> bytes:
    digits = width - 1
    if not 0 <= value < 8 ** digits:
        raise ValueError(f"tar {what} {value} does not fit a {digits}-digit octal field")
    return b"%0*o\0" % (digits, value)


def check_id(value, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise ValueError(f"{what} must be an integer in 0..{MAX_ID} (the 7 octal digits of a tar "
                         f"header's id fields), got {value!r}")
    return value


def check_mtime(value, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_MTIME:
        raise ValueError(f"{what} must be from 1970-01-01T00:00:00Z to 2242-03-16T12:56:31Z "
                         f"({value!r} seconds since the epoch does not fit the 11 octal digits "
                         "of a tar header's mtime)")
    return value


def check_owner_name(name, what: str, empty: bool = False) -> str:
    """An owner name a header holds; empty (readers show the number) only where `empty`."""
    if not (isinstance(name, str) and name.isascii() and len(name) <= MAX_OWNER_NAME
            and "\0" not in name and (name or empty)):
        size = f"at most {MAX_OWNER_NAME}" if empty else f"1 to {MAX_OWNER_NAME}"
        raise ValueError(f"{what} must be {size} ASCII characters (a tar header's owner name "
                         f"field), got {name!r}")
    return name


def split_ustar(name: bytes):
    """(name, prefix) for the ustar fields, or None when the path does not fit them."""
    if len(name) <= _NAME_MAX:
        return name, b""
    # The longest prefix (<= 155 bytes) that ends at a "/" and leaves a non-empty name; a
    # shorter prefix would only leave a longer name.
    cut = name.rfind(b"/", 0, min(_PREFIX_MAX + 1, len(name) - 1))
    if cut <= 0 or len(name) - cut - 1 > _NAME_MAX:
        return None
    return name[cut + 1 :], name[:cut]


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + len(str(len(body)))
    while length != len(body) + len(str(length)):  # the length counts its own digits
        length = len(body) + len(str(length))
    return b"%d" % length + body


def _ascii(text: str) -> bytes:
    return text.encode("ascii", "replace")


class TarWriter:
    """Writes tar entries to `out` in call order, with a fixed mtime, no device numbers and one
    owner (the settings'), unless an entry names its own `owner`."""

    def __init__(self, out, *, mtime: int, uid: int = 0, gid: int = 0, uname: str = "root",
                 gname: str = "root", buffer_size: int = 0):
        """`buffer_size` > 0 gathers the archive into blocks of that many bytes before writing
        them to `out` (reading file contents straight into them), so `out` sees few, large
        writes; `flush()` or `close()` writes what is pending. `out` must not keep the buffer
        it is handed beyond the `write` call, unless it has `take_buffer(buffer, size)`: then
        that receives each filled bytearray to keep, and returns another one to fill (of at
        least `buffer_size` bytes), so no block is copied. 0 writes every piece as it comes."""
        self._out = out
        self._mtime = octal_field(check_mtime(mtime, "tar mtime"), 12, "mtime")
        for what, name in (("uname", uname), ("gname", gname)):
            check_owner_name(name, f"tar default {what}")
        # Each owner's header fields and their byte sum; None is the default owner.
        self._owners = {None: self._owner_fields(Owner(uid, gid, uname, gname))}
        # The byte sum of the header fields every entry shares, the checksum field as spaces.
        self._fixed_sum = (
            sum(self._mtime) + sum(b" " * 8) + sum(USTAR_MAGIC) + 2 * sum(_NO_DEVICE)
        )
        self._modes = {}  # mode -> (its octal field, the field's byte sum)
        self._probe = bytearray(1)  # one byte past a file's end: did it grow?
        if buffer_size:
            if buffer_size < BLOCK or buffer_size % BLOCK:
                raise ValueError(f"tar buffer size {buffer_size} is not a positive multiple of "
                                 f"{BLOCK}")
            self._take_buffer = getattr(out, "take_buffer", None)
            self._array = bytearray(buffer_size)
            self._buffer = memoryview(self._array)
            self._write = self._buffered_write
        else:
            self._buffer = None
            self._write = out.write
        self._fill = 0

    def _owner_fields(self, owner: Owner) -> tuple:
        fields = (octal_field(check_id(owner.uid, "tar uid"), 8, "uid"),
                  octal_field(check_id(owner.gid, "tar gid"), 8, "gid"),
                  check_owner_name(owner.uname, "tar uname", empty=True).encode("ascii"),
                  check_owner_name(owner.gname, "tar gname", empty=True).encode("ascii"))
        return (*fields, sum(map(sum, fields)))

    def add_dir(self, path: str, mode: int = 0o755, owner: Owner = None) -> None:
        self._header(path.rstrip("/") + "/", b"5", mode, 0, "", owner)

    def add_symlink(self, path: str, target: str, owner: Owner = None) -> None:
        if not target or "\0" in target:
            raise ValueError(f"tar: symlink {path!r} has an invalid target {target!r}")
        self._header(path, b"2", 0o777, 0, target, owner)

    def add_file(self, path: str, size: int, data, mode: int = 0o644,
                 owner: Owner = None) -> None:
        """Adds a regular file of exactly `size` bytes from `data`: bytes, a binary file, or an
        OS file descriptor (an int) at the file's start. A descriptor is read straight into the
        buffer (buffered mode) and must then end after `size` bytes: a file that grew while
        being read is an error rather than a silently truncated copy."""
        if type(data) is int:
            if self._buffer is None:
                raise ValueError("tar: reading from a file descriptor needs buffer_size > 0")
            self._header(path, b"0", mode, size, "", owner)
            self._read_fd(path, size, data)
        elif isinstance(data, (bytes, bytearray, memoryview)) and len(data) != size:
            raise ValueError(f"tar: {path!r} has {len(data)} bytes, not the declared {size}")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self._header(path, b"0", mode, size, "", owner)
            if size:
                self._write(data)
        else:
            self._header(path, b"0", mode, size, "", owner)
            remaining = size
            while remaining:
                chunk = data.read(min(CHUNK, remaining))
                if not chunk:
                    done = size - remaining
                    raise ValueError(f"tar: {path!r} ended after {done} of {size} bytes")
                self._write(chunk)
                remaining -= len(chunk)
        if size % BLOCK:
            self._write(_ZEROS[: BLOCK - size % BLOCK])

    def close(self) -> None:
        """Ends the archive (two zero blocks, no record padding); leaves `out` open."""
        self._write(_ZEROS[: 2 * BLOCK])
        self.flush()

    def flush(self) -> None:
        """Writes pending bytes to `out` (buffered mode; otherwise nothing is pending)."""
        if self._fill:
            if self._take_buffer is None:
                self._out.write(self._buffer[: self._fill])
            else:
                self._array = self._take_buffer(self._array, self._fill)
                self._buffer = memoryview(self._array)
            self._fill = 0

    def _buffered_write(self, data) -> None:
        end = self._fill + len(data)
        if end <= len(self._buffer):
            self._buffer[self._fill : end] = data
            self._fill = end
        else:
            self.flush()
            if len(data) < len(self._buffer):
                self._buffer[: len(data)] = data
                self._fill = len(data)
            else:
                self._out.write(data)

    def _read_fd(self, path: str, size: int, fd: int) -> None:
        """Reads `size` bytes of `fd` into the buffer, asking for one byte more with the last
        read (a second buffer in the same readv call), so that the end-of-file check costs no
        extra system call."""
        buffer = self._buffer
        remaining = size
        while True:
            fill = self._fill
            if fill == len(buffer):
                self.flush()
                buffer, fill = self._buffer, 0
            end = fill + remaining
            if end <= len(buffer):  # the rest fits: the last read, with the probe byte
                count = os.readv(fd, (buffer[fill:end], self._probe))
                if count > remaining:
                    raise ValueError(f"tar: {path!r} grew while being read (beyond {size} "
                                     "bytes)")
            else:
                count = os.readv(fd, (buffer[fill:],))
            self._fill = fill + count
            remaining -= count
            if not remaining:
                break
            if not count:
                raise ValueError(f"tar: {path!r} ended after {size - remaining} of {size} bytes")

    def _header(self, path: str, typeflag: bytes, mode: int, size: int, target: str,
                owner: Owner) -> None:
        if "\0" in path or not path.strip("/"):
            raise ValueError(f"tar: invalid path {path!r}")
        if size < 0:
            raise ValueError(f"tar: {path!r} has a negative size {size}")
        encoded = path.encode("utf-8")
        link = target.encode("utf-8")
        if (len(encoded) <= _NAME_MAX and len(link) <= _NAME_MAX and size < _SIZE_LIMIT
                and path.isascii() and target.isascii()):
            self._block(encoded, b"", typeflag, mode, size, link, owner)  # the common case
            return
        pax = []
        split = split_ustar(encoded) if path.isascii() else None
        if split is None:
            pax.append((b"path", encoded))
            split = (_ascii(path)[:_NAME_MAX], b"")
        if not target.isascii() or len(link) > _NAME_MAX:
            pax.append((b"linkpath", link))
            link = _ascii(target)[:_NAME_MAX]
        if size >= _SIZE_LIMIT:
            pax.append((b"size", b"%d" % size))
            size = 0
        if pax:
            payload = b"".join(pax_record(key, value) for key, value in pax)
            # Deterministic header name; readers apply the records to the next entry.
            base = path.rstrip("/").rsplit("/", 1)[-1]
            pax_name = (b"PaxHeaders/" + _ascii(base))[:_NAME_MAX]
            self._block(pax_name, b"", b"x", 0o644, len(payload), b"", None)
            self._write(payload + bytes(-len(payload) % BLOCK))
        name, prefix = split
        self._block(name, prefix, typeflag, mode, size, link, owner)

    def _block(self, name: bytes, prefix: bytes, typeflag: bytes, mode: int, size: int,
               link: bytes, owner: Owner) -> None:
        """Writes one header block; in buffered mode packed straight into the buffer (flushed
        first when less than a block is left)."""
        owner_fields = self._owners.get(owner)
        if owner_fields is None:
            owner_fields = self._owners[owner] = self._owner_fields(owner)
        uid, gid, uname, gname, owner_sum = owner_fields
        mode_field = self._modes.get(mode)
        if mode_field is None:
            octal = octal_field(mode, 8, "mode")
            mode_field = self._modes[mode] = (octal, sum(octal))
        size_field = b"%011o\0" % size  # < _SIZE_LIMIT: larger sizes go to a PAX record
        # The checksum is the byte sum of the header with its own field as spaces (in
        # _fixed_sum); the fields' NUL padding adds nothing.
        checksum = (self._fixed_sum + owner_sum + sum(name) + mode_field[1] + sum(size_field)
                    + typeflag[0] + sum(link) + sum(prefix))
        fields = (
            name, mode_field[0], uid, gid, size_field, self._mtime,
            b"%06o\0 " % checksum, typeflag, link, USTAR_MAGIC, uname, gname,
            _NO_DEVICE, _NO_DEVICE, prefix,
        )
        if self._buffer is None:
            self._out.write(USTAR_HEADER.pack(*fields))
            return
        if self._fill + BLOCK > len(self._buffer):
            self.flush()
        USTAR_HEADER.pack_into(self._buffer, self._fill, *fields)
        self._fill += BLOCK
