"""Layers are shared between machines through a real REAPI cache: BuildGrid, set up as README.md's
"Sharing layers between machines" section says. Checkout A builds the demo image (46 layers) and
writes the cache; checkout B, at another path with an empty local store of its own, builds the
same sources reading it, runs no layer process and gets a byte-identical image."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from strata_harness import ScratchRepo, assert_valid_image, counters, ran_processes
from strata_harness.buildgrid import BuildGrid, start_buildgrid
from strata_harness.demo import demo_repo

LAYER = "Building app:image: "
ASSEMBLY = "Assembling app:image"
# A writer also runs each blob's emit Process (its bytes, copied from the blob store), so that
# a reader with an empty blob store gets them from the cache.
EMITS = ": its bytes"


@pytest.fixture
def buildgrid(tmp_path: Path):
    with start_buildgrid(tmp_path / "buildgrid") as server:
        yield server


def remote_counters(stats: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in sorted(stats.items()) if k.startswith("remote_")}


def package(
    what: str, repo: ScratchRepo, server: BuildGrid, *, write: bool
) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    start = time.monotonic()
    result = repo.run(
        *server.pants_args(read=True, write=write), "--stats-log", "package", "app:image"
    )
    took = time.monotonic() - start
    stats = counters(result)
    # Figures for the test's output: time, what ran locally and the remote cache counters.
    layers = ran_processes(result, LAYER)
    print(f"{what}, {took:.1f} s: {len(layers)} layer processes ran {layers[:3]}...")
    print(f"  {remote_counters(stats)}")
    # A broken cache must not pass as "nothing cached": Pants logs every remote error here.
    assert "Failed to read from remote cache" not in result.stderr, result.stderr[-8000:]
    assert "Failed to write to remote cache" not in result.stderr, result.stderr[-8000:]
    assert stats.get("remote_cache_read_errors", 0) == 0, remote_counters(stats)
    assert stats.get("remote_store_missing_digest", 0) == 0, remote_counters(stats)
    return result, stats


def test_a_second_checkout_gets_every_layer_of_the_demo_image_from_the_remote_cache(
    tmp_path: Path, buildgrid: BuildGrid, run_image
) -> None:
    a = demo_repo(tmp_path / "a" / "repo", isolated_cache=True)
    first, a_stats = package("A (cold, read+write)", a, buildgrid, write=True)
    # Its store is its own and the cache is new: every layer ran in A...
    ran = ran_processes(first, LAYER)
    layers = [p for p in ran if not p.endswith(EMITS)]
    assert len(layers) >= 40, layers
    assert sorted(p for p in ran if p.endswith(EMITS)) == sorted(p + EMITS for p in layers)
    assert sorted(ran_processes(first, ASSEMBLY)) == [ASSEMBLY, ASSEMBLY + EMITS]
    # ...and every result it ran went up: none failed, none was dropped at the end of the run
    # (a dropped write counts as an attempt, neither a success nor an error).
    assert a_stats.get("remote_cache_requests_cached", 0) == 0, remote_counters(a_stats)
    assert a_stats.get("remote_cache_write_errors", 0) == 0, remote_counters(a_stats)
    assert (
        a_stats.get("remote_cache_write_successes", 0)
        == a_stats.get("remote_cache_write_attempts", 0)
        == a_stats.get("remote_cache_requests_uncached", 0)
        >= len(layers) + 1
    ), remote_counters(a_stats)

    b = demo_repo(tmp_path / "b" / "deeper" / "checkout", isolated_cache=True)
    assert not b.blob_store.exists()  # a blob store of its own, empty
    second, b_stats = package("B (fresh checkout, read)", b, buildgrid, write=False)
    fetched = sorted((b.blob_store / "sha256").iterdir())
    print(f"  B's blob store: {len(fetched)} blobs, {sum(p.stat().st_size for p in fetched)} "
          "bytes, each from the cache (its emit Process) and put back")
    # Nothing built locally in B: layers, their bytes and the assembly all came from BuildGrid
    # (no layer was built, none written again).
    ran = ran_processes(second)
    assert ran_processes(second, LAYER) == [], (ran, remote_counters(b_stats))
    assert ran_processes(second, ASSEMBLY) == [], (ran, remote_counters(b_stats))
    assert b_stats.get("remote_cache_requests_uncached", 0) == 0, (ran, remote_counters(b_stats))
    assert b_stats.get("remote_cache_requests_cached", 0) >= len(layers) + 1, b_stats
    assert b.dist_digests() == a.dist_digests()
    assert (b.root / "dist/app/image.tar").resolve().is_relative_to(b.blob_store)
    image = b.root / "dist/app/image.tar"
    assert_valid_image(image)
    assert run_image(image, ["Ada"]) == (0, "Hello from Strata, Ada! (layers dated 1970-01-01)\n")

    # A code change in B: its layer is built here, every other one still comes from the cache.
    main = b.root / "app/hello/main.py"
    main.write_text(main.read_text().replace("Hello from Strata", f"Hi ({uuid.uuid4()})"))
    changed, _ = package("B (app/hello/main.py changed, read)", b, buildgrid, write=False)
    rebuilt = ran_processes(changed, LAYER)
    assert len(rebuilt) == 1 and rebuilt[0].endswith("(app:hello#sources)"), rebuilt
    assert ran_processes(changed, ASSEMBLY) == [ASSEMBLY]
