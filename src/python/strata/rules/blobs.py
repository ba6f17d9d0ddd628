"""Strata's blob store, from the rules' side: where it is, the named cache that puts it in the
sandboxes of the Processes that write and read blobs, and `EnsureBlobs`, run afresh in every
run, which checks that the store holds the blobs an output needs and puts back any that are
missing or wrong (docs/architecture.md, "The blob store")."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from pants.engine.fs import Digest, MergeDigests
from pants.engine.internals.session import RunId
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.option.global_options import GlobalOptions
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from strata.core.build.blobstore import BlobStore, file_stamp
from strata.rules.processes import Execution, OnThisMachine
from strata.rules.tool import ImageTool
from strata.subsystems import StrataSubsystem

logger = logging.getLogger(__name__)

# Where the blob store is in the sandbox of a Process that has it (a Pants named cache: linked
# into the sandbox, never captured as an output, never part of a cache key's inputs).
SANDBOX_PATH = ".strata-blobs"
_DEFAULT_CACHE = "strata_blobs"
# How an `emit` Process's description ends: "Building app:image: layer 3 (...): its bytes".
EMITS = "its bytes"
# Why the Processes that read or write the blob store run on this machine, whatever the
# environment: the store is a directory here.
NEEDS = "the blob store"
_DIGITS_AS_LETTERS = str.maketrans("0123456789", "ghijklmnop")


@dataclass(frozen=True)
class BlobStoreLocation:
    path: str  # absolute
    cache_name: str
    link: Optional[str] = None  # a configured store's named cache: a symlink to `path`

    @property
    def caches(self) -> FrozenDict[str, str]:
        """A Process's `append_only_caches` that put the store at SANDBOX_PATH."""
        return FrozenDict({self.cache_name: SANDBOX_PATH})

    def caches_for(self, execution: Execution) -> FrozenDict[str, str]:
        """`caches` for a Process that reads the store if it runs here; none for a remote
        worker, whose Processes' inputs hold every blob they read."""
        return FrozenDict() if execution.remote else self.caches

    def blob_path(self, digest: str) -> str:
        return BlobStore(self.path).path(digest)

    def make_link(self) -> None:
        """Points a configured store's named cache at it (again, if it was removed: Pants
        would make a directory there, and Processes would write blobs where no rule looks),
        and makes the store (again, if it was deleted: Pants cannot make a named cache that is
        a dangling link, and fails every Process that has it)."""
        if self.link is None:
            return
        os.makedirs(self.path, exist_ok=True)
        if os.path.realpath(self.link) == os.path.realpath(self.path):
            return
        os.makedirs(os.path.dirname(self.link), exist_ok=True)
        if os.path.isdir(self.link) and not os.path.islink(self.link):
            shutil.rmtree(self.link)  # made by Pants: blobs no rule reads
        tmp = f"{self.link}.{os.getpid()}.tmp"
        os.symlink(self.path, tmp)
        os.replace(tmp, self.link)


@rule
def blob_store_location(strata: StrataSubsystem, global_options: GlobalOptions) -> BlobStoreLocation:
    """`[strata].blob_store`, or the named cache `strata_blobs`. A configured path becomes a
    named cache of its own, named after it, linked to it."""
    named_caches = str(global_options.named_caches_dir)
    if not strata.blob_store:
        return BlobStoreLocation(os.path.join(named_caches, _DEFAULT_CACHE), _DEFAULT_CACHE)
    path = os.path.abspath(os.path.expanduser(strata.blob_store))
    # Pants' cache names are lowercase letters and underscores: the path's hash in letters.
    letters = hashlib.sha256(path.encode()).hexdigest()[:16].translate(_DIGITS_AS_LETTERS)
    name = f"{_DEFAULT_CACHE}_{letters}"
    location = BlobStoreLocation(path, name, os.path.join(named_caches, name))
    location.make_link()
    return location


@dataclass(frozen=True)
class StoredBlob:
    """A blob a Process wrote into the store, as Pants caches it: its descriptor, the stamp
    the writer recorded (`file_stamp`), and `emit`, the cached Process whose output is the
    blob's bytes as the file `emitted` (the same for every machine, so a remote cache shares
    it): copied from the store when there, else written again and checked."""

    digest: str
    size: int
    what: str
    emit: Process
    emitted: str
    stamp: Tuple[int, ...] = ()


@dataclass(frozen=True)
class EnsureBlobs:
    blobs: Tuple[StoredBlob, ...]


@dataclass(frozen=True)
class EnsuredBlobs:
    """The store holds every blob asked for, checked in this run."""

    put_back: Tuple[str, ...]  # what was missing or wrong, and was put back


# Per blob path: the stamp it had when this process last read every byte of it and found them
# right. A rename or a write changes the stamp, so a changed blob is read again.
_checked: Dict[str, Tuple[int, ...]] = {}


def _holds(store: BlobStore, blob: StoredBlob) -> bool:
    path = store.path(blob.digest)
    try:
        stamp = tuple(file_stamp(path))
    except FileNotFoundError:
        return False
    if stamp in (blob.stamp, _checked.get(path)):
        return True
    if not store.has(blob.digest, blob.size):
        logger.warning(f"The blob store held wrong bytes for {blob.what} ({blob.digest}).")
        return False
    _checked[path] = stamp
    return True


def _put(location: BlobStoreLocation, tool: ImageTool, blob: StoredBlob,
         tool_and_blob: Digest) -> Process:
    return Process(
        argv=tool.argv(
            "blob-put", "--blob-store", SANDBOX_PATH, "--file", blob.emitted,
            "--digest", blob.digest, "--size", str(blob.size),
        ),
        input_digest=tool_and_blob,
        append_only_caches=location.caches,
        description=f"Putting {blob.what} back into the blob store",
        level=LogLevel.DEBUG,
        cache_scope=ProcessCacheScope.PER_SESSION,
    )


@rule(desc="Checking the blob store", level=LogLevel.DEBUG)
async def ensure_blobs(
    request: EnsureBlobs,
    run_id: RunId,
    location: BlobStoreLocation,
    tool: ImageTool,
    global_options: GlobalOptions,
) -> EnsuredBlobs:
    """Depends on the RunId: checked in every run, whatever Pants memoized. When Pants writes
    a remote cache, every blob's `emit` runs too (copying the blob from the store), so that
    another machine that gets the descriptors from that cache gets the bytes as well."""
    location.make_link()
    store = BlobStore(location.path)
    blobs = list(dict.fromkeys(request.blobs))
    missing: List[StoredBlob] = [b for b in blobs if not _holds(store, b)]
    if global_options.remote_cache_write:
        await MultiGet(
            Get(ProcessResult, OnThisMachine(b.emit, NEEDS)) for b in blobs if b not in missing
        )
    if not missing:
        return EnsuredBlobs(())
    for blob in missing:
        logger.info(f"Putting {blob.what} ({blob.digest}) back into the blob store.")
    emitted = await MultiGet(
        Get(ProcessResult, OnThisMachine(blob.emit, NEEDS)) for blob in missing
    )
    inputs = await MultiGet(
        Get(Digest, MergeDigests([tool.digest, result.output_digest])) for result in emitted
    )
    await MultiGet(
        Get(ProcessResult, OnThisMachine(_put(location, tool, blob, digest), NEEDS))
        for blob, digest in zip(missing, inputs)
    )
    return EnsuredBlobs(tuple(blob.what for blob in missing))


def rules():
    return collect_rules()
