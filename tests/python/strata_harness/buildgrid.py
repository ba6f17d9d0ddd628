"""A throwaway BuildGrid (PyPI `buildgrid==0.4.4`) serving a REAPI cache on 127.0.0.1: CAS,
ByteStream and ActionCache (plus Capabilities, which BuildGrid always serves), on disk under a
temp dir, for tests that share Pants' remote cache between checkouts.

BuildGrid lives in a venv of its own at a fixed path (STRATA_BUILDGRID_VENV overrides it),
created on first use from exact pins with CPython 3.11 (BuildGrid 0.4.4 requires >= 3.11) and
pip's default configuration; a marker file holding the pins makes later uses a no-op.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

from strata_harness.servers import LocalServer
from strata_harness.tools import unavailable

BUILDGRID_VERSION = "0.4.4"
DEFAULT_VENV = f"/opt/strata/buildgrid-venv-{BUILDGRID_VERSION}"
PYTHON = "/usr/bin/python3.11"
INSTANCE_NAME = "main"
# BuildGrid 0.4.4 and its whole dependency closure for CPython 3.11 on linux x86_64, pinned
# exactly and installed with --no-deps, so every machine gets the same server.
PINS = (
    "buildgrid==0.4.4",
    "buildgrid-metering-client==0.0.4",
    "grpcio==1.85.1",
    "grpcio-health-checking==1.85.1",
    "grpcio-reflection==1.85.1",
    "janus==2.0.0",
    "jsonschema==4.26.0",
    "protobuf==7.36.2",
    "pycurl==7.49.0",
    "pydantic==2.14.3",
    "pydantic_core==2.50.4",
    "PyYAML==6.0.3",
    "requests==2.34.2",
    "SQLAlchemy==2.1.9",
    "alembic==1.20.1",
    "boto3==1.44.5",
    "botocore==1.44.5",
    "click==8.5.1",
    "cryptography==50.0.2",
    "dnspython==2.9.2",
    "Jinja2==3.1.6",
    "lark-parser==0.12.0",
    "mmh3==5.3.1",
    "PyJWT==2.15.1",
    "sentry-sdk==2.75.0",
    "aiohttp==3.14.5",
    "annotated-types==0.8.0",
    "async-lru==2.4.0",
    "attrs==26.1.0",
    "cachetools==8.0.1",
    "certifi==2026.10.18",
    "cffi==2.1.1",
    "charset-normalizer==3.5.2",
    "idna==3.20",
    "jmespath==1.1.0",
    "jsonschema-specifications==2025.9.1",
    "MarkupSafe==3.0.4",
    "python-dateutil==2.9.0.post0",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "s3transfer==0.19.3",
    "tenacity==9.2.1",
    "typing_extensions==4.16.0",
    "typing-inspection==0.4.5",
    "urllib3==2.8.0",
    "Mako==1.4.3",
    "aiohappyeyeballs==2.7.1",
    "aiosignal==1.4.0",
    "frozenlist==1.8.0",
    "multidict==7.2.1",
    "propcache==0.5.4",
    "six==1.17.0",
    "yarl==1.25.1",
    "pycparser==3.12",
)
MARKER = ".strata-pins"
# The settings README.md ("Sharing layers between machines") asks for, and nothing else changed
# from BuildGrid's and Pants' defaults: without them a fresh checkout rebuilds some layers.
# The server serves at most THREAD_POOL_SIZE RPCs at once and refuses the rest (its default is
# 5 x CPUs); a Pants client keeps up to STORE_RPC_CONCURRENCY + CACHE_RPC_CONCURRENCY in flight.
THREAD_POOL_SIZE = 128
STORE_RPC_CONCURRENCY = 16
CACHE_RPC_CONCURRENCY = 16
# Seconds a writing Pants run waits for its background cache writes before dropping them.
SESSION_END_TASKS_TIMEOUT = 60


def buildgrid_venv() -> Path:
    return Path(os.environ.get("STRATA_BUILDGRID_VENV", DEFAULT_VENV))


def _pins_text() -> str:
    return "".join(f"{pin}\n" for pin in PINS)


def _installed(venv: Path) -> bool:
    marker = venv / MARKER
    return (
        (venv / "bin" / "bgd").is_file()
        and marker.is_file()
        and marker.read_text() == _pins_text()
    )


def _run(cmd: list[str], env: dict[str, str], what: str, timeout: float = 900) -> None:
    try:
        proc = subprocess.run(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        unavailable(f"cannot install BuildGrid {BUILDGRID_VERSION}: {what}: {e}")
    if proc.returncode != 0:
        unavailable(
            f"cannot install BuildGrid {BUILDGRID_VERSION}: {what} exited {proc.returncode}:\n"
            f"{proc.stderr[-4000:]}{proc.stdout[-2000:]}"
        )


def ensure_buildgrid() -> Path:
    """The path of `bgd`, installing BuildGrid into its venv first if needed (or skip, fail
    under CI). Concurrent test processes serialise on a lock file next to the venv."""
    venv = buildgrid_venv()
    if _installed(venv):
        return venv / "bin" / "bgd"
    if not os.access(PYTHON, os.X_OK):
        unavailable(f"BuildGrid {BUILDGRID_VERSION} needs CPython >= 3.11 at {PYTHON}")
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
        lock = open(venv.parent / f".{venv.name}.lock", "w")
    except OSError as e:
        unavailable(f"cannot create BuildGrid's venv at {venv}: {e}")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(venv):
            return venv / "bin" / "bgd"
        shutil.rmtree(venv, ignore_errors=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": os.path.expanduser("~"),
            "LANG": "C.UTF-8",
            # The pins are the whole closure: no machine-wide constraints file applies.
            "PIP_CONSTRAINT": "",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        # Whatever pip configuration the machine has (pip.conf, PIP_*, proxies) applies.
        for name, value in os.environ.items():
            if name.startswith("PIP_") or name.lower().endswith("_proxy"):
                env.setdefault(name, value)
        _run([PYTHON, "-m", "venv", "--without-pip", str(venv)], env, "python3.11 -m venv")
        wheels = sorted(Path("/usr/share/python-wheels").glob("pip-*.whl"))
        python = str(venv / "bin" / "python")
        if wheels:
            # Seed pip from Debian's wheel (python3-venv's ensurepip may be missing).
            wheel = str(wheels[-1])
            _run([python, f"{wheel}/pip", "install", "-q", "--no-index", wheel], env, "seeding pip")
        else:
            _run([python, "-m", "ensurepip", "--default-pip"], env, "ensurepip")
        requirements = venv / "requirements.txt"
        requirements.write_text(_pins_text())
        _run(
            [python, "-m", "pip", "install", "-q", "--no-deps", "-r", str(requirements)],
            env,
            "pip install",
        )
        _run([python, "-m", "pip", "check"], env, "pip check")
        (venv / MARKER).write_text(_pins_text())
    return venv / "bin" / "bgd"


def config_yaml(port: int, storage: Path, instance_name: str = INSTANCE_NAME) -> str:
    """A cache-only BuildGrid: disk-backed CAS + ByteStream, an in-memory ActionCache whose
    results live in that CAS; no execution service, no auth; stock but for `thread-pool-size`.
    JSON strings are YAML scalars."""
    return f"""\
thread-pool-size: {THREAD_POOL_SIZE}
server:
  - !channel
    address: {json.dumps(f"127.0.0.1:{port}")}
    insecure-mode: true
authorization:
  method: none
storages:
  - !disk-storage &cas
    path: {json.dumps(str(storage))}
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 100000
    allow-updates: true
    cache-failed-actions: false
instances:
  - name: {json.dumps(instance_name)}
    services:
      - !action-cache
        cache: *ac
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
"""


class BuildGrid(LocalServer):
    """A running BuildGrid: `.address` is grpc://127.0.0.1:PORT, `.instance_name` its instance."""

    name = f"BuildGrid {BUILDGRID_VERSION}"

    def __init__(self, root: Path, bgd: Path) -> None:
        super().__init__(root, root / "buildgrid.log")
        self.bgd = bgd
        self.config_path = root / "buildgrid.yml"
        self.storage = root / "cas"
        self.instance_name = INSTANCE_NAME

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def pants_args(self, *, read: bool = True, write: bool = False) -> list[str]:
        """Pants flags for using this server as the remote cache (no remote execution)."""
        return [
            f"--remote-store-address={self.address}",
            f"--remote-instance-name={self.instance_name}",
            f"--{'' if read else 'no-'}remote-cache-read",
            f"--{'' if write else 'no-'}remote-cache-write",
            f"--remote-store-rpc-concurrency={STORE_RPC_CONCURRENCY}",
            f"--remote-cache-rpc-concurrency={CACHE_RPC_CONCURRENCY}",
            # The first remote cache error is logged in any case, so a broken cache shows.
            "--remote-cache-warnings=first_only",
            *([f"--session-end-tasks-timeout={SESSION_END_TASKS_TIMEOUT}"] if write else []),
        ]

    def _configure(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_yaml(self.port, self.storage, self.instance_name))

    def command(self) -> list[str]:
        return [str(self.bgd), "server", "start", "-v", str(self.config_path)]

    def _env(self) -> dict[str, str]:
        # 127.0.0.1 only: no proxies from the environment.
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8"}

    def _ready(self) -> bool:
        """True once a Capabilities call to our instance succeeds."""
        try:
            proc = subprocess.run(
                [
                    str(self.bgd),
                    "capabilities",
                    f"--remote=http://127.0.0.1:{self.port}",
                    f"--instance-name={self.instance_name}",
                ],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=20,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0 and "cacheCapabilities" in proc.stdout


def start_buildgrid(tmp: str | os.PathLike[str]) -> BuildGrid:
    """Installs BuildGrid if needed and starts it storing under `tmp` (the caller stops it)."""
    bgd = ensure_buildgrid()
    root = Path(tmp)
    root.mkdir(parents=True, exist_ok=True)
    return BuildGrid(root, bgd).start()
