"""A throwaway server process on a free 127.0.0.1 port: the start, retry and stop logic the
harness's REAPI servers (BuildGrid, buildbox-casd) share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TypeVar

from strata_harness.tools import die_with_parent, unavailable

START_ATTEMPTS = 5
START_TIMEOUT = 60.0

_Server = TypeVar("_Server", bound="LocalServer")


def free_port() -> int:
    """A port free right now; another process may still take it before the server binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class LocalServer:
    """A server process in its own process group, logging to `log_path`, run from `root`.

    Subclasses set `name` (for messages) and give `command()`, `_env()` and `_ready()`;
    `_configure()` runs once `.port` is picked, before `command()`. Use it as a context
    manager, or call `.stop()`."""

    name = "server"

    def __init__(self, root: Path, log_path: Path) -> None:
        self.root = root
        self.log_path = log_path
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """True once the server answers a real request (an open port is not enough)."""
        raise NotImplementedError

    def _configure(self) -> None:
        pass

    def __enter__(self: _Server) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self: _Server) -> _Server:
        """Starts on a free port, retrying when another process takes the port first."""
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            self._configure()
            command = self.command()
            with open(self.log_path, "ab") as log:
                log.write(f"$ {' '.join(command)}\n".encode())
                log.flush()
                self._process = subprocess.Popen(
                    command,
                    cwd=self.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env(),
                    start_new_session=True,  # its own process group, killed as a whole
                    preexec_fn=die_with_parent,
                )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self._process.poll() is None:
                if port_open(self.port) and self._ready():
                    return self
                time.sleep(0.2)
            self.stop()
            if "address already in use" not in self.log().lower():
                break
        unavailable(f"{self.name} did not come up on 127.0.0.1:{self.port}:\n" + self.log()[-8000:])
        raise AssertionError("unreachable")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Reap the group's stragglers (e.g. a worker's runners), if any survived the leader.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
