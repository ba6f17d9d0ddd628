"""The distribution API, pull side, over `ImageBuilder`: a manifest by tag builds the image its
name lists (or finds it built); manifests and blobs by digest come from the cache. Pushes are
refused. Errors are the spec's JSON bodies, never empty (Docker needs them: nixery#112)."""

from __future__ import annotations

import errno
import json
import logging
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

from strata.core.build.blobstore import BlobStoreFull
from strata.core.build.compression import CHUNK
from strata.core.debian_registry.builder import ImageBuilder, ImageUnknown
from strata.core.debian_registry.download import DownloadFailed
from strata.core.debian_registry.names import NameInvalid, parse_name
from strata.core.oci import media_types
from strata.core.oci.image import digest_hex, sha256_digest

log = logging.getLogger("strata.debian_registry")

TAG = "latest"  # the pinned snapshot's image; there is no other
_ROUTE = re.compile(r"/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<reference>[^/]+)")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class RegistryError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _wants_docker(accept_headers: List[str]) -> bool:
    """Docker's media types only when the client accepts no OCI manifest or index."""
    accepted = {value.split(";")[0].strip() for header in accept_headers
                for value in header.split(",")}
    oci = {media_types.OCI_MANIFEST, media_types.OCI_INDEX}
    docker = {media_types.DOCKER_MANIFEST, media_types.DOCKER_MANIFEST_LIST}
    return not accepted & oci and bool(accepted & docker)


class RegistryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "strata-debian-registry"
    server: "RegistryServer"

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse_push(self) -> None:
        self._error(RegistryError(405, "UNSUPPORTED", "this registry builds images when they "
                                  "are pulled; it takes no pushes or deletes"), head=False)

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_push

    def _serve(self, head: bool) -> None:
        self._started, self._answering = time.monotonic(), False
        try:
            self._route(head)
        except RegistryError as e:
            self._error(e, head)
        except ConnectionError as e:  # the client hung up (a pull cancelled, or timed out)
            log.info("%s %s: the client hung up: %s", self.command, self.path, e)
            self.close_connection = True
        except Exception as e:  # the client gets a 5xx and a message, the log the traceback
            log.exception("%s %s failed", self.command, self.path)
            if self._answering:  # half an answer sent: hanging up is the only way to say so
                self.close_connection = True
            else:
                self._error(_as_registry_error(e), head)

    def _route(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if path in ("/v2", "/v2/"):
            return self._send(200, "application/json", b"{}", head)
        match = _ROUTE.fullmatch(path)
        if match is None:
            raise RegistryError(404, "UNSUPPORTED", f"no such endpoint: {path} (this registry "
                                "serves /v2/<packages>/manifests/<tag or digest> and blobs)")
        try:
            name = parse_name(match["name"], self.server.builder.config)
        except NameInvalid as e:
            raise RegistryError(400, "NAME_INVALID", str(e)) from None
        reference = match["reference"]
        if match["kind"] == "blobs":
            return self._blob(reference, head)
        if reference.startswith("sha256:"):
            found = self._manifest_by_digest(reference)
        elif reference == TAG:
            built = self.server.builder.image(name)
            wants_docker = _wants_docker(self.headers.get_all("Accept") or [])
            found = self._manifest_by_digest(built.docker if wants_docker else built.oci)
        else:
            snapshot = self.server.builder.snapshot
            raise RegistryError(404, "MANIFEST_UNKNOWN", (
                f"unknown tag {reference!r}: the tag is {TAG!r}, the images of the pinned "
                f"{snapshot.suite} snapshot of {snapshot.date}, or a manifest digest"))
        data, media_type = found
        self._send(200, media_type, data, head)

    def _manifest_by_digest(self, digest: str) -> Tuple[bytes, str]:
        try:
            found = self.server.builder.manifest(digest)
        except ValueError as e:
            raise RegistryError(400, "DIGEST_INVALID", str(e)) from None
        if found is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", f"no manifest {digest} here")
        return found

    def _blob(self, digest: str, head: bool) -> None:
        try:
            path = self.server.builder.store.path(f"sha256:{digest_hex(digest)}")
            f = open(path, "rb")
        except ValueError as e:
            raise RegistryError(400, "DIGEST_INVALID", str(e)) from None
        except FileNotFoundError:
            raise RegistryError(404, "BLOB_UNKNOWN", f"no blob {digest} here") from None
        with f:
            size = f.seek(0, 2)
            start, end = self._range(size)
            status = 206 if (start, end) != (0, size) else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Docker-Content-Digest", digest)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            if head:
                return
            f.seek(start)
            left = end - start
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _range(self, size: int) -> Tuple[int, int]:
        """The byte range [start, end) a `Range: bytes=a-b` asks for, else the whole blob."""
        header = self.headers.get("Range")
        match = _RANGE.fullmatch(header.strip()) if header else None
        if match is None:
            return 0, size
        start = int(match[1])
        end = min(int(match[2]) + 1, size) if match[2] else size
        if start >= end:
            raise RegistryError(416, "RANGE_INVALID", f"range {header} is outside the blob's "
                                f"{size} bytes")
        return start, end

    def _send(self, status: int, content_type: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if content_type != "application/json":
            self.send_header("Docker-Content-Digest", sha256_digest(body))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_response(self, code, message=None) -> None:
        self._answering = True
        super().send_response(code, message)

    def end_headers(self) -> None:
        headers = getattr(self, "headers", None)  # none when the request line was unreadable
        if headers is not None and (headers.get("Content-Length", "0").strip() != "0"
                                    or "Transfer-Encoding" in headers):
            # No request here has a body to read: left unread, it would be read as the next
            # request on the connection.
            self.send_header("Connection", "close")
        super().end_headers()

    def _error(self, error: RegistryError, head: bool) -> None:
        body = json.dumps({"errors": [{"code": error.code, "message": error.message,
                                       "detail": {}}]}).encode()
        if error.status >= 500 or error.status == 404:
            log.warning("%s %s: %d %s: %s", self.command, self.path, error.status, error.code,
                        error.message)
        self._send(error.status, "application/json", body, head)

    def log_request(self, code="-", size="-") -> None:
        started = getattr(self, "_started", None)
        took = "" if started is None else f" ({time.monotonic() - started:.3f} s)"
        # No command or path when the request line was unreadable.
        log.info("%s %s %s %s%s", self.client_address[0], self.command or "-",
                 getattr(self, "path", "-"), code, took)

    def log_error(self, format: str, *args) -> None:
        """An unreadable request (`send_error`): a TLS handshake, most often, from a client
        that was not told the registry speaks plain HTTP (podman's `--tls-verify=false`)."""
        log.warning("%s: %s (this registry speaks plain HTTP)", self.client_address[0],
                    format % args)


def _as_registry_error(error: Exception) -> RegistryError:
    if isinstance(error, ImageUnknown):
        return RegistryError(404, "MANIFEST_UNKNOWN", str(error))
    if isinstance(error, DownloadFailed):
        return RegistryError(502, "UNKNOWN", str(error))
    if _out_of_space(error):
        return RegistryError(507, "UNKNOWN", f"the registry's cache directory is full: {error}")
    return RegistryError(500, "UNKNOWN", f"{type(error).__name__}: {error}")


def _out_of_space(error: Optional[BaseException]) -> bool:
    """Whether a full disk is the error's cause, however it was wrapped on the way (a .deb's
    reader reports the file it was writing, `from None`: the cause is still its context)."""
    while error is not None:
        if isinstance(error, BlobStoreFull) or (
                isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        error = error.__cause__ or error.__context__
    return False


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True  # a build in flight does not hold up a stop: its records come last

    def __init__(self, address: Tuple[str, int], builder: ImageBuilder):
        super().__init__(address, RegistryHandler)
        self.builder = builder
