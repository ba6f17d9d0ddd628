"""A private Docker daemon (Debian's docker.io: dockerd 20.10) confined to one directory."""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from strata_harness.cgroups import remove_cgroup
from strata_harness.tools import die_with_parent, require_tool, run_tool, unavailable

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# Host directories that dockerd 20.10 (plugin discovery) and containerd 1.6 (the runc shims'
# sockets) create whatever their configuration says, children first. stop() removes those
# that did not exist at start, when they are empty.
_HARD_CODED_DIRS = tuple(
    Path(p) for p in ("/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd")
)
_MNT_DETACH = 2


def _version(binary: str) -> str | None:
    """'20.10.24+dfsg1' from 'Docker version 20.10.24+dfsg1, build 5d6db84'."""
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    match = re.match(r"Docker version (\S+),", proc.stdout)
    return match[1] if match else None


def _clients() -> list[str]:
    """Every `docker` on PATH, in PATH order."""
    found: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.realpath(os.path.join(directory, "docker"))
        if os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


class Dockerd:
    """dockerd with a containerd of its own; every piece of their state (images, containers,
    runtime state, sockets, keys, the client's config) lives under `root`, containers get a
    cgroup of their own and the host's network is left alone. stop() removes all of it.

    Found by trying on Debian bookworm (docker.io 20.10, containerd 1.6, cgroups v1):
    - --data-root, --exec-root, -H unix://ROOT/sock and --pidfile keep dockerd's state here;
      --iptables=false, --ip-masq=false, --ip-forward=false and --bridge=none keep it off the
      host's firewall, sysctls and links (containers run with --network=none); vfs storage:
      no storage mounts for a killed test to leak.
    - --config-file naming a file here whose only key is `deprecated-key-path`: no
      /etc/docker/daemon.json applies, and the daemon's key goes here rather than to
      /etc/docker/key.json (no flag moves it).
    - a containerd of its own (--containerd): dockerd would use the host's whenever
      /run/containerd/containerd.sock exists, and the one it starts otherwise creates
      /opt/containerd; this one keeps its root, state, socket and `opt` directory here.
    - --cgroup-parent of its own, removed by stop(): otherwise /sys/fs/cgroup/*/docker stays.
    - the client is the first `docker` on PATH of the daemon's version (not e.g. a newer one in
      /usr/local/bin), with DOCKER_CONFIG here, so no user's config.json or credentials apply.
    - no --insecure-registry: dockerd already talks plain http to 127.0.0.0/8 registries.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.dockerd = require_tool("dockerd")
        self.containerd = require_tool("containerd")
        version = _version(self.dockerd)
        clients = _clients()
        matching = [c for c in clients if version and _version(c) == version]
        if not matching:
            unavailable(
                f"no docker client of dockerd's version {version} on PATH (found: "
                f"{', '.join(clients) or 'none'}); install Debian's docker.io with "
                "build-support/install-system-tools.sh"
            )
        self.docker = matching[0]
        self.root = Path(root).absolute()
        self.socket = self.root / "sock"
        self.cgroup_parent = f"/strata-test-docker-{secrets.token_hex(8)}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.root / "client"),
        }
        self._created: list[Path] = []
        self._processes: list[subprocess.Popen[bytes]] = []  # containerd, then dockerd

    def __enter__(self) -> Dockerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Dockerd:
        self._created = [d for d in _HARD_CODED_DIRS if not d.exists()]
        for d in ("client", "containerd", "exec", "root"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # JSON strings are valid TOML basic strings.
        state = self.root / "containerd"
        (self.root / "containerd.toml").write_text(
            "version = 2\n"
            f"root = {json.dumps(str(state / 'root'))}\n"
            f"state = {json.dumps(str(state / 'state'))}\n"
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f"[grpc]\n  address = {json.dumps(str(self.root / 'containerd.sock'))}\n"
            '[debug]\n  address = ""\n'
            '[metrics]\n  address = ""\n'
            '[plugins."io.containerd.internal.v1.opt"]\n'
            f"  path = {json.dumps(str(state / 'opt'))}\n"
        )
        (self.root / "daemon.json").write_text(
            json.dumps({"deprecated-key-path": str(self.root / "key.json")})
        )
        self._spawn([self.containerd, "--config", str(self.root / "containerd.toml")])
        self._wait_until(lambda: (self.root / "containerd.sock").exists())
        self._spawn(
            [self.dockerd,
             "--containerd", str(self.root / "containerd.sock"),
             "--data-root", str(self.root / "root"),
             "--exec-root", str(self.root / "exec"),
             "-H", f"unix://{self.socket}",
             "--pidfile", str(self.root / "pid"),
             "--config-file", str(self.root / "daemon.json"),
             "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
             "--storage-driver=vfs",
             "--cgroup-parent", self.cgroup_parent],
        )  # fmt: skip
        self._wait_until(self._pings)
        return self

    def _spawn(self, argv: list[str]) -> None:
        log = self.root / f"{Path(argv[0]).name}.log"
        with open(log, "ab") as out:
            self._processes.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={"PATH": self.env["PATH"]},
                    preexec_fn=die_with_parent,
                )
            )

    def _wait_until(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and all(p.poll() is None for p in self._processes):
            if ready():
                return
            time.sleep(0.1)
        logs = "".join(
            f"--- {log.name}:\n{log.read_text(errors='replace')[-4000:]}\n"
            for log in sorted(self.root.glob("*.log"))
        )
        self.stop()
        raise AssertionError(f"the private dockerd did not come up:\n{logs}")

    def _pings(self) -> bool:
        """True once the daemon answers GET /_ping on its socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.0 200")
        except OSError:
            return False

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        """Runs `docker ARGS` against this daemon; a failure raises AssertionError."""
        return run_tool([self.docker, *args], env=self.env, timeout=timeout)

    def run(self, image: str, *args: str, timeout: float = 300) -> tuple[int, str]:
        """`docker run` of an image this daemon has (no network, removed afterwards):
        (exit code, stdout). Docker's own stderr goes to the test's captured stderr."""
        proc = subprocess.run(
            [self.docker, "run", "--rm", "--network=none", "--pull=never", image, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        sys.stderr.write(proc.stderr.decode(errors="replace"))
        return proc.returncode, proc.stdout.decode(errors="replace")

    def stop(self) -> None:
        """Stops dockerd (which stops its containers), then containerd; removes their mounts,
        cgroups and directory, and the host directories they created."""
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._processes.clear()
        self._unmount_leftovers()
        remove_cgroup(self.cgroup_parent)
        shutil.rmtree(self.root, ignore_errors=True)
        for d in self._created:
            try:
                d.rmdir()
            except OSError:  # in use by another daemon, or already gone
                pass

    def _unmount_leftovers(self) -> None:
        """A daemon killed mid-way leaves its data root bind-mounted on itself."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        inside = [p for p in points if p == str(self.root) or p.startswith(f"{self.root}/")]
        libc = ctypes.CDLL(None, use_errno=True)
        for point in sorted(inside, key=len, reverse=True):
            libc.umount2(point.encode(), _MNT_DETACH)
