"""A layer's contents read from its blob file: decompressed when the blob is, hashed on the
way, and checked against its layer.json."""

import hashlib
import os
import zlib

from strata.core.build.compression import CHUNK, ZstdReader
from strata.core.build.hashing import HashingReader
from strata.core.errors import InvalidInput
from strata.core.oci.model import Layer


class DecompressedReader:
    """The tar inside a gzip or zstd blob file, streamed (`read`) and sha256-hashed on the way,
    as is the blob itself (`blob`): a base's layers are the only compressed blobs Strata
    reads."""

    def __init__(self, path: str, compression: str, zstd=None):
        if compression not in ("gzip", "zstd"):
            raise ValueError(f"{path}: cannot decompress {compression!r}")
        if compression == "zstd" and not zstd:
            raise ValueError(f"{path} is zstd: decompressing it needs the zstd binary")
        self._path = path
        self._hash = hashlib.sha256()
        self.size = 0
        self._zstd = None
        self._file = open(path, "rb")
        self.blob = HashingReader(self._file)
        if compression == "gzip":
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
            self._pending = b""
            return
        try:
            self._zstd = ZstdReader(zstd, self.blob, path)
        except BaseException:
            self._file.close()
            raise

    def read(self, size: int = CHUNK) -> bytes:
        data = self._zstd.read(size) if self._zstd else self._read_gzip(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def _read_gzip(self, size: int) -> bytes:
        """Concatenated gzip members are one stream (as Go's gzip reader has it); at most
        `size` bytes come out at a time, however well the input compresses."""
        try:
            while True:
                if self._inflate.eof:
                    rest = self._inflate.unused_data or self.blob.read(CHUNK)
                    if not rest:
                        return b""
                    self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
                    self._pending = rest
                if not self._pending:
                    self._pending = self.blob.read(CHUNK)
                    if not self._pending:
                        raise ValueError("truncated")
                data = self._inflate.decompress(self._pending, size)
                self._pending = self._inflate.unconsumed_tail
                if data:
                    return data
        except (zlib.error, ValueError) as e:
            raise ValueError(f"{self._path}: not a valid gzip stream: {e}") from None

    def finish(self) -> str:
        """Checks that nothing is left to read; the digest of what was read."""
        if self.read(1):
            raise ValueError(f"{self._path} decompresses to more than {self.size - 1} bytes")
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        if self._zstd is not None:
            self._zstd.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class LayerReader:
    """`with LayerReader(layer, zstd) as data:` the layer's tar, streamed from its blob
    (decompressed when the blob is compressed): the one way a layer's contents are read. When
    the block ends without an error, what is left is read and all of it checked against
    layer.json: the blob's digest and size, the tar's diff_id and size. A mismatch is an
    InvalidInput naming the layer, raised only once all was read; callers write atomically."""

    def __init__(self, layer: Layer, zstd=None):
        self._layer = layer
        compression = layer.info["compression"]
        if compression == "none":
            self._file = open(layer.blob_path, "rb")
            self._blob = self._tar = HashingReader(self._file)
        else:
            self._file = self._tar = DecompressedReader(layer.blob_path, compression, zstd)
            self._blob = self._tar.blob

    def read(self, size: int = CHUNK) -> bytes:
        return self._tar.read(size)

    def _check(self) -> None:
        while self.read(CHUNK):
            pass
        info, tar, blob = self._layer.info, self._tar, self._blob
        diff_id = tar.digest_str() if tar is blob else tar.finish()
        size = tar.size if info["size"] is None else info["size"]  # a zstd base's may be unknown
        wrong = [
            f"its {name} is {found}, layer.json says {expected}"
            for name, found, expected in (
                ("blob digest", blob.digest_str(), info["digest"]),
                ("blob size", blob.size, info["blob_size"]),
                ("diff_id", diff_id, info["diff_id"]),
                ("tar size", tar.size, size),
            )
            if found != expected
        ]
        if wrong:
            where = os.path.dirname(self._layer.blob_path)
            raise InvalidInput(f"layer {where} does not match its layer.json: {'; '.join(wrong)}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info):
        try:
            if exc_type is None:
                self._check()
        finally:
            self._file.close()
