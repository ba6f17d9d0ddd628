"""The stall rule: a registry that trickles is a stall, retried; a slow but steady one is not."""

import os
import socketserver
import threading

import pytest

from strata.core.oci import image, media_types
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import RegistryError
from strata.core.registry.stall import StallRule

OCI_MANIFEST = media_types.OCI_MANIFEST


class Trickler:
    """A registry on 127.0.0.1 that answers the ping at once and every other GET with
    `response`: its first `at_once` bytes, then `step` bytes every `interval` seconds until the
    response ends, the client hangs up or the test ends (so every connection is bounded)."""

    def __init__(self, response: bytes, *, at_once: int, step: int = 1, interval: float = 0.05):
        self.gets = 0
        self._stop = threading.Event()
        trickler = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while not trickler._stop.is_set():
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = self.rfile.readline()
                        if not line:
                            return
                        head += line
                    if head.startswith(b"GET /v2/ "):
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                        continue
                    trickler.gets += 1
                    try:
                        self.wfile.write(response[:at_once])
                        for start in range(at_once, len(response), step):
                            if trickler._stop.wait(interval):
                                return
                            self.wfile.write(response[start : start + step])
                    except OSError:  # the client gave up
                        return

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def trickle():
    servers = []

    def start(response: bytes, **kwargs) -> Trickler:
        servers.append(Trickler(response, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


HANG_LIMIT = 60  # seconds: a call still running then hangs (a stall here takes ~1 s a try)


def returns(call):
    """call()'s result or exception; a call still running after HANG_LIMIT fails the test."""
    outcome = {}

    def run():
        try:
            outcome["result"] = call()
        except BaseException as e:  # noqa: B036 - handed to the test
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_LIMIT)
    if thread.is_alive():
        pytest.fail(f"still waiting for the registry after {HANG_LIMIT}s: it hangs")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def blob_response(body: bytes, padding: int = 0) -> bytes:
    """An HTTP answer of `body`, with a header of `padding` bytes (a head that trickles for as
    long as a body would)."""
    pad = f"X-Padding: {'.' * padding}\r\n" if padding else ""
    return f"HTTP/1.1 200 OK\r\n{pad}Content-Length: {len(body)}\r\n\r\n".encode() + body


STALL = StallRule(min_bytes=100, seconds=1.0)


def test_a_blob_that_trickles_is_a_stall_retried_then_a_clear_error(
    trickle, tmp_path, retry_warnings
):
    body = os.urandom(64 * 1024)
    digest = image.sha256_digest(body)
    response = blob_response(body)
    # One byte every 50 ms: 20 bytes a second, where the rule asks for 100.
    server = trickle(response, at_once=len(response) - len(body) + 10)
    client = RegistryClient(server.host, retries=2, backoff=0.01, stall=STALL)
    with pytest.raises(RegistryError) as e:
        returns(lambda: client.fetch_blob("strata/slow", digest, str(tmp_path / "blob")))
    assert str(e.value) == (
        f"fetching blob {digest} from {server.host}/strata/slow: failed after 3 attempts: "
        f"the registry stalled: {STALL}"
    )
    assert "fewer than 100 bytes arrived in 1s" in str(e.value)
    assert server.gets == 3
    assert len(retry_warnings()) == 2
    assert all("the registry stalled" in w for w in retry_warnings())
    assert list(tmp_path.iterdir()) == []


def test_a_response_head_that_trickles_is_a_stall(trickle):
    manifest = image.canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST})
    digest = image.sha256_digest(manifest)
    server = trickle(blob_response(manifest, padding=60000), at_once=0)
    client = RegistryClient(server.host, retries=1, backoff=0.01, stall=STALL)
    with pytest.raises(RegistryError) as e:
        returns(lambda: client.resolve("strata/slow", digest))
    assert str(e.value) == (
        f"resolving {server.host}/strata/slow@{digest}: failed after 2 attempts: "
        f"GET http://{server.host}/v2/strata/slow/manifests/{digest}: "
        f"the registry stalled: {STALL}"
    )
    assert server.gets == 2


def test_a_slow_but_steady_registry_is_no_stall(trickle, tmp_path, retry_warnings):
    body = os.urandom(4000)
    digest = image.sha256_digest(body)
    # 200 bytes every 50 ms, some 40 times what the rule asks for, over twice its window.
    server = trickle(blob_response(body), at_once=0, step=200)
    client = RegistryClient(server.host, retries=0, stall=STALL)
    out = tmp_path / "blob"
    assert returns(lambda: client.fetch_blob("strata/slow", digest, str(out), len(body))) == 4000
    assert out.read_bytes() == body
    assert retry_warnings() == []


@pytest.mark.parametrize(
    "min_bytes, seconds", [("0", None), (None, "0"), ("x", None), (None, "nan"), ("1.5", "1")]
)
def test_the_stall_rule_must_be_positive(min_bytes, seconds):
    with pytest.raises(ValueError, match="--stall-bytes must be a positive integer"):
        StallRule.parse(min_bytes, seconds)
    assert StallRule.parse(None, None) == StallRule()
    assert StallRule.parse("10", "0.5") == StallRule(10, 0.5)
