"""Images built by remote execution on a real REAPI worker: buildbox-casd running each action
with buildbox-run in a bubblewrap sandbox whose `/` is the action's input root, set up as
README.md's "Building with remote execution" says. Each remote build uses a checkout with an
empty local store of its own, so every Process either runs on the worker or, for those that
need this machine, here; `--stats-log` tells which. Its dist/ must be byte for byte a local
build's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import (
    ScratchRepo,
    assert_valid_image,
    counters,
    ran_processes,
    require_tool,
)
from strata_harness.buildbox import Buildbox, start_buildbox
from strata_harness.demo import demo_repo

BUILD = """
    file(name="busybox", source="bin/busybox")
    file(name="shared", source="etc/shared.txt")
    file(name="a_file", source="etc/a.txt")
    file(name="arm64_file", source="etc/arm64.txt")

    oci_image(
        name="a",
        dependencies=[":busybox", ":shared", ":a_file"],
        repository="strata/remote-a",
        tag="v1",
        entrypoint=["/bin/busybox", "cat", "/etc/a.txt"],
    )
    oci_image(  # on `a`: its layers are a's layer Processes' outputs
        name="on_a",
        base=":a",
        dependencies=[":shared"],
        repository="strata/remote-on-a",
        tag="v1",
        output_format="oci",
        compression="gzip",
    )
    oci_image(
        name="arm64", dependencies=[":shared", ":arm64_file"], architecture="arm64", variant="8"
    )
    oci_image_index(name="index", images=[":a", ":arm64"], tag="v1")
    oci_image_index(
        name="index_archive", images=[":a", ":arm64"], tag="v1", output_format="oci-archive"
    )
    oci_image_bundle(name="bundle", images=[":a", ":on_a"])
    # Only this one through environments: its environment is the worker, the others' this
    # machine's.
    remote_environment(name="worker")
    oci_image(
        name="a_on_the_worker",
        environment="worker",
        dependencies=[":busybox", ":shared", ":a_file"],
        repository="strata/remote-a",
        tag="v1",
        entrypoint=["/bin/busybox", "cat", "/etc/a.txt"],
    )
    oci_image(
        name="commands",
        dependencies=[":busybox", ":shared"],
        repository="strata/remote-commands",
        tag="v1",
        extra_commands="mkdir -p srv && echo made here > srv/copy.txt",
        entrypoint=["/bin/busybox", "cat", "/srv/copy.txt"],
    )
"""
TARGETS = ("//:a", "//:on_a", "//:arm64", "//:index", "//:index_archive", "//:bundle")
DEMO_LAYER = "Building app:image: "


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildbox]:
    with start_buildbox(tmp_path_factory.mktemp("buildbox")) as server:
        yield server


def remote_package(
    repo: ScratchRepo, worker: Buildbox, *targets: str, network: bool = False, names: str = ""
) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    result = repo.run(
        *worker.pants_args(network=network), *([names] if names else []), "--stats-log",
        "package", *targets,
    )
    stats = counters(result)
    print({k: v for k, v in stats.items() if "execution" in k})
    assert stats["remote_execution_errors"] == 0, (stats, worker.log()[-4000:])
    assert stats["remote_execution_success"] == stats["remote_execution_requests"], stats
    return result, stats


def small_repo(root: Path, *, isolated_cache: bool = False) -> ScratchRepo:
    repo = ScratchRepo(root, isolated_cache=isolated_cache)
    repo.write(
        {
            "bin/busybox": Path(require_tool("busybox")).read_bytes(),
            "etc/shared.txt": "in every image\n",
            "etc/a.txt": "only in a\n",
            "etc/arm64.txt": "only on arm64\n",
            "BUILD": BUILD,
        }
    )
    (repo.root / "bin/busybox").chmod(0o755)
    return repo


def test_the_demo_image_builds_on_the_worker_byte_for_byte_as_here(
    tmp_path: Path, worker: Buildbox, run_image
) -> None:
    local = demo_repo(tmp_path / "local")
    local.run("package", "app:image")
    # network=on: Pants resolves the venv's distributions with pip, on the worker too.
    remote = demo_repo(tmp_path / "remote" / "checkout", isolated_cache=True)
    result, stats = remote_package(remote, worker, "app:image", network=True)
    layers = ran_processes(result, DEMO_LAYER)
    assert len(layers) >= 40, layers
    # Every Process ran on the worker, none here: the layers, the assembly, the SBOM's
    # descriptions, Pants' own resolves and binary lookups.
    assert stats["local_execution_requests"] == 0, stats
    assert stats["remote_execution_requests"] >= len(layers) + 1, stats
    # The worker has no blob store: the layers' bytes came back as outputs, none was put here.
    assert not remote.blob_store.exists() or not any(remote.blob_store.rglob("sha256/*"))
    assert remote.dist_digests() == local.dist_digests()
    image = remote.root / "dist/app/image.tar"
    assert not image.is_symlink()  # a file: the worker wrote it
    assert_valid_image(image)
    assert run_image(image, ["Ada"]) == (0, "Hello from Strata, Ada! (layers dated 1970-01-01)\n")


def test_an_image_on_a_base_an_index_and_a_bundle_build_on_the_worker(
    tmp_path: Path, worker: Buildbox, run_image
) -> None:
    local = small_repo(tmp_path / "local")
    local.run("package", *TARGETS)
    remote = small_repo(tmp_path / "remote", isolated_cache=True)
    result, stats = remote_package(remote, worker, *TARGETS)
    assert stats["local_execution_requests"] == 0, stats
    assert stats["remote_execution_requests"] >= 5, stats
    assert remote.dist_digests() == local.dist_digests()
    dist = remote.root / "dist"
    for image in ("a.tar", "on_a", "arm64.tar", "index", "index_archive.tar", "bundle.tar"):
        assert not (dist / image).is_symlink(), image
    for image in ("a.tar", "on_a", "arm64.tar", "index", "index_archive.tar"):
        assert_valid_image(dist / image)  # an index: its image for this machine's platform
    for tag in ("strata/remote-a:v1", "strata/remote-on-a:v1"):
        assert_valid_image(dist / "bundle.tar", "docker-archive", ref=tag)
    assert run_image(dist / "a.tar", []) == (0, "only in a\n")
    assert run_image(dist / "on_a", [], fmt="oci") == (0, "only in a\n")  # a's entrypoint


def test_build_time_commands_run_here_and_the_rest_on_the_worker(
    tmp_path: Path, worker: Buildbox, run_image
) -> None:
    local = small_repo(tmp_path / "local")
    local.run("package", "//:commands")
    remote = small_repo(tmp_path / "remote", isolated_cache=True)
    result, stats = remote_package(remote, worker, "//:commands")
    # The layer that runs the commands, and the lookups and fingerprints of the programs they
    # may call, ran here (`commands.NEEDS`); the other layers and the assembly on the worker.
    ran = ran_processes(result, "Building //:commands")
    assert any("customisation" in p for p in ran), ran
    assert stats["local_execution_requests"] >= 2, stats
    assert stats["remote_execution_requests"] >= 2, stats
    # Its blob is an output too, as every layer's under remote execution: the assembly reads
    # it on the worker.
    assert not remote.blob_store.exists() or not any(remote.blob_store.rglob("sha256/*"))
    assert remote.dist_digests() == local.dist_digests()
    image = remote.root / "dist/commands.tar"
    assert_valid_image(image)
    assert run_image(image, []) == (0, "made here\n")


def test_a_worker_without_network_is_named_as_what_the_venv_resolve_lacked(
    tmp_path: Path, worker: Buildbox
) -> None:
    """pip runs where the resolve runs: on a worker with no network it reaches no index, which
    the error says, rather than that the distribution has no wheel."""
    repo = demo_repo(tmp_path / "repo", isolated_cache=True)
    failed = repo.run(*worker.pants_args(network=False), "package", "app:image", check=False)
    assert failed.returncode != 0
    assert "Resolving the distributions of app:hello: pip reached no package index" in (
        failed.stderr
    ), failed.stderr[-6000:]
    assert "network=on" in failed.stderr
    assert "has no wheel" not in failed.stderr


def test_an_image_whose_environment_is_a_remote_environment_builds_on_the_worker(
    tmp_path: Path, worker: Buildbox, run_image
) -> None:
    """With `[environments-preview].names`, `--remote-execution` applies to the targets whose
    `environment` is a `remote_environment`: the same image built there and here is the same
    archive."""
    repo = small_repo(tmp_path / "repo", isolated_cache=True)
    names = "--environments-preview-names={'worker': '//:worker'}"
    remote, stats = remote_package(repo, worker, "//:a_on_the_worker", names=names)
    assert stats["local_execution_requests"] == 0, stats
    assert stats["remote_execution_requests"] >= 3, stats
    local = repo.run(names, "--stats-log", "package", "//:a")
    assert counters(local)["remote_execution_requests"] == 0
    dist = repo.root / "dist"
    archive = (dist / "a_on_the_worker.tar").read_bytes()
    assert archive == (dist / "a.tar").read_bytes()
    assert not (dist / "a_on_the_worker.tar").is_symlink() and (dist / "a.tar").is_symlink()
    assert_valid_image(dist / "a_on_the_worker.tar")
    assert run_image(dist / "a_on_the_worker.tar", []) == (0, "only in a\n")
