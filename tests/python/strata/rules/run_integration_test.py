"""`pants run` on an `oci_image`: the stream is the packaged docker-archive, byte for byte, and the
podman loader puts the image where podman runs it."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pytest

from strata_harness import Podman, ScratchRepo, assert_valid_image, require_tool

GREETING = "hello from strata\n"


def pants(
    repo: ScratchRepo, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
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
    proc = subprocess.run(
        cmd, cwd=repo.root, env={**base, **(env or {})}, stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    assert proc.returncode == 0, (
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
                    name="gzip-layout",
                    dependencies=[":greeting"],
                    output_format="oci",
                    compression="gzip",
                )
            """,
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


def test_podman_loader_loads_the_image_and_it_runs(
    streamed: Streamed, podman: Podman, tmp_path: Path
) -> None:
    with tarfile.open(streamed.package) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
    (repo_tag,) = manifest["RepoTags"]
    image_id = manifest["Config"][: -len(".json")]

    env = podman.loader_env(tmp_path / "containers.conf")
    proc = pants(streamed.repo, "--strata-loader=podman", "run", "//:image", env=env)
    name = f"localhost/{repo_tag}"
    assert proc.stdout.decode() == f"Loaded image: {name}\n"
    inspect = podman("image", "inspect", "--format", "{{.Id}}", name)
    assert inspect.stdout.decode() == image_id + "\n"
    # run_image's options (see strata_harness.podman), for an image already in storage.
    run = podman(
        "run", "--rm", "--pull=never", "--network=none",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
        "--cgroups=no-conmon", "--cgroup-parent", podman.cgroup_parent, name,
    )  # fmt: skip
    assert run.stdout.decode() == GREETING


def test_an_image_packaged_with_compressed_layers_streams_plain_ones(
    streamed: Streamed, tmp_path: Path
) -> None:
    """`docker load` reads only tar layers: `run` builds them so whatever `package` writes."""
    proc = pants(streamed.repo, "--strata-loader=stdout", "run", "//:gzip-layout")
    captured = tmp_path / "streamed.tar"
    captured.write_bytes(proc.stdout)
    assert_valid_image(captured, "docker-archive")
