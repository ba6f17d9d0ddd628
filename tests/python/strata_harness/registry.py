"""A throwaway Docker registry (distribution 2.8's `docker-registry serve`) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

from strata_harness.images import source_ref
from strata_harness.servers import free_port
from strata_harness.tools import die_with_parent, require_tool, run_tool

START_TIMEOUT = 30.0
# Tests talk to 127.0.0.1 only: never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Registry:
    """A running registry: `.host` is "127.0.0.1:PORT", `.url` its http:// base URL.

    With htpasswd auth, `.credentials` is (user, password) and every helper here sends it.
    """

    def __init__(self, root: Path, credentials: tuple[str, str] | None) -> None:
        self.root = root
        self.credentials = credentials
        self.log_path = root / "registry.log"
        self.host = ""
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_config(self, port: int) -> Path:
        auth = ""
        if self.credentials is not None:
            user, password = self.credentials
            htpasswd = run_tool([require_tool("htpasswd"), "-B", "-b", "-n", user, password]).stdout
            (self.root / "htpasswd").write_bytes(htpasswd)
            path = json.dumps(str(self.root / "htpasswd"))
            auth = f"auth:\n  htpasswd:\n    realm: strata-test\n    path: {path}\n"
        config = self.root / "config.yml"
        # JSON strings are valid YAML scalars, so paths need no further quoting.
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(self.root / 'data'))}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(16)}\n" + auth
        )
        return config

    def _answers(self) -> bool:
        """True once GET /v2/ gets the registry's own answer (200, or 401 under auth)."""
        try:
            with _OPENER.open(f"{self.url}/v2/", timeout=2) as response:
                headers = response.headers
        except urllib.error.HTTPError as e:
            if e.code != 401:
                return False
            headers = e.headers
        except OSError:
            return False
        return headers.get("Docker-Distribution-Api-Version") == "registry/2.0"

    def start(self) -> Registry:
        """Starts on a free port, retrying when another process takes the port first."""
        binary = require_tool("docker-registry")
        for _ in range(5):
            port = free_port()
            self.host, self.url = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
            config = self._write_config(port)
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    [binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                    # It stays in the test's process group, which Pants kills when it cancels
                    # a test.
                    preexec_fn=die_with_parent,
                )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self._process.poll() is None:
                if self._answers() and self._process.poll() is None:
                    return self
                time.sleep(0.1)
            self.stop()
            if "address already in use" not in self.log_path.read_text(errors="replace"):
                break
        raise AssertionError(
            f"docker-registry did not come up:\n{self.log_path.read_text(errors='replace')}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def ref(self, name: str) -> str:
        """`docker://HOST/name` for skopeo."""
        return f"docker://{self.host}/{name}"

    def _skopeo_flags(self, prefix: str) -> list[str]:
        flags = [f"--{prefix}tls-verify=false"]
        if self.credentials is not None:
            flags.append(f"--{prefix}creds={':'.join(self.credentials)}")
        return flags

    def push(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        fmt: str | None = None,
        ref: str | None = None,
    ) -> str:
        """Copies an image on disk to `name` ("repo:tag") here; returns its docker:// ref."""
        dest = self.ref(name)
        flags = ["--insecure-policy", "copy", "--quiet", *self._skopeo_flags("dest-")]
        run_tool([require_tool("skopeo"), *flags, source_ref(path, fmt, ref), dest])
        return dest

    def inspect(self, name: str, *, raw: bool = False) -> dict:
        """`skopeo inspect` (or the raw manifest with raw=True) of `name` here."""
        flags = ["inspect", *self._skopeo_flags(""), *(["--raw"] if raw else [])]
        return json.loads(run_tool([require_tool("skopeo"), *flags, self.ref(name)]).stdout)

    def get(self, path: str) -> tuple[int, bytes]:
        """A plain GET of `/path` (with basic auth when configured): (status, body)."""
        request = urllib.request.Request(f"{self.url}{path}")
        if self.credentials is not None:
            token = b64encode(":".join(self.credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with _OPENER.open(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def start_registry(
    tmp: str | os.PathLike[str], htpasswd: tuple[str, str] | None = None
) -> Registry:
    """Starts a registry storing under `tmp`; `htpasswd=(user, password)` turns on basic auth.

    The caller stops it (`.stop()`, or use it as a context manager).
    """
    root = Path(tmp)
    root.mkdir(parents=True, exist_ok=True)
    return Registry(root, htpasswd).start()
