"""Downloads from the Debian mirror, each retried with backoff and verified: a `.deb` by the
sha256 and size the signed index gives it, straight into the blob store, so that nothing
unverified or partial is ever stored."""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request

from strata.core.build.blobstore import BlobMismatch, BlobStore, BlobStoreFull, VerifyingReader
from strata.core.build.compression import CHUNK
from strata.core.errors import StrataError

log = logging.getLogger("strata.debian_registry")

ATTEMPTS = 3
TIMEOUT = 60.0


class DownloadFailed(StrataError):
    """The mirror did not give a file after every attempt (the registry's 502)."""


def _with_retries(what: str, url: str, attempt_once):
    delay = 1.0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return attempt_once()
        except BlobStoreFull:
            raise
        # urllib's errors are OSErrors; a body cut short (IncompleteRead) or a garbled answer
        # is http.client's.
        except (OSError, http.client.HTTPException, BlobMismatch) as e:
            if attempt == ATTEMPTS:
                raise DownloadFailed(
                    f"downloading {what} from {url} failed {ATTEMPTS} times, last: {e}"
                ) from None
            log.warning("downloading %s failed (attempt %d of %d: %s); retrying in %.0f s",
                        what, attempt, ATTEMPTS, e, delay)
            time.sleep(delay)
            delay *= 2


def fetch_bytes(url: str, what: str) -> bytes:
    def once() -> bytes:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.read()

    return _with_retries(what, url, once)


def fetch_into_store(store: BlobStore, url: str, digest: str, size: int, what: str) -> None:
    """The file at `url` into `store`, checked against (digest, size) as it streams."""

    def once() -> None:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            reader = VerifyingReader(response, digest, size, what)
            with store.writer() as out:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)

    if not store.has(digest, size):
        _with_retries(what, url, once)
