"""`pants run` on an `oci_image`: it loads the image into podman or docker and runs it (arguments,
`[strata].run_args`, exit code, no container left, even after Ctrl-C); `--strata-load-only` only
loads it; the stdout loader's stream is the packaged docker-archive, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pytest

from strata_harness import Dockerd, Podman, ScratchRepo, assert_valid_image, require_tool

GREETING = "hello from strata\n"
# Greets its arguments, then exits with $CODE.
GREET = 'echo "hello $*"; exit "${CODE:-0}"'


def pants_command(
    repo: ScratchRepo, *args: str, env: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """ScratchRepo.run's command line and environment, plus `env`, with stdout as bytes:
    ScratchRepo.run decodes stdout and takes no environment, but the stream is binary, and
    podman finds its storage through the environment, which `run` passes on to the loader."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": os.path.expanduser("~"),
        "LANG": "C.UTF-8",
        "NO_SCIE_WARNING": "1",
        "STRATA_ROOT": str(repo.strata_root),
        **({"CI": os.environ["CI"]} if "CI" in os.environ else {}),
    }
    cmd = [str(repo.pants), "--no-pantsd", "--no-pantsrc", "--no-watch-filesystem", *args]
    return cmd, {**base, **(env or {})}


def pants(
    repo: ScratchRepo, *args: str, env: Mapping[str, str] | None = None, exit_code: int = 0
) -> subprocess.CompletedProcess[bytes]:
    """Runs ./pants ARGS (see pants_command); exiting otherwise than `exit_code` fails."""
    cmd, full_env = pants_command(repo, *args, env=env)
    proc = subprocess.run(
        cmd, cwd=repo.root, env=full_env, stdin=subprocess.DEVNULL, capture_output=True
    )
    assert proc.returncode == exit_code, (
        f"`{' '.join(cmd[1:])}` exited {proc.returncode}:\n{proc.stderr.decode()[-20000:]}"
    )
    return proc


@dataclass(frozen=True)
class Streamed:
    repo: ScratchRepo
    stream: bytes  # what `run` wrote to stdout
    package: Path  # what `package` wrote


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Streamed:
    repo = ScratchRepo(tmp_path_factory.mktemp("run") / "repo")
    repo.write(
        {
            "bin/busybox": Path(require_tool("busybox")).read_bytes(),
            "etc/greeting.txt": GREETING,
            "BUILD": """
                file(name="busybox", source="bin/busybox")
                file(name="greeting", source="etc/greeting.txt", dependencies=[":busybox"])
                oci_image(
                    name="image",
                    dependencies=[":greeting"],
                    symlinks={"/bin/sh": "/bin/busybox"},
                    entrypoint=["/bin/busybox", "cat", "/etc/greeting.txt"],
                )
                oci_image(
                    name="greet",
                    dependencies=[":busybox"],
                    entrypoint=["/bin/busybox", "sh", "-c", %r, "greet"],
                )
                oci_image(
                    name="sleeper",
                    dependencies=[":busybox"],
                    entrypoint=["/bin/busybox", "sleep", "600"],
                )
                oci_image(
                    name="gzip-layout",
                    dependencies=[":greeting"],
                    output_format="oci",
                    compression="gzip",
                )
            """ % GREET,
        }
    )
    (repo.root / "bin/busybox").chmod(0o755)
    # One Pants run for both goals: `package` logs to stderr only, so stdout is the stream.
    proc = pants(repo, "--strata-loader=stdout", "package", "run", "//:image")
    return Streamed(repo, proc.stdout, repo.root / "dist/image.tar")


def test_stdout_loader_streams_exactly_the_packaged_docker_archive(
    streamed: Streamed, tmp_path: Path
) -> None:
    assert streamed.stream == streamed.package.read_bytes()
    captured = tmp_path / "streamed.tar"
    captured.write_bytes(streamed.stream)
    assert_valid_image(captured, "docker-archive")


def test_load_only_loads_the_image_into_podman_and_runs_nothing(
    streamed: Streamed, podman: Podman, tmp_path: Path
) -> None:
    with tarfile.open(streamed.package) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
    (repo_tag,) = manifest["RepoTags"]
    image_id = manifest["Config"][: -len(".json")]

    env = podman.loader_env(tmp_path / "containers.conf")
    proc = pants(
        streamed.repo, "--strata-loader=podman", "--strata-load-only", "run", "//:image", env=env
    )
    name = f"localhost/{repo_tag}"
    assert proc.stdout.decode() == f"Loaded image: {name}\n"
    assert podman("ps", "--all", "--quiet").stdout == b""
    inspect = podman("image", "inspect", "--format", "{{.Id}}", name)
    assert inspect.stdout.decode() == image_id + "\n"
    # run_image's options (see strata_harness.podman), for an image already in storage.
    run = podman("run", "--rm", "--pull=never", *podman.run_options(), name)
    assert run.stdout.decode() == GREETING


def _run_args(options: list[str]) -> str:
    """`--strata-run-args` for these options (a shell-split list option)."""
    return "--strata-run-args=" + " ".join(options)


def test_run_runs_the_image_in_podman_with_the_arguments_and_its_exit_code(
    streamed: Streamed, podman: Podman, tmp_path: Path
) -> None:
    env = podman.loader_env(tmp_path / "containers.conf")
    proc = pants(
        streamed.repo, "--strata-loader=podman", _run_args(podman.run_options()),
        "run", "//:greet", "--", "Ada", "Lovelace", env=env,
    )  # fmt: skip
    assert proc.stdout.decode() == "hello Ada Lovelace\n"
    assert "Loaded image: localhost/greet:" in proc.stderr.decode()
    # run_args reach `podman run`: $CODE becomes the exit code of the container and of Pants.
    proc = pants(
        streamed.repo, "--strata-loader=podman", _run_args([*podman.run_options(), "--env=CODE=3"]),
        "run", "//:greet", "--", "Grace", env=env, exit_code=3,
    )  # fmt: skip
    assert proc.stdout.decode() == "hello Grace\n"
    assert podman("ps", "--all", "--quiet").stdout == b""


def test_ctrl_c_stops_the_container_and_leaves_none_behind(
    streamed: Streamed, podman: Podman, tmp_path: Path
) -> None:
    """The sleeper's PID 1 ignores SIGINT, so only the run script's removal can stop it."""
    env = podman.loader_env(tmp_path / "containers.conf")
    cmd, full_env = pants_command(
        streamed.repo, "--strata-loader=podman", _run_args(podman.run_options()), "run",
        "//:sleeper", env=env,
    )  # fmt: skip
    run = subprocess.Popen(
        cmd, cwd=streamed.repo.root, env=full_env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not podman("ps", "--quiet").stdout:
            assert run.poll() is None, run.communicate()[1].decode()[-5000:]
            assert time.monotonic() < deadline, "the container never started"
            time.sleep(1)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0, stderr.decode()[-5000:]
    assert podman("ps", "--all", "--quiet").stdout == b"", stderr.decode()[-5000:]


def test_run_runs_the_image_in_docker(streamed: Streamed, dockerd: Dockerd) -> None:
    proc = pants(
        streamed.repo, "--strata-loader=docker", _run_args(["--network=none", "--env=CODE=3"]),
        "run", "//:greet", "--", "Ada", env=dockerd.env, exit_code=3,
    )  # fmt: skip
    assert proc.stdout.decode() == "hello Ada\n"
    assert "Loaded image: greet:" in proc.stderr.decode()
    assert dockerd("ps", "--all", "--quiet").stdout == b""


def test_an_image_packaged_with_compressed_layers_streams_plain_ones(
    streamed: Streamed, tmp_path: Path
) -> None:
    """`docker load` reads only tar layers: `run` builds them so whatever `package` writes."""
    proc = pants(streamed.repo, "--strata-loader=stdout", "run", "//:gzip-layout")
    captured = tmp_path / "streamed.tar"
    captured.write_bytes(proc.stdout)
    assert_valid_image(captured, "docker-archive")
