"""Hash and count bytes on their way to or from a file, so digests need no second pass."""

import hashlib


class HashingWriter:
    """A write-through wrapper that sha256-hashes and counts everything written to `out`."""

    def __init__(self, out):
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self._hash.update(data)
        self._out.write(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def digest_str(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class HashingReader:
    """A read-through wrapper that sha256-hashes and counts everything read from `source`."""

    def __init__(self, source):
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def digest_str(self) -> str:
        return "sha256:" + self._hash.hexdigest()
