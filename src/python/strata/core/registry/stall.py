"""The stall rule of a registry's answers, enforced on the socket under http.client, so in a
response's head as in its body: a registry that sends too slowly is a transient fault, so that
a trickle cannot hold a pull or push open forever (strata.core.registry.transport retries it)."""

import http.client
import io
import socket
import time
from typing import NamedTuple, Optional


class StallRule(NamedTuple):
    """When a response has stalled: fewer than `min_bytes` of it arrived while the client
    waited `seconds` for them. The wait is counted from the request's last byte sent, and
    afresh after each `min_bytes` received; time the client spends not reading (writing to
    disk) is not counted. A stall is a rate, not a total time: a large blob may take hours."""

    min_bytes: int = 1024
    seconds: float = 60.0

    @classmethod
    def parse(cls, min_bytes: Optional[str], seconds: Optional[str]) -> "StallRule":
        """From the `--stall-bytes` and `--stall-seconds` options (None: the default)."""
        default = cls()
        try:
            rule: Optional[StallRule] = cls(
                default.min_bytes if min_bytes is None else int(min_bytes),
                default.seconds if seconds is None else float(seconds),
            )
        except ValueError:
            rule = None
        if rule is None or rule.min_bytes < 1 or not 0 < rule.seconds < float("inf"):
            raise ValueError(
                "--stall-bytes must be a positive integer and --stall-seconds a positive "
                f"number: {min_bytes!r}, {seconds!r}"
            )
        return rule

    def __str__(self) -> str:
        return (
            f"fewer than {self.min_bytes} bytes arrived in {self.seconds:g}s (the stall rule: "
            "--stall-bytes, --stall-seconds; in Pants, [strata] registry_stall_bytes and "
            "registry_stall_seconds)"
        )


class Stalled(OSError):
    """A read that broke the StallRule (an OSError, as a socket timeout is)."""


class _StallGuardedSocket:
    """A connected socket whose reads raise Stalled under its StallRule; everything else is the
    socket's. http.client reads a response through makefile("rb"), sends with sendall."""

    def __init__(self, sock: socket.socket, rule: StallRule, send_timeout: Optional[float]):
        self._sock, self._rule, self._send_timeout = sock, rule, send_timeout
        self._readers, self._closed = 0, False
        self._expect_more()

    def _expect_more(self) -> None:
        self._waited, self._missing = 0.0, self._rule.min_bytes

    def sendall(self, data) -> None:
        self._sock.settimeout(self._send_timeout)
        self._sock.sendall(data)
        self._expect_more()  # the answer to this request gets a wait of its own

    def recv_into(self, buffer) -> int:
        left = self._rule.seconds - self._waited
        if left <= 0:
            raise Stalled(str(self._rule))
        self._sock.settimeout(left)
        started = time.monotonic()
        try:
            received = self._sock.recv_into(buffer)
        except socket.timeout:
            raise Stalled(str(self._rule)) from None
        finally:
            self._waited += time.monotonic() - started
        self._missing -= received
        if self._missing <= 0:
            self._expect_more()
        return received

    def makefile(self, mode: str = "rb", *args, **kwargs) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"a registry connection is read only as 'rb', not {mode!r}")
        self._readers += 1
        return io.BufferedReader(_GuardedReader(self))

    def close(self) -> None:
        """As socket.close: the socket stays open while a response still reads from it
        (http.client hands a connection that will close to its response)."""
        self._closed = True
        self._close_if_unread()

    def _reader_closed(self) -> None:
        self._readers -= 1
        self._close_if_unread()

    def _close_if_unread(self) -> None:
        if self._closed and self._readers <= 0:
            self._sock.close()

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _GuardedReader(io.RawIOBase):
    def __init__(self, sock: _StallGuardedSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock._reader_closed()
        super().close()


class _StallGuarded:
    """An HTTP(S) connection whose socket, once connected, is held to a StallRule."""

    def __init__(self, *args, stall: StallRule, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stall = stall

    def connect(self) -> None:
        super().connect()
        self.sock = _StallGuardedSocket(self.sock, self._stall, self.timeout)


class GuardedHTTPConnection(_StallGuarded, http.client.HTTPConnection):
    pass


class GuardedHTTPSConnection(_StallGuarded, http.client.HTTPSConnection):
    pass
