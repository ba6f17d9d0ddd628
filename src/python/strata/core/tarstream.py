"""A deterministic, streaming ustar/PAX tar writer.

Its own header encoder (rather than `tarfile`) pins every byte: `tarfile`'s output varies across
Python versions and carries whatever metadata it is handed.
"""

BLOCK = 512
CHUNK = 1 << 20

_NAME_MAX = 100
_PREFIX_MAX = 155
_SIZE_LIMIT = 8 ** 11  # the 11 octal digits of the ustar size field
_ZEROS = bytes(2 * BLOCK)


def _octal(value: int, width: int, what: str) -> bytes:
    digits = width - 1
    if not 0 <= value < 8 ** digits:
        raise ValueError(f"tar {what} {value} does not fit a {digits}-digit octal field")
    return b"%0*o\0" % (digits, value)


def _field(value: bytes, width: int) -> bytes:
    return value.ljust(width, b"\0")


def _split_ustar(name: bytes):
    """(name, prefix) for the ustar fields, or None when the path does not fit them."""
    if len(name) <= _NAME_MAX:
        return name, b""
    # The longest prefix (<= 155 bytes) that ends at a "/" and leaves a non-empty name; a
    # shorter prefix would only leave a longer name.
    cut = name.rfind(b"/", 0, min(_PREFIX_MAX + 1, len(name) - 1))
    if cut <= 0 or len(name) - cut - 1 > _NAME_MAX:
        return None
    return name[cut + 1 :], name[:cut]


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + len(str(len(body)))
    while length != len(body) + len(str(length)):  # the length counts its own digits
        length = len(body) + len(str(length))
    return b"%d" % length + body


def _ascii(text: str) -> bytes:
    return text.encode("ascii", "replace")


class TarWriter:
    """Writes tar entries to `out` in call order, with fixed owner, mtime and no device numbers."""

    def __init__(self, out, *, mtime: int, uid: int = 0, gid: int = 0, uname: str = "root",
                 gname: str = "root", buffer_size: int = 0):
        """`buffer_size` > 0 gathers the archive into blocks of that many bytes before writing
        them to `out` (reading file contents straight into them), so `out` sees few, large
        writes; `flush()` or `close()` writes what is pending. `out` must not keep the buffer
        it is handed beyond the `write` call, unless it has `take_buffer(buffer, size)`: then
        that receives each filled bytearray to keep, and returns another one to fill (of at
        least `buffer_size` bytes), so no block is copied. 0 writes every piece as it comes."""
        self._out = out
        self._mtime = _octal(mtime, 12, "mtime")
        self._uid = _octal(uid, 8, "uid")
        self._gid = _octal(gid, 8, "gid")
        self._uname = self._owner_name(uname)
        self._gname = self._owner_name(gname)
        # The byte sum of the header fields every entry shares, the checksum field as spaces.
        self._fixed_sum = (
            sum(self._uid) + sum(self._gid) + sum(self._mtime) + sum(b" " * 8)
            + sum(b"ustar\x0000") + sum(self._uname) + sum(self._gname) + 2 * sum(b"0000000\0")
        )
        self._uname_field = _field(self._uname, 32)
        self._gname_field = _field(self._gname, 32)
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

    @staticmethod
    def _owner_name(name: str) -> bytes:
        if not (name.isascii() and 0 < len(name) < 32) or "\0" in name:
            raise ValueError(f"tar owner name {name!r} must be 1-31 ASCII characters")
        return name.encode("ascii")

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        self._header(path.rstrip("/") + "/", b"5", mode, 0, "")

    def add_symlink(self, path: str, target: str) -> None:
        if not target or "\0" in target:
            raise ValueError(f"tar: symlink {path!r} has an invalid target {target!r}")
        self._header(path, b"2", 0o777, 0, target)

    def add_file(self, path: str, size: int, data, mode: int = 0o644) -> None:
        """Adds a regular file of exactly `size` bytes from `data` (bytes or a binary file)."""
        if isinstance(data, (bytes, bytearray, memoryview)) and len(data) != size:
            raise ValueError(f"tar: {path!r} has {len(data)} bytes, not the declared {size}")
        self._header(path, b"0", mode, size, "")
        if isinstance(data, (bytes, bytearray, memoryview)):
            if size:
                self._write(data)
        elif self._buffer is not None and hasattr(data, "readinto"):
            self._read_into_buffer(path, size, data)
        else:
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

    def _read_into_buffer(self, path: str, size: int, data) -> None:
        """Reads `size` bytes of `data` straight into the buffer, writing it out as it fills."""
        remaining = size
        while remaining:
            if self._fill == len(self._buffer):
                self.flush()
            end = min(len(self._buffer), self._fill + remaining)
            count = data.readinto(self._buffer[self._fill : end])
            if not count:
                done = size - remaining
                raise ValueError(f"tar: {path!r} ended after {done} of {size} bytes")
            self._fill += count
            remaining -= count

    def _header(self, path: str, typeflag: bytes, mode: int, size: int, target: str) -> None:
        if not path.strip("/") or "\0" in path:
            raise ValueError(f"tar: invalid path {path!r}")
        encoded = path.encode("utf-8")
        link = target.encode("utf-8")
        pax = []
        split = _split_ustar(encoded) if path.isascii() else None
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
            payload = b"".join(_pax_record(key, value) for key, value in pax)
            # Deterministic header name; readers apply the records to the next entry.
            base = path.rstrip("/").rsplit("/", 1)[-1]
            pax_name = (b"PaxHeaders/" + _ascii(base))[:_NAME_MAX]
            self._write(self._block(pax_name, b"", b"x", 0o644, len(payload), b""))
            self._write(payload + bytes(-len(payload) % BLOCK))
        name, prefix = split
        self._write(self._block(name, prefix, typeflag, mode, size, link))

    def _block(self, name: bytes, prefix: bytes, typeflag: bytes, mode: int, size: int,
               link: bytes) -> bytes:
        mode_field = _octal(mode, 8, "mode")
        size_field = _octal(size, 12, "size")
        # The checksum is the byte sum of the header with its own field as spaces (in
        # _fixed_sum); the fields' NUL padding adds nothing.
        checksum = (self._fixed_sum + sum(name) + sum(mode_field) + sum(size_field)
                    + typeflag[0] + sum(link) + sum(prefix))
        return b"".join((
            _field(name, 100),
            mode_field,
            self._uid,
            self._gid,
            size_field,
            self._mtime,
            b"%06o\0 " % checksum,
            typeflag,
            _field(link, 100),
            b"ustar\x0000",
            self._uname_field,
            self._gname_field,
            b"0000000\0",  # devmajor
            b"0000000\0",  # devminor
            _field(prefix, 155),
            bytes(12),
        ))
