"""Strata's blob store: layer tars and image archives kept outside Pants' store, which copies,
chmods and fsyncs every Process output (docs/architecture.md, "The blob store").

One directory, content-addressed: `sha256/<hex>` holds exactly the bytes whose sha256 is
`<hex>`, and is never modified. A blob is written to `tmp/` and renamed into place, with no
fsync: a blob lost in a crash is only missing, and missing blobs are regenerated from what
Pants caches (the Process that wrote it, or its bytes from a remote cache). Any number of
processes and checkouts may share a store: a rename replaces a blob with the same bytes. Every
read that serves an output, a load or a push checks the size and digest as it streams
(`open_verified`)."""

import errno
import hashlib
import os

from strata.core.build.compression import CHUNK, copy_stream
from strata.core.build.spec import sha256_digest
from strata.core.errors import InvalidInput, StrataError, UsageError



class BlobStoreFull(StrataError):
    """The blob store's filesystem has no room (ENOSPC, EDQUOT)."""


class BlobMismatch(InvalidInput):
    """A blob's bytes are not those its descriptor names."""


class BlobStore:
    """The store at `root` (created on first write)."""

    def __init__(self, root):
        self.root = os.fspath(root)

    def path(self, digest: str) -> str:
        return os.path.join(self.root, "sha256", sha256_digest(digest, "a blob")[len("sha256:"):])

    def writer(self):
        """`with store.writer() as w: w.write(...)`; then `w.digest`, `w.size`: the blob is
        in the store once the block ends without an error, else nothing of it is."""
        return _BlobWriter(self)

    def has(self, digest: str, size: int) -> bool:
        """Whether the store holds the blob, every byte read and checked; a blob of other bytes
        is removed (a rename of the right ones may replace it at any time, which is harmless)."""
        path = self.path(digest)
        try:
            with open(path, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                found = _hash_file(f)
        except FileNotFoundError:
            return False
        if found == (digest, size):
            return True
        _remove_if_same(path, inode)
        return False

    def open_verified(self, digest: str, size: int, what: str):
        """The blob as a file object whose reads are checked: at its end (or at `size` bytes)
        the digest and size must be the descriptor's, else `BlobMismatch` naming `what`."""
        try:
            return VerifyingReader(open(self.path(digest), "rb"), digest, size, what)
        except FileNotFoundError:
            raise InvalidInput(
                f"{what}: blob {digest} is not in the blob store {self.root}"
            ) from None

    def put_file(self, source: str, digest: str, size: int, what: str) -> None:
        """Copies the file at `source` into the store, checked against (digest, size)."""
        with open(source, "rb") as src, self.writer() as out:
            copy_stream(VerifyingReader(src, digest, size, what), out)


class _BlobWriter:
    def __init__(self, store: BlobStore):
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest = ""
        self.stat: list = []
        tmp_dir = os.path.join(store.root, "tmp")
        try:
            os.makedirs(tmp_dir, exist_ok=True)
            os.makedirs(os.path.join(store.root, "sha256"), exist_ok=True)
        except OSError as e:
            raise _store_error(store, e) from None
        self._tmp = os.path.join(tmp_dir, f"{os.getpid()}-{id(self):x}-{os.urandom(4).hex()}")
        self._file = open(self._tmp, "wb")

    def write(self, data) -> int:
        self._hash.update(data)
        try:
            self._file.write(data)
        except OSError as e:
            raise _store_error(self._store, e) from None
        self.size += len(data)
        return len(data)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            try:
                self._file.close()
            except OSError as e:
                if exc_type is None:
                    raise _store_error(self._store, e) from None
            if exc_type is None:
                self.digest = "sha256:" + self._hash.hexdigest()
                path = self._store.path(self.digest)
                os.replace(self._tmp, path)
                self.stat = file_stamp(path)
        finally:
            if os.path.lexists(self._tmp):
                os.unlink(self._tmp)


class VerifyingReader:
    """Reads through `source`, hashing and counting; a wrong byte count or digest raises
    `BlobMismatch` at the latest when the reads reach the end."""

    def __init__(self, source, digest: str, size: int, what: str):
        self._source = source
        self._digest = digest
        self._size = size
        self._what = what
        self._hash = hashlib.sha256()
        self.read_bytes = 0
        self._done = False

    def read(self, size: int = CHUNK) -> bytes:
        left = self._size - self.read_bytes
        if self._done:
            return b""
        data = self._source.read(min(size, left)) if left else b""
        self._hash.update(data)
        self.read_bytes += len(data)
        if self.read_bytes == self._size:
            if self._source.read(1):
                self._fail(f"it has more than {self._size} bytes")
            found = "sha256:" + self._hash.hexdigest()
            if found != self._digest:
                self._fail(f"its digest is {found}")
            self._done = True
        elif not data:
            self._fail(f"it has only {self.read_bytes} bytes")
        return data

    def _fail(self, why: str):
        raise BlobMismatch(
            f"{self._what}: the blob is not {self._digest} ({self._size} bytes): {why}"
        )

    def close(self) -> None:
        self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def file_stamp(path: str) -> list:
    """What changes when a file is replaced or written to: a blob whose stamp is the one its
    writer recorded is the blob it wrote, with no need to hash it again."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def write_stamp(path: str, writer) -> None:
    """The stamp of the blob `writer` wrote, as JSON, for the rules (strata.rules.blobs)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[" + ",".join(str(n) for n in writer.stat) + "]\n")


def _hash_file(f):
    h, size = hashlib.sha256(), 0
    while True:
        data = f.read(CHUNK)
        if not data:
            return "sha256:" + h.hexdigest(), size
        h.update(data)
        size += len(data)


def _remove_if_same(path: str, inode: int) -> None:
    """Removes the bad blob at `path`, unless a rename replaced it meanwhile."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _store_error(store: BlobStore, error: OSError) -> StrataError:
    where = os.path.realpath(store.root)  # in a sandbox, through Pants' named cache link
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return BlobStoreFull(
            f"the blob store {where} is full ({error.strerror}): free space there, or "
            "point [strata].blob_store at a larger filesystem"
        )
    return StrataError(f"cannot write to the blob store {where}: {error.strerror or error}")


def copy_out(store: BlobStore, digest: str, size: int, dest: str, what: str) -> None:
    """The blob, verified, as a new file at `dest` (for outputs that leave the store)."""
    with store.open_verified(digest, size, what) as src, open(dest, "wb") as out:
        copy_stream(src, out)


def put_command(options) -> None:
    """`blob-put`: a file into the blob store, checked against its descriptor: a blob Pants
    cached (or fetched from a remote cache) put back where Strata reads blobs."""
    try:
        size = int(options.size)
    except ValueError:
        raise UsageError(f"--size must be a number of bytes: {options.size!r}") from None
    BlobStore(options.blob_store).put_file(options.file, options.digest, size, options.file)
