import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from strata.core.build import blobstore
from strata.core.build.blobstore import BlobMismatch, BlobStore, BlobStoreFull
from strata.core.cli import main


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def stored(store: BlobStore, data: bytes) -> str:
    with store.writer() as w:
        w.write(data)
    assert (w.digest, w.size) == (digest(data), len(data))
    return w.digest


def test_a_blob_is_named_by_its_digest_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    d = stored(store, b"hello")
    assert Path(store.path(d)).read_bytes() == b"hello"
    assert store.path(d) == str(tmp_path / "store/sha256" / d.split(":")[1])
    assert os.listdir(tmp_path / "store/tmp") == []
    assert store.has(d, 5)
    # The same bytes again: the same file, replaced by rename.
    assert stored(store, b"hello") == d


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writer() as w:
            w.write(b"partial")
            raise RuntimeError("the producer failed")
    assert os.listdir(tmp_path / "tmp") == []
    assert os.listdir(tmp_path / "sha256") == []


def test_a_full_store_is_a_clear_error_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    store = BlobStore(tmp_path)
    writer = store.writer()

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    real = writer._file
    writer._file = Full()
    with pytest.raises(BlobStoreFull, match=f"the blob store {tmp_path} is full"):
        with writer:
            writer.write(b"x" * 10)
    real.close()
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda p: p.unlink(), None),
        (lambda p: os.truncate(p, 3), "only 3 bytes"),
        (lambda p: p.write_bytes(b"hellohello"), "more than 5 bytes"),
        (lambda p: p.write_bytes(b"jello"), "its digest is"),
    ],
)
def test_reads_check_every_byte(tmp_path: Path, damage, why) -> None:
    store = BlobStore(tmp_path)
    d = stored(store, b"hello")
    damage(Path(store.path(d)))
    assert not store.has(d, 5)
    if why is None:
        with pytest.raises(ValueError, match="is not in the blob store"):
            store.open_verified(d, 5, "layer 3")
        return
    # has() removed the wrong blob; a reader of one that is there fails before its last byte.
    damage(Path(store.path(stored(store, b"hello"))))
    with pytest.raises(BlobMismatch, match=f"layer 3: the blob is not {d}.*{why}"):
        with store.open_verified(d, 5, "layer 3") as f:
            while f.read(2):
                pass


def test_put_checks_the_file_against_its_descriptor(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    source = tmp_path / "blob"
    source.write_bytes(b"bytes")
    with pytest.raises(BlobMismatch):
        store.put_file(str(source), digest(b"other"), 5, "blob")
    assert os.listdir(tmp_path / "store/sha256") == []
    assert main(["blob-put", "--blob-store", str(tmp_path / "store"), "--file", str(source),
                 "--digest", digest(b"bytes"), "--size", "5"]) == 0
    assert store.has(digest(b"bytes"), 5)


def test_the_writer_records_the_blob_stamp(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.writer() as w:
        w.write(b"stamped")
    assert w.stat == blobstore.file_stamp(store.path(w.digest))
    blobstore.write_stamp(str(tmp_path / "stamp.json"), w)
    assert json.loads((tmp_path / "stamp.json").read_text()) == w.stat
