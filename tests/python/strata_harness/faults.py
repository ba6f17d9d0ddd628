"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real server (the docker-registry),
to test that a client retries transient network faults and reports them truthfully.

    with FaultProxy(registry.host) as proxy:
        cut = proxy.add(Fault("cut", "GET", r"/blobs/sha256:", after=100))
        ...                                # talk to proxy.host
        assert cut.applied == 1

Each request is forwarded on a fresh upstream connection; the Host header passes unchanged, so
the registry's Location headers point back through the proxy. Bodies are held in memory whole
(test-sized images), and responses go back with a Content-Length, never chunked.
"""

from __future__ import annotations

import http.client
import http.server
import re
import socket
import struct
import threading
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence

ACTIONS = ("cut", "reset", "corrupt", "cut_request", "no_response", "trickle")
TRICKLE_INTERVAL = 0.05  # seconds between the bytes of a trickled body
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class Fault:
    """`action` on the first `times` requests (None: every one) whose method is `method` and
    whose path matches the regex `path`; `applied` counts how often it happened.

    cut: the response's headers (with its full Content-Length) and `after` bytes of its body,
        then the connection is closed, as when a connection drops mid-transfer.
    reset: the same, then the connection is reset (TCP RST) instead.
    corrupt: the whole response, the same length, with the byte at offset `after` flipped.
    cut_request: `after` bytes of the request body are read, then the connection is reset;
        the request never reaches the server.
    no_response: the request goes to the server (and takes effect there), then the
        connection is closed without an answer.
    trickle: the response's headers and `after` bytes of its body, then one byte every
        TRICKLE_INTERVAL seconds, until the body ends, the client hangs up or the proxy closes.
    """

    action: str
    method: str
    path: str
    after: int = 0
    times: Optional[int] = 1
    applied: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}: {self.action!r}")

    def _takes(self, method: str, path: str) -> bool:
        """Whether it applies to this request (counting it when it does)."""
        wanted = self.times is None or self.applied < self.times
        if wanted and method == self.method and re.search(self.path, path):
            self.applied += 1
            return True
        return False


class Request(NamedTuple):
    """A request as the proxy (or a test server) saw it, with the fault it got, if any."""

    method: str
    path: str
    headers: http.client.HTTPMessage
    body: bytes
    fault: Optional[str] = None


class FaultProxy:
    """The proxy, listening on `.host` ("127.0.0.1:PORT") in a thread until close(); every
    request is recorded in `.requests`."""

    def __init__(self, upstream: str, faults: Sequence[Fault] = ()) -> None:
        self.upstream = upstream
        self.faults: List[Fault] = list(faults)
        self.requests: List[Request] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def handle_request(self) -> None:
                proxy._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_request

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def count(self, method: str, path_prefix: str) -> int:
        return sum(r.method == method and r.path.startswith(path_prefix) for r in self.requests)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fault_for(self, method: str, path: str) -> Optional[Fault]:
        with self._lock:
            return next((f for f in self.faults if f._takes(method, path)), None)

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        fault = self._fault_for(method, path)
        action = fault.action if fault else None
        if handler.headers.get("Transfer-Encoding"):
            raise AssertionError("the fault proxy forwards Content-Length request bodies only")
        length = int(handler.headers.get("Content-Length") or 0)
        if fault is not None and action == "cut_request":
            body = handler.rfile.read(min(fault.after, length))
            self._record(Request(method, path, handler.headers, body, action))
            _reset(handler)
            return
        body = handler.rfile.read(length)
        self._record(Request(method, path, handler.headers, body, action))
        status, reason, headers, answer = self._forward(method, path, handler.headers, body)
        if action == "no_response":
            handler.close_connection = True
            return
        if fault is not None and action == "corrupt" and fault.after < len(answer):
            flipped = bytearray(answer)
            flipped[fault.after] ^= 0xFF
            answer = bytes(flipped)
        handler.send_response(status, reason)
        for name, value in headers:
            handler.send_header(name, value)
        if method == "HEAD":
            answer = b""  # its Content-Length, among `headers`, is the resource's
        else:
            handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        if fault is not None and action == "trickle":
            handler.wfile.write(answer[: fault.after])
            for offset in range(fault.after, len(answer)):
                if self._closing.wait(TRICKLE_INTERVAL):
                    break
                try:
                    handler.wfile.write(answer[offset : offset + 1])
                    handler.wfile.flush()
                except OSError:  # the client gave up
                    break
            handler.close_connection = True
            return
        if fault is not None and action in ("cut", "reset"):
            handler.wfile.write(answer[: fault.after])
            if action == "reset":
                _reset(handler)
            handler.close_connection = True
            return
        handler.wfile.write(answer)

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _forward(self, method: str, path: str, headers: http.client.HTTPMessage, body: bytes):
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() != "connection"}
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            answer = response.read()
        finally:
            conn.close()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        if method == "HEAD" and response.getheader("Content-Length"):
            kept.append(("Content-Length", response.getheader("Content-Length")))
        return response.status, response.reason, kept, answer


def _reset(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Ends the connection with a TCP RST rather than a FIN: SO_LINGER with a zero timeout,
    then close (the socket closes for real once the handler's files do, before the server's
    shutdown(SHUT_WR) could send a FIN)."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True
