"""Layers are shared between machines through a real REAPI cache (BuildGrid): checkout A builds
and writes the cache; checkout B, at another path with an empty local store of its own, builds
the same sources reading it, runs no layer process and gets a byte-identical image."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from strata_harness import ScratchRepo, ran_processes, require_tool
from strata_harness.buildgrid import BuildGrid, start_buildgrid

BUILD = """
    file(name="busybox", source="bin/busybox")
    files(name="etc", sources=["etc/*.txt"], dependencies=[":busybox"])

    oci_image(
        name="image",
        dependencies=[":etc"],
        symlinks={"/bin/sh": "/bin/busybox"},
        directories={"/tmp": "1777"},
        entrypoint=["/bin/busybox", "cat", "/etc/greeting.txt"],
    )
"""
LAYERS = [
    "Building //:image: customisation layer",
    "Building //:image: layer 1 (//:busybox)",
    "Building //:image: layer 2 (//:etc)",
]
# `--stats-log` ends a run with "Counters:" followed by one "  name: value" line per counter.
_COUNTER = re.compile(r"^\s+([a-z_]+): (\d+)$", re.MULTILINE)


@pytest.fixture
def buildgrid(tmp_path: Path):
    with start_buildgrid(tmp_path / "buildgrid") as server:
        yield server


def counters(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    text = result.stderr
    start = text.rfind("Counters:")
    assert start != -1, f"no --stats-log counters in:\n{text[-4000:]}"
    return {name: int(value) for name, value in _COUNTER.findall(text[start:])}


def _report(what: str, result: subprocess.CompletedProcess[str], stats: dict[str, int]) -> None:
    """Figures for --test-output=all: what ran locally and the remote cache counters."""
    remote = {k: v for k, v in sorted(stats.items()) if k.startswith(("remote_", "local_cache"))}
    print(f"{what}: ran locally {ran_processes(result)}; {remote}")


def checkout(root: Path) -> ScratchRepo:
    repo = ScratchRepo(root, isolated_cache=True)
    repo.write(
        {
            "bin/busybox": Path(require_tool("busybox")).read_bytes(),
            "etc/greeting.txt": "hello\n",
            "etc/motd.txt": "be nice\n",
            "BUILD": BUILD,
        }
    )
    (repo.root / "bin/busybox").chmod(0o755)
    return repo


def dist_digests(repo: ScratchRepo) -> dict[str, str]:
    dist = repo.root / "dist"
    return {
        str(p.relative_to(dist)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(dist.rglob("*"))
        if p.is_file()
    }


def package(
    repo: ScratchRepo, server: BuildGrid, *, write: bool
) -> subprocess.CompletedProcess[str]:
    result = repo.run(
        *server.pants_args(read=True, write=write), "--stats-log", "package", "//:image"
    )
    # A broken cache must not pass as "nothing cached": Pants logs every remote error here.
    assert "Failed to read from remote cache" not in result.stderr, result.stderr[-8000:]
    assert "Failed to write to remote cache" not in result.stderr, result.stderr[-8000:]
    return result


def test_a_second_checkout_gets_every_layer_from_the_remote_cache(
    tmp_path: Path, buildgrid: BuildGrid
) -> None:
    a = checkout(tmp_path / "a" / "repo")
    first = package(a, buildgrid, write=True)
    # Its store is its own and the cache is new: every layer ran in A, and went up.
    assert sorted(ran_processes(first, "Building ")) == LAYERS
    assert ran_processes(first, "Assembling ") == ["Assembling //:image"]
    a_counters = counters(first)
    assert a_counters.get("remote_cache_requests_cached", 0) == 0, a_counters
    assert a_counters.get("remote_cache_write_successes", 0) >= len(LAYERS) + 1, a_counters

    b = checkout(tmp_path / "b" / "deeper" / "checkout")
    second = package(b, buildgrid, write=False)
    ran = ran_processes(second)
    b_counters = counters(second)
    # Nothing built locally in B: layers and assembly all came from BuildGrid.
    assert ran_processes(second, "Building ") == [], (ran, b_counters)
    assert ran_processes(second, "Assembling ") == [], (ran, b_counters)
    assert b_counters.get("remote_cache_requests_cached", 0) >= len(LAYERS) + 1, b_counters
    assert b_counters.get("remote_cache_requests_uncached", 0) == 0, (ran, b_counters)
    assert dist_digests(b) == dist_digests(a)
    _report("A (cold, read+write)", first, a_counters)
    _report("B (fresh checkout, read)", second, b_counters)

    b.write({"etc/motd.txt": "be nicer\n"})
    changed = package(b, buildgrid, write=False)
    assert ran_processes(changed, "Building ") == ["Building //:image: layer 2 (//:etc)"]
    assert ran_processes(changed, "Assembling ") == ["Assembling //:image"]
    _report("B (etc/motd.txt changed, read)", changed, counters(changed))
