"""Fixtures of the registry client's tests: no ambient credentials, in-test HTTP servers, a
recording proxy before the session's registry, an image pushed there, the retry warnings."""

from __future__ import annotations

import http.server
import logging
import os
import threading
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from strata.core.oci import media_types
from strata.core.registry.client import RegistryClient
from strata.core.registry.push_policy import push_image
from strata_harness import FaultProxy, Request
from strata_harness.registry_images import LocalImage, local_image


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, tmp_path):
    """Credentials come only from what each test sets up."""
    monkeypatch.delenv("STRATA_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("STRATA_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


Handler = Callable[[Request], Tuple[int, Dict[str, str], bytes]]


class Server:
    """An HTTP/1.1 (keep-alive) server on 127.0.0.1 in a thread, recording every request.
    With hang_up, it closes each connection after one answer without saying so."""

    def __init__(self, handle: Handler, hang_up: bool = False) -> None:
        self.requests: List[Request] = []
        server = self

        class RequestHandler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, self.path, self.headers, self.rfile.read(length))
                server.requests.append(request)
                status, headers, body = handle(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.close_connection = hang_up

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = answer

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, method: str, path_prefix: str) -> int:
        return sum(r.method == method and r.path.startswith(path_prefix) for r in self.requests)


@pytest.fixture
def serve():
    servers = []

    def start(handle: Handler, **kwargs) -> Server:
        servers.append(Server(handle, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def proxy(registry) -> Iterator[FaultProxy]:
    """A recording proxy in front of the registry (faults added by each test)."""
    with FaultProxy(registry.host) as proxy:
        yield proxy


@pytest.fixture
def pushed(registry, tmp_path) -> LocalImage:
    """strata/faults:1 in the registry: a config and a 64 KiB layer."""
    img = local_image(tmp_path / "img", {"data.bin": os.urandom(64 * 1024)})
    client = RegistryClient(registry.host)
    push_image(
        client, "strata/faults", ["1"], img.manifest, media_types.OCI_MANIFEST, img.blobs
    )
    return img


@pytest.fixture
def retry_warnings(caplog) -> Callable[[], List[str]]:
    """The registry's retry warnings logged so far, as a function."""
    caplog.set_level(logging.WARNING, logger="strata.core.registry")
    return lambda: [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
