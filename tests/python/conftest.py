"""Fixtures for every test under tests/python; the machinery is in strata_harness."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from strata_harness.dockerd import Dockerd
from strata_harness.podman import Podman
from strata_harness.registry import Registry, start_registry
from strata_harness.scratch import ScratchRepo
from strata_harness.tempdirs import SessionDir, remove_abandoned

_session_dir: SessionDir | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """--basetemp in a fresh directory removed at exit, rather than pytest's retained
    /tmp/pytest-of-$USER runs: scratch Pants repos and image stores are large."""
    global _session_dir
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        remove_abandoned()
        _session_dir = SessionDir()
        config.option.basetemp = str(_session_dir.path / "tmp")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_dir is not None:
        _session_dir.remove()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A docker-registry on 127.0.0.1 (no auth) for the whole session."""
    with start_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """Podman with private storage for the whole session (see strata_harness.podman)."""
    instance = Podman(tmp_path_factory.mktemp("podman"))
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A private dockerd for the whole session (see strata_harness.dockerd); call it to run
    its `docker` client."""
    with Dockerd(tmp_path_factory.mktemp("dockerd")) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def run_image(podman: Podman) -> Callable[..., tuple[int, str]]:
    """`run_image(path, args=(), *, user=None, entrypoint=None, fmt="docker-archive")` ->
    (exit code, stdout)."""
    return podman.run_image


@pytest.fixture
def scratch_repo(tmp_path: Path) -> ScratchRepo:
    """A fresh scratch Pants repo with the Strata plugin; write files, then `.run(...)`."""
    return ScratchRepo(tmp_path / "repo")
