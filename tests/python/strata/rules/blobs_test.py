"""The blob store's checks in pantsd (`_holds`) and a configured store's named-cache link."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pants.engine.process import Process

from strata.core.build.blobstore import BlobStore
from strata.rules import blobs
from strata.rules.blobs import BlobStoreLocation, StoredBlob


def stored(store: BlobStore, data: bytes) -> StoredBlob:
    with store.writer() as w:
        w.write(data)
    return StoredBlob(w.digest, w.size, "layer 1", Process(["true"], description="emit"),
                      "out/layer.tar", tuple(w.stat))


def test_a_blob_as_its_writer_left_it_is_not_read_again(tmp_path: Path, monkeypatch) -> None:
    store = BlobStore(tmp_path)
    blob = stored(store, b"layer bytes")
    monkeypatch.setattr(BlobStore, "has", lambda *a: (_ for _ in ()).throw(AssertionError))
    assert blobs._holds(store, blob)  # its writer's stamp: nothing read


def test_a_changed_or_missing_blob_is_read_or_missing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    blob = stored(store, b"layer bytes")
    path = Path(store.path(blob.digest))
    os.utime(path, ns=(0, 0))  # another stamp, the same bytes: read whole, then remembered
    assert blobs._holds(store, blob)
    assert blobs._checked[str(path)] != blob.stamp
    path.write_bytes(b"layer bytez")  # wrong bytes: removed
    assert not blobs._holds(store, blob)
    assert not path.exists()
    assert not blobs._holds(store, blob)


def test_a_configured_store_is_linked_from_its_named_cache(tmp_path: Path) -> None:
    location = BlobStoreLocation(str(tmp_path / "store"), "strata_blobs_x",
                                 str(tmp_path / "named/strata_blobs_x"))
    location.make_link()
    assert os.readlink(tmp_path / "named/strata_blobs_x") == str(tmp_path / "store")
    # Removed, and made a directory by Pants meanwhile: linked again.
    os.unlink(tmp_path / "named/strata_blobs_x")
    (tmp_path / "named/strata_blobs_x/sha256").mkdir(parents=True)
    location.make_link()
    assert os.path.islink(tmp_path / "named/strata_blobs_x")
    # The store deleted (`rm -rf`): made again, or Pants fails on the dangling link.
    shutil.rmtree(tmp_path / "store")
    location.make_link()
    assert (tmp_path / "named/strata_blobs_x").is_dir()
    assert os.readlink(tmp_path / "named/strata_blobs_x") == str(tmp_path / "store")
