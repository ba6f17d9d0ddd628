"""Downloads from a local HTTP server that fails as mirrors do: each failure retried with
backoff (the sleeps recorded, not slept), nothing unverified stored."""

import hashlib
import http.server
import os
import threading
from typing import List

import pytest

from strata.core.build.blobstore import BlobStore
from strata.core.debian_registry import download
from strata.core.debian_registry.download import DownloadFailed, fetch_bytes, fetch_into_store

DEB = b"!<arch>\n" + bytes(range(256)) * 40
DIGEST = "sha256:" + hashlib.sha256(DEB).hexdigest()


class Mirror:
    """Answers GETs from `answers`, one per request, the last one repeated: "ok", "503",
    "wrong" (other bytes of the same size) or "cut" (half the bytes, then a hang-up)."""

    def __init__(self) -> None:
        self.answers: List[str] = ["ok"]
        self.requests = 0
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                mirror.requests += 1
                answer = mirror.answers.pop(0) if len(mirror.answers) > 1 else mirror.answers[0]
                body = {"wrong": bytes(len(DEB)), "503": b"try later"}.get(answer, DEB)
                self.send_response(503 if answer == "503" else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if answer == "cut" else body)
                self.close_connection = answer == "cut"

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pool/main/h/hello.deb"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def mirror_server():
    mirror = Mirror()
    yield mirror
    mirror.server.shutdown()
    mirror.server.server_close()


@pytest.fixture
def mirror(mirror_server):
    mirror_server.answers, mirror_server.requests = ["ok"], 0
    return mirror_server


@pytest.fixture
def sleeps(monkeypatch):
    slept: List[float] = []
    monkeypatch.setattr(download.time, "sleep", slept.append)
    return slept


def stored(store: BlobStore) -> List[str]:
    """Every file in the store, temporaries included."""
    return sorted(os.path.relpath(os.path.join(d, f), store.root)
                  for d, _, files in os.walk(store.root) for f in files)


@pytest.mark.parametrize("failure", ["503", "wrong", "cut"])
def test_a_download_failing_once_is_retried_and_stored(tmp_path, mirror, sleeps, failure):
    store = BlobStore(tmp_path / "blobs")
    mirror.answers = [failure, "ok"]
    fetch_into_store(store, mirror.url, DIGEST, len(DEB), "hello 2.10-3")
    assert (mirror.requests, sleeps) == (2, [1.0])
    assert stored(store) == [f"sha256/{DIGEST[7:]}"]


@pytest.mark.parametrize("failure", ["503", "wrong", "cut"])
def test_a_download_failing_every_time_stores_nothing(tmp_path, mirror, sleeps, failure):
    store = BlobStore(tmp_path / "blobs")
    mirror.answers = [failure]
    with pytest.raises(DownloadFailed) as raised:
        fetch_into_store(store, mirror.url, DIGEST, len(DEB), "hello 2.10-3")
    assert f"downloading hello 2.10-3 from {mirror.url} failed 3 times" in str(raised.value)
    assert (mirror.requests, sleeps) == (3, [1.0, 2.0])
    assert stored(store) == []


def test_a_blob_in_the_store_is_not_downloaded_again(tmp_path, mirror, sleeps):
    store = BlobStore(tmp_path / "blobs")
    fetch_into_store(store, mirror.url, DIGEST, len(DEB), "hello 2.10-3")
    fetch_into_store(store, mirror.url, DIGEST, len(DEB), "hello 2.10-3")
    assert mirror.requests == 1


@pytest.mark.parametrize("failure", ["503", "cut"])
def test_an_index_failing_once_is_retried(mirror, sleeps, failure):
    mirror.answers = [failure, "ok"]
    assert fetch_bytes(mirror.url, "the bookworm InRelease") == DEB
    assert (mirror.requests, sleeps) == (2, [1.0])
