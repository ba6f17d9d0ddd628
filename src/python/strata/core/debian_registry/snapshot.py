"""The one snapshot of the Debian archive a registry serves: the suite's InRelease, verified
with gpgv, and each architecture's Packages index it pins, resolved once and kept in the cache
directory, so that a restart serves the same images without the network. `--refresh` takes the
mirror's current InRelease instead; nothing else moves the snapshot."""

from __future__ import annotations

import logging
import os
from typing import Dict, NamedTuple

from strata.core.build.blobstore import BlobStore
from strata.core.debian.index import (
    Index,
    index_file_url,
    packages_file,
    read_packages,
    read_release,
)
from strata.core.debian_registry.config import RegistryConfig
from strata.core.debian_registry.download import fetch_bytes, fetch_into_store
from strata.core.debian_registry.records import read_record, write_record

log = logging.getLogger("strata.debian_registry")

SNAPSHOT_RECORD = "snapshot.json"
_COMPONENT = "main"


class Snapshot(NamedTuple):
    suite: str
    date: str
    release_sha256: str  # of InRelease: what every manifest is keyed by
    indexes: Dict[str, Index]  # by Debian architecture


def _read_blob(store: BlobStore, digest: str, size: int, what: str) -> bytes:
    with store.open_verified(digest, size, what) as f:
        return f.read(size + 1)


def _fetch_snapshot(config: RegistryConfig, store: BlobStore, mirror: str) -> dict:
    """The mirror's current InRelease and the Packages files it pins, into the blob store; the
    record of them."""
    url = f"{mirror}/dists/{config.suite}/InRelease"
    inrelease = fetch_bytes(url, f"the {config.suite} InRelease")
    release = read_release(inrelease, config.suite, config.keyring, config.gpgv)
    with store.writer() as out:
        out.write(inrelease)
    record = {"suite": config.suite, "inrelease": {"digest": out.digest, "size": out.size},
              "packages": {}}
    for arch in config.architectures:
        path = packages_file(release, _COMPONENT, arch)
        sha256, size = release.files[path]
        fetch_into_store(store, index_file_url(mirror, release, path), f"sha256:{sha256}", size,
                         f"the {config.suite} {path}")
        record["packages"][arch] = {"path": path, "digest": f"sha256:{sha256}", "size": size}
    return record


def load_snapshot(config: RegistryConfig, cache_dir: str, store: BlobStore, mirror: str,
                  refresh: bool) -> Snapshot:
    """The pinned snapshot (fetched and pinned first if there is none, or with `refresh`);
    every file verified again as it is read: the InRelease by its signature, each Packages
    file by the InRelease's hashes."""
    path = os.path.join(cache_dir, SNAPSHOT_RECORD)
    record = None if refresh else read_record(path)
    if record is not None and (record.get("suite") != config.suite
                               or set(record.get("packages", {})) != set(config.architectures)):
        log.info("the pinned snapshot is of %s %s, not %s %s: pinning the mirror's current one",
                 record.get("suite"), sorted(record.get("packages", {})), config.suite,
                 list(config.architectures))
        record = None
    if record is None:
        record = _fetch_snapshot(config, store, mirror)
        write_record(path, record)
    inrelease = _read_blob(store, record["inrelease"]["digest"], record["inrelease"]["size"],
                           "the pinned InRelease")
    release = read_release(inrelease, config.suite, config.keyring, config.gpgv)
    indexes = {}
    for arch in config.architectures:
        pinned = record["packages"][arch]
        data = _read_blob(store, pinned["digest"], pinned["size"], pinned["path"])
        indexes[arch] = Index(release.suite, release.date, release.sha256,
                              read_packages(release, pinned["path"], data))
    snapshot = Snapshot(release.suite, release.date, release.sha256, indexes)
    log.info("serving %s as of %s (InRelease sha256 %s), %s", snapshot.suite, snapshot.date,
             snapshot.release_sha256, ", ".join(
                 f"{arch}: {len(index.packages)} packages" for arch, index in indexes.items()))
    return snapshot

