"""The HTTP layer over a stub builder: routes, content negotiation, ranges and the error bodies.
Real clients pulling real images are the integration tests' (podman, skopeo, docker)."""

import errno
import http.client
import json
import logging
import socket
import struct
import threading
from typing import Dict, Optional, Tuple

import pytest

from strata.core.build.blobstore import BlobStore, BlobStoreFull
from strata.core.debian_registry.builder import BuiltImage, ImageUnknown
from strata.core.debian_registry.config import RegistryConfig
from strata.core.debian_registry.download import DownloadFailed
from strata.core.debian_registry.server import RegistryServer, _wants_docker
from strata.core.debian_registry.snapshot import Snapshot
from strata.core.oci import media_types
from strata.core.oci.image import sha256_digest

CONFIG = RegistryConfig(target="app:registry", suite="bookworm", architectures=("amd64",),
                        meta_packages={"shell": ("bash", "coreutils")}, max_layers=100,
                        compression="gzip", created="1970-01-01T00:00:01Z")
OCI_MANIFEST = b'{"mediaType": "application/vnd.oci.image.manifest.v1+json"}'
DOCKER_MANIFEST = b'{"mediaType": "application/vnd.docker.distribution.manifest.v2+json"}'
BLOB = bytes(range(256)) * 4  # 1024 bytes
DOCKER_ACCEPT = f"{media_types.DOCKER_MANIFEST}, {media_types.DOCKER_MANIFEST_LIST}"


class StubBuilder:
    """What the server asks of ImageBuilder, with the images fixed and every request noted."""

    def __init__(self, store: BlobStore):
        self.config, self.store = CONFIG, store
        self.snapshot = Snapshot("bookworm", "Sat, 07 Oct 2023 09:53:48 UTC", "ab" * 32, {})
        self.manifests: Dict[str, Tuple[bytes, str]] = {
            sha256_digest(OCI_MANIFEST): (OCI_MANIFEST, media_types.OCI_MANIFEST),
            sha256_digest(DOCKER_MANIFEST): (DOCKER_MANIFEST, media_types.DOCKER_MANIFEST),
        }
        self.failure: Optional[Exception] = None
        self.asked = []

    def image(self, name):
        self.asked.append(name)
        if self.failure is not None:
            raise self.failure
        return BuiltImage(sha256_digest(OCI_MANIFEST), sha256_digest(DOCKER_MANIFEST))

    def manifest(self, digest):
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.manifests.get(digest)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = BlobStore(tmp_path_factory.mktemp("registry") / "blobs")
    with store.writer() as out:
        out.write(BLOB)
    server = RegistryServer(("127.0.0.1", 0), StubBuilder(store))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def registry(server):
    """The stub builder (afresh) and a keep-alive connection to the server."""
    server.builder = StubBuilder(server.builder.store)
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    yield server.builder, connection
    connection.close()


def request(connection, method, path, headers=None, body=None):
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response, response.read()


def error_of(response, body) -> dict:
    """The one error of a spec error body (a JSON object, never an empty body)."""
    assert response.getheader("Content-Type") == "application/json"
    assert int(response.getheader("Content-Length")) == len(body) > 0
    (error,) = json.loads(body)["errors"]
    assert set(error) == {"code", "message", "detail"}
    return error


BLOB_PATH = f"/v2/shell/curl/blobs/{sha256_digest(BLOB)}"


@pytest.mark.parametrize("accept, docker", [
    ([], False),
    (["*/*"], False),
    ([media_types.OCI_MANIFEST], False),
    ([DOCKER_ACCEPT], True),
    ([f"{media_types.DOCKER_MANIFEST}; q=0.9"], True),
    ([media_types.DOCKER_MANIFEST_LIST], True),
    # Docker and containerd send both: OCI's then, the image the registry built first.
    ([f"{DOCKER_ACCEPT}, {media_types.OCI_INDEX}"], False),
    ([DOCKER_ACCEPT, media_types.OCI_MANIFEST], False),  # one header each
])
def test_docker_manifests_only_for_clients_that_take_no_oci_one(accept, docker):
    assert _wants_docker(accept) is docker


def test_the_api_version_check(registry):
    _, connection = registry
    response, body = request(connection, "GET", "/v2/")
    assert (response.status, body) == (200, b"{}")
    assert response.getheader("Docker-Distribution-API-Version") == "registry/2.0"


def test_a_manifest_by_tag_is_built_for_the_name_and_negotiated(registry):
    builder, connection = registry
    response, body = request(connection, "GET", "/v2/curl/shell/manifests/latest")
    assert (response.status, body) == (200, OCI_MANIFEST)
    assert response.getheader("Content-Type") == media_types.OCI_MANIFEST
    assert response.getheader("Docker-Content-Digest") == sha256_digest(OCI_MANIFEST)
    assert builder.asked[0].packages == ("bash", "coreutils", "curl")

    response, body = request(connection, "GET", "/v2/shell/curl/manifests/latest",
                             {"Accept": DOCKER_ACCEPT})
    assert (response.status, body) == (200, DOCKER_MANIFEST)
    assert response.getheader("Content-Type") == media_types.DOCKER_MANIFEST

    response, body = request(connection, "HEAD", "/v2/shell/curl/manifests/latest")
    assert (response.status, body) == (200, b"")
    assert response.getheader("Content-Length") == str(len(OCI_MANIFEST))
    assert response.getheader("Docker-Content-Digest") == sha256_digest(OCI_MANIFEST)


def test_a_manifest_by_digest_is_served_without_a_build(registry):
    builder, connection = registry
    digest = sha256_digest(DOCKER_MANIFEST)
    response, body = request(connection, "GET", f"/v2/shell/curl/manifests/{digest}")
    assert (response.status, body) == (200, DOCKER_MANIFEST)
    assert builder.asked == []


@pytest.mark.parametrize("method, path, status, code, message", [
    ("GET", "/v2/_catalog", 404, "UNSUPPORTED", "no such endpoint: /v2/_catalog"),
    ("GET", "/v2/Shell/manifests/latest", 400, "NAME_INVALID", "'Shell' is not a repository"),
    ("GET", "/v2/lib_x/blobs/sha256:00", 400, "NAME_INVALID", "`_` is only used in `_p`"),
    ("GET", "/v2/shell/manifests/stable", 404, "MANIFEST_UNKNOWN",
     "unknown tag 'stable': the tag is 'latest', the images of the pinned bookworm snapshot"),
    ("GET", f"/v2/shell/manifests/sha256:{'0' * 64}", 404, "MANIFEST_UNKNOWN",
     f"no manifest sha256:{'0' * 64} here"),
    ("GET", "/v2/shell/manifests/sha256:abc", 400, "DIGEST_INVALID", "not a sha256 digest"),
    ("GET", f"/v2/shell/blobs/sha256:{'0' * 64}", 404, "BLOB_UNKNOWN",
     f"no blob sha256:{'0' * 64} here"),
    ("GET", "/v2/shell/blobs/sha256:XYZ", 400, "DIGEST_INVALID", "not a sha256 digest"),
    ("PUT", "/v2/shell/manifests/latest", 405, "UNSUPPORTED", "it takes no pushes or deletes"),
    ("POST", "/v2/shell/blobs/uploads/", 405, "UNSUPPORTED", "it takes no pushes or deletes"),
    ("DELETE", f"/v2/shell/blobs/{sha256_digest(BLOB)}", 405, "UNSUPPORTED", "no pushes"),
])
def test_errors_are_the_specs_json_bodies(registry, method, path, status, code, message):
    _, connection = registry
    response, body = request(connection, method, path)
    assert response.status == status
    error = error_of(response, body)
    assert error["code"] == code and message in error["message"], error


@pytest.mark.parametrize("failure, status, message", [
    (ImageUnknown("amd64: no package curlx"), 404, "amd64: no package curlx"),
    (DownloadFailed("downloading curl failed 3 times"), 502, "downloading curl failed 3 times"),
    (BlobStoreFull("no space left"), 507, "the registry's cache directory is full"),
    (OSError(errno.ENOSPC, "No space left on device"), 507, "cache directory is full"),
    (RuntimeError("a bug"), 500, "RuntimeError: a bug"),
])
def test_a_failed_build_is_an_error_body_with_its_reason(registry, failure, status, message):
    builder, connection = registry
    builder.failure = failure
    response, body = request(connection, "GET", "/v2/shell/manifests/latest")
    assert response.status == status
    assert message in error_of(response, body)["message"]
    # A HEAD gets the status and the headers, without the body.
    response, body = request(connection, "HEAD", "/v2/shell/manifests/latest")
    assert (response.status, body) == (status, b"")


def test_a_refused_push_leaves_the_connection_usable(registry):
    """The refused request's body is not read as the next request."""
    _, connection = registry
    response, _ = request(connection, "PUT", "/v2/shell/blobs/uploads/x?digest=sha256:00",
                          body=b"GET /v2/_catalog HTTP/1.1\r\n\r\n" + b"x" * 10_000)
    assert response.status == 405
    response, body = request(connection, "GET", "/v2/")
    assert (response.status, body) == (200, b"{}")


def test_a_blob_whole(registry):
    _, connection = registry
    response, body = request(connection, "GET", BLOB_PATH)
    assert (response.status, body) == (200, BLOB)
    assert response.getheader("Docker-Content-Digest") == sha256_digest(BLOB)
    assert response.getheader("Accept-Ranges") == "bytes"
    assert response.getheader("Content-Range") is None
    response, body = request(connection, "HEAD", BLOB_PATH)
    assert (response.status, body, response.getheader("Content-Length")) == (200, b"", "1024")


@pytest.mark.parametrize("header, start, end", [
    ("bytes=0-99", 0, 100),
    ("bytes=1000-", 1000, 1024),
    ("bytes=1000-5000", 1000, 1024),  # past the end: up to the end
    ("bytes=1023-1023", 1023, 1024),
    ("bytes=1-", 1, 1024),
])
def test_a_blob_range(registry, header, start, end):
    _, connection = registry
    response, body = request(connection, "GET", BLOB_PATH, {"Range": header})
    assert (response.status, body) == (206, BLOB[start:end])
    assert response.getheader("Content-Range") == f"bytes {start}-{end - 1}/1024"
    assert response.getheader("Content-Length") == str(end - start)


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=-100", "bytes=0-1,5-6", "items=0-1"])
def test_a_range_asking_for_everything_or_unread_gets_the_whole_blob(registry, header):
    _, connection = registry
    response, body = request(connection, "GET", BLOB_PATH, {"Range": header})
    assert (response.status, body) == (200, BLOB)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=10-9"])
def test_a_range_outside_the_blob_is_refused(registry, header):
    _, connection = registry
    response, body = request(connection, "GET", BLOB_PATH, {"Range": header})
    assert response.status == 416
    error = error_of(response, body)
    assert error["code"] == "RANGE_INVALID" and "outside the blob's 1024 bytes" in error["message"]
    # The connection goes on: the next request is answered.
    response, body = request(connection, "GET", BLOB_PATH, {"Range": "bytes=0-0"})
    assert (response.status, body) == (206, BLOB[:1])


class RecordingServer(RegistryServer):
    """Notes each connection's end and each error the handler let out."""

    def __init__(self, *args):
        super().__init__(*args)
        self.finished, self.escaped = threading.Event(), []

    def handle_error(self, request, client_address):
        self.escaped.append(client_address)

    def shutdown_request(self, request):
        super().shutdown_request(request)
        self.finished.set()


def test_a_client_hanging_up_mid_blob_is_no_failure(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="strata.debian_registry")
    store = BlobStore(tmp_path / "blobs")
    with store.writer() as out:
        out.write(bytes(32 << 20))  # more than the socket buffers hold
    server = RecordingServer(("127.0.0.1", 0), StubBuilder(store))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = socket.create_connection(server.server_address, timeout=10)
        client.sendall(f"GET /v2/shell/blobs/{out.digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert client.recv(12) == b"HTTP/1.1 200"
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset, as a cancelled pull's
        assert server.finished.wait(10)
    finally:
        server.shutdown()
        server.server_close()
    assert server.escaped == []  # nothing for socketserver to print a traceback of
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("the client hung up" in r.getMessage() for r in caplog.records)


def test_a_tls_handshake_is_a_bad_request_logged_as_such(tmp_path, caplog):
    """podman tries TLS first: its ClientHello is an unreadable request line."""
    caplog.set_level(logging.INFO, logger="strata.debian_registry")
    server = RecordingServer(("127.0.0.1", 0), StubBuilder(BlobStore(tmp_path / "blobs")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(server.server_address, timeout=10) as client:
            client.sendall(bytes.fromhex("160301020001") + bytes(50) + b"\r\n\r\n")
            # Answered as HTTP/0.9 (no status line): the request named no version it can read.
            assert b"Error code: 400" in client.recv(4096)
        assert server.finished.wait(10)
    finally:
        server.shutdown()
        server.server_close()
    assert server.escaped == []
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "code 400" in warning and "plain HTTP" in warning
