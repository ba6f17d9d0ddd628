"""The registry that builds Debian images on pull (strata.core.debian_registry), started on a
free 127.0.0.1 port, and a proxy in front of the machine's Debian mirror that counts what the
registry downloads and fails the downloads a test names."""

from __future__ import annotations

import http.server
import json
import os
import re
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Sequence

from strata.core.debian.index import debian_mirror
from strata_harness.scratch import _plugin_source
from strata_harness.servers import LocalServer

# The demo's `//app:registry` settings.
CONFIG = {
    "target": "app:registry",
    "suite": "bookworm",
    "architectures": ["amd64", "arm64"],
    "meta_packages": {"shell": ["bash", "coreutils"]},
    "max_layers": 100,
    "compression": "gzip",
    "created": "1970-01-01T00:00:01Z",
}


class DebianRegistry(LocalServer):
    """The registry serving from `cache_dir`, through `mirror`. `program`: how it starts,
    before its `--listen ... --cache-dir ...` options: by default the core's CLI with `config`
    (the demo's unless given) from the plugin's source; a packaged registry's PEX instead."""

    name = "the Debian registry"

    def __init__(self, root: Path, cache_dir: Path, mirror: str, *,
                 config: Dict | None = None, program: Sequence[str] = ()) -> None:
        super().__init__(root, root / "registry.log")
        self.cache_dir, self.mirror = cache_dir, mirror
        if not program:
            config_file = root / "registry-config.json"
            config_file.write_text(json.dumps(config or CONFIG))
            program = [sys.executable, "-m", "strata.core", "debian-registry",
                       "--config", str(config_file)]
        self.program = list(program)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> List[str]:
        return [*self.program, "--listen", self.host, "--cache-dir", str(self.cache_dir),
                "--mirror", self.mirror]

    def _env(self) -> Dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONPATH": str(_plugin_source().parent.absolute())}

    def _ready(self) -> bool:
        return get(f"http://{self.host}/v2/")[0] == 200

    def kill(self, sig: int) -> int:
        """Sends `sig` to the server; its exit status once it has gone."""
        assert self._process is not None, "the registry is not running"
        process = self._process
        os.killpg(process.pid, sig)
        status = process.wait(timeout=60)
        self.stop()
        return status

    def builds(self) -> List[str]:
        """The log's "built <image> (...)" lines: one per image built."""
        return re.findall(r"built (\S+ \([^)]*\)) in", self.log())


def get(url: str, headers: Dict[str, str] | None = None, method: str = "GET"):
    """(status, headers, body) of a request, whatever the status."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class MirrorProxy:
    """An HTTP server on 127.0.0.1 answering each GET with the machine's Debian mirror's answer
    to the same path, except paths matching a `fail(pattern)` (a 503, as a mirror in trouble
    gives); `.requests` lists every path asked for."""

    def __init__(self) -> None:
        self.upstream = debian_mirror().rstrip("/")
        self.requests: List[str] = []
        self._failing: Dict[str, int | None] = {}  # pattern -> failures left (None: always)
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                status, body = proxy._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def fail(self, pattern: str, times: int | None = None) -> None:
        with self._lock:
            self._failing[pattern] = times

    def heal(self) -> None:
        with self._lock:
            self._failing.clear()

    def count(self, pattern: str) -> int:
        return sum(1 for path in self.requests if re.search(pattern, path))

    def _answer(self, path: str):
        with self._lock:
            self.requests.append(path)
            for pattern, left in self._failing.items():
                if re.search(pattern, path) and (left is None or left > 0):
                    if left is not None:
                        self._failing[pattern] = left - 1
                    return 503, b"the test's mirror proxy fails this download"
        status, _, body = get(self.upstream + path)
        return status, body

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MirrorProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
