"""Rootful podman confined to one directory, set up for this kind of host (hybrid cgroups v1)."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from strata_harness.cgroups import remove_cgroup
from strata_harness.images import source_ref
from strata_harness.tools import require_tool, run_tool


class Podman:
    """podman whose every piece of state (storage, locks, events, runc state, CNI lock) lives
    under `root`, with containers in a cgroup of its own, so it never touches the host's storage
    and instances run side by side.

    Workarounds, each found by trying on Debian bookworm (podman 4.3, runc 1.1, cgroups v1):
    - runc, not crun: crun fails on this host's hybrid cgroup layout.
    - --cgroup-manager cgroupfs: there is no systemd. --cgroups=no-conmon plus a private
      --cgroup-parent, removed in close(): otherwise conmon's and the parent's cgroups are left
      behind under /sys/fs/cgroup/*/libpod_parent. (--cgroups=disabled is refused for runc.)
    - --ulimit nofile/nproc: runc cannot apply podman's default rlimits here ("error setting
      rlimit type 7: operation not permitted").
    - runc behind a wrapper script adding `--root`: runc's state would go to /run/runc. With
      `--runtime-flag root=...` instead, some runc calls still used /run/runc and containers
      were never deleted.
    - containers.conf `lock_type = "file"` (locks under --tmpdir): the default is one SHM
      segment, /dev/shm/libpod_lock, shared by every podman on the host.
    - --network-config-dir: CNI otherwise creates /etc/cni/net.d/cni.lock.
    - storage.conf of its own, so no host-wide storage options (e.g. additional image stores)
      apply; vfs rather than overlay (which also works here): no storage mounts that a killed
      test could leak, and test images are small enough for its copying.
    - images go into storage by `skopeo copy` to a name of our choosing: `podman load` names OCI
      layouts after their directory or ref.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.podman, self.skopeo = require_tool("podman"), require_tool("skopeo")
        runc = require_tool("runc")
        self.root = Path(root).absolute()
        for d in ("root", "runroot", "tmp", "bin", "net", "bigfiles"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.graphroot, self.runroot, self.tmpdir = (
            self.root / "root",
            self.root / "runroot",
            self.root / "tmp",
        )
        self.runtime = self.root / "bin" / "runc"
        self.runtime.write_text(
            f'#!/bin/sh\nexec {runc} --root {shlex.quote(str(self.root / "runc"))} "$@"\n'
        )
        self.runtime.chmod(0o755)
        (self.root / "containers.conf").write_text('[engine]\nlock_type = "file"\n')
        (self.root / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\n'
            f'graphroot = "{self.graphroot}"\nrunroot = "{self.runroot}"\n'
        )
        self.cgroup_parent = f"/strata-test-{secrets.token_hex(8)}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CONTAINERS_CONF": str(self.root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
            "TMPDIR": str(self.root / "bigfiles"),
        }
        self._ids = itertools.count()

    def command(self, *args: str) -> list[str]:
        """The full podman command line for `podman ARGS`."""
        return [
            self.podman,
            "--root", str(self.graphroot),
            "--runroot", str(self.runroot),
            "--tmpdir", str(self.tmpdir),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            "--network-config-dir", str(self.root / "net"),
            "--runtime", str(self.runtime),
            *args,
        ]  # fmt: skip

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        """Runs `podman ARGS`; a failure raises AssertionError with podman's stderr."""
        return run_tool(self.command(*args), env=self.env, timeout=timeout)

    def loader_env(self, conf: str | os.PathLike[str]) -> dict[str, str]:
        """The environment for a bare `podman load` or `podman run` in this storage (Strata's
        podman loader): `env`, with a containers.conf written at `conf` that also carries the
        settings command() passes as flags. Without them podman would keep state under
        /run/libpod, and it refuses a store whose recorded tmp dir differs from its own. A run
        also needs `run_options()`."""
        Path(conf).write_text(
            "[engine]\n"
            'lock_type = "file"\n'
            f'tmp_dir = "{self.tmpdir}"\n'
            'events_logger = "file"\n'
            'cgroup_manager = "cgroupfs"\n'
            'runtime = "runc"\n'
            "[engine.runtimes]\n"
            f'runc = ["{self.runtime}"]\n'
            "[network]\n"
            f'network_config_dir = "{self.root / "net"}"\n'
        )
        return {**self.env, "CONTAINERS_CONF": str(conf)}

    def run_options(self) -> list[str]:
        """The `podman run` options this host needs (see the class docstring), with no network."""
        return [
            "--network=none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--cgroups=no-conmon", "--cgroup-parent", self.cgroup_parent,
        ]  # fmt: skip

    def load(
        self, path: str | os.PathLike[str], fmt: str | None = None, ref: str | None = None
    ) -> str:
        """Copies an image on disk into this storage; returns the name to run it by."""
        name = f"localhost/strata-test/image-{next(self._ids)}:latest"
        dest = f"containers-storage:[vfs@{self.graphroot}+{self.runroot}]{name}"
        run_tool(
            [self.skopeo, "--insecure-policy", "copy", "--quiet", source_ref(path, fmt, ref), dest],
            env=self.env,
        )
        return name

    def run_image(
        self,
        path: str | os.PathLike[str],
        args: Sequence[str] = (),
        *,
        user: str | int | None = None,
        entrypoint: str | Sequence[str] | None = None,
        fmt: str | None = "docker-archive",
        ref: str | None = None,
        timeout: float = 300,
        read_only: bool = False,
    ) -> tuple[int, str]:
        """Loads and runs an image (no network, removed afterwards): (exit code, stdout).

        fmt=None detects the format. read_only: the root filesystem is read-only, as with
        Kubernetes' `readOnlyRootFilesystem` (and no tmpfs on /tmp: nothing may be written).
        podman's own stderr goes to the test's captured stderr.
        """
        image = self.load(path, fmt, ref)
        name = f"strata-run-{next(self._ids)}"
        options = ["--name", name, "--rm", "--pull=never", *self.run_options()]
        if user is not None:
            options += ["--user", str(user)]
        if read_only:
            options += ["--read-only", "--read-only-tmpfs=false"]
        if entrypoint is not None:
            options += [
                "--entrypoint",
                entrypoint if isinstance(entrypoint, str) else json.dumps(list(entrypoint)),
            ]
        try:
            proc = subprocess.run(
                self.command("run", *options, image, *args),
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            subprocess.run(
                self.command("rm", "--force", "--time", "0", name),
                env=self.env,
                capture_output=True,
            )
            raise
        sys.stderr.write(proc.stderr.decode(errors="replace"))
        return proc.returncode, proc.stdout.decode(errors="replace")

    def close(self) -> None:
        """Removes every container, then this instance's cgroups and directory."""
        subprocess.run(
            self.command("rm", "--all", "--force", "--time", "0"),
            env=self.env,
            capture_output=True,
            timeout=120,
        )
        remove_cgroup(self.cgroup_parent)
        shutil.rmtree(self.root)
