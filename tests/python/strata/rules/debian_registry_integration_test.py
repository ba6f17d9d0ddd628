"""`debian_registry` as a user runs it, in a scratch repo: `pants package` writes the same PEX
every time, which serves from outside the repo and stops cleanly on SIGTERM; `pants run`
refuses to serve through pantsd and serves without it (`--concurrent`) until Ctrl-C, while other
`pants` commands run. What the server serves is the core's tests' business."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from strata.core.debian.index import DEFAULT_KEYRING
from strata.core.debian_registry.config import RegistryConfig
from strata_harness.scratch import ScratchRepo, ran_processes
from strata_harness.servers import free_port

BUILD = """
debian_registry(
    name="registry",
    meta_packages={"shell": ["bash", "coreutils"]},
    architectures=["amd64", "arm64"],
)
"""
BAD_BUILD = 'debian_registry(name="registry", compression="zstd")\n'
PEX = "dist/app/registry.pex"
START_TIMEOUT = 300.0  # a `pants run` without pantsd starts Pants from scratch
STOP_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchRepo]:
    """A scratch repo with the demo's registry packaged, through its pantsd."""
    scratch = ScratchRepo(tmp_path_factory.mktemp("registry") / "repo", files={"app/BUILD": BUILD})
    try:
        scratch.run("package", "app:registry", pantsd=True)
        yield scratch
    finally:
        scratch.stop_pantsd()


def serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_serving(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not serves(port):
        assert process.poll() is None, f"exited {process.returncode}:\n{log.read_text()[-8000:]}"
        assert time.monotonic() < deadline, f"not serving /v2/:\n{log.read_text()[-8000:]}"
        time.sleep(0.5)


def processes_mentioning(text: str) -> list[int]:
    """The processes whose command line holds `text` (a test's own temporary path)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue  # gone meanwhile
    return found


def assert_other_pants_commands_run(repo: ScratchRepo) -> None:
    listed = repo.run("list", "::", pantsd=True, timeout=120)
    assert "app:registry" in listed.stdout.split()
    assert "Another pants invocation is running" not in listed.stderr


def baked_config(pex: Path) -> RegistryConfig:
    """The configuration the PEX's generated entry module holds: `CONFIG = json.loads(...)`."""
    with zipfile.ZipFile(pex) as zipapp:
        module = ast.parse(zipapp.read("strata_debian_registry.py"))
    (loads,) = (node.value for node in module.body
                if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "CONFIG")
    return RegistryConfig.from_json(json.loads(ast.literal_eval(loads.args[0])))


def test_package_writes_the_same_executable_pex_every_time(repo: ScratchRepo) -> None:
    pex = repo.root / PEX
    first = pex.read_bytes()
    assert first.startswith(b"#!/usr/bin/env python3\n") and os.access(pex, os.X_OK)
    assert baked_config(pex) == RegistryConfig(
        target="app:registry", suite="bookworm", architectures=("amd64", "arm64"),
        meta_packages={"shell": ("bash", "coreutils")}, max_layers=100, compression="gzip",
        created="1970-01-01T00:00:01Z", keyring=DEFAULT_KEYRING, mirror="")
    again = repo.run("--no-local-cache", "package", "app:registry")  # another process, no cache
    assert ran_processes(again, "Building the server of app:registry")
    assert pex.read_bytes() == first


def test_a_bad_field_fails_package_naming_it_and_writes_nothing(repo: ScratchRepo) -> None:
    repo.write({"bad/BUILD": BAD_BUILD})
    try:
        repo.assert_package_fails(
            "bad:registry", "the 'compression' field in target bad:registry must be one of")
    finally:
        (repo.root / "bad/BUILD").unlink()  # the other tests list every target


@pytest.mark.parametrize("python", [None, "/usr/bin/python3.9"])
def test_the_pex_serves_from_outside_the_repo_until_sigterm(
    repo: ScratchRepo, tmp_path: Path, python: str | None
) -> None:
    """Run as an executable (the shebang's `python3`: Debian's 3.11 on the fixed PATH), and by
    the oldest CPython the core supports."""
    port, cache, log = free_port(), tmp_path / "cache", tmp_path / "registry.log"
    argv = [*([python] if python else []), str(repo.root / PEX),
            "--listen", f"127.0.0.1:{port}", "--cache-dir", str(cache)]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PEX_ROOT": str(tmp_path / "pex_root")}
    with open(log, "wb") as out:
        server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_serving(port, server, log)
        assert_other_pants_commands_run(repo)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=STOP_TIMEOUT) == 0, log.read_text()[-8000:]
        assert processes_mentioning(str(cache)) == []
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


def test_run_refuses_pantsd_and_serves_without_it_until_ctrl_c(
    repo: ScratchRepo, tmp_path: Path
) -> None:
    port, cache, log = free_port(), tmp_path / "cache", tmp_path / "run.log"
    server_args = ("--", "--listen", f"127.0.0.1:{port}", "--cache-dir", str(cache))
    refused = repo.run("run", "app:registry", *server_args, check=False, pantsd=True)
    assert refused.returncode != 0
    assert (
        "`pants run app:registry` would hold pantsd while the registry serves, blocking every "
        "other `pants` command in this repository. Run it without pantsd: `pants --concurrent run"
    ) in " ".join(refused.stderr.split())
    assert not serves(port)

    # As `./pants --concurrent run` runs it: the native client, which leaves pantsd alone.
    cmd, env = repo.command("--concurrent", "run", "app:registry", *server_args, pantsd=True)
    with open(log, "wb") as out:
        # A session of its own, as a terminal's foreground job is, for Ctrl-C's SIGINT.
        pants = subprocess.Popen(cmd, cwd=repo.root, env=env, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_serving(port, pants, log)
        assert_other_pants_commands_run(repo)
        os.killpg(pants.pid, signal.SIGINT)  # Ctrl-C; Pants passes it on to the server
        pants.wait(timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while processes_mentioning(str(cache)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_mentioning(str(cache)) == [], log.read_text()[-8000:]
        assert not serves(port)
    finally:
        for pid in [pants.pid, *processes_mentioning(str(cache))]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
