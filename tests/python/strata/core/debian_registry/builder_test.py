import threading

import pytest

from strata.core.build.blobstore import BlobStore
from strata.core.debian_registry import builder as builder_module
from strata.core.debian_registry.builder import BuiltImage, ImageBuilder, Once
from strata.core.debian_registry.config import RegistryConfig
from strata.core.debian_registry.names import parse_name
from strata.core.debian_registry.records import write_record
from strata.core.debian_registry.snapshot import Snapshot

WAIT = 10.0  # seconds: only ever reached when the code under test is wrong


@pytest.fixture
def waiters(monkeypatch):
    """How many callers are waiting for another's result: Once's futures, counted."""
    waiting = threading.Semaphore(0)

    class CountedFuture(builder_module.Future):
        def result(self, timeout=None):
            waiting.release()
            return super().result(timeout)

    monkeypatch.setattr(builder_module, "Future", CountedFuture)

    def wait_for(count: int) -> None:
        for _ in range(count):
            assert waiting.acquire(timeout=WAIT), "the other callers never waited"

    return wait_for


def run_concurrently(callers: int, call):
    """Each caller's outcome: ("ok", result) or ("error", exception)."""
    outcomes = [None] * callers

    def caller(i):
        try:
            outcomes[i] = ("ok", call())
        except Exception as e:
            outcomes[i] = ("error", e)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_concurrent_callers_of_one_key_run_the_job_once_and_share_its_result(waiters):
    once, runs, release = Once(), [], threading.Event()

    def job():
        runs.append(1)
        assert release.wait(WAIT)
        return "built"

    threads, outcomes = run_concurrently(5, lambda: once.run("image", job))
    waiters(4)  # every caller but the one running the job is waiting for it
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert outcomes == [("ok", "built")] * 5 and len(runs) == 1


def test_an_error_reaches_every_waiter(waiters):
    once, runs, release = Once(), [], threading.Event()

    def job():
        runs.append(1)
        assert release.wait(WAIT)
        raise RuntimeError("the mirror is down")

    threads, outcomes = run_concurrently(3, lambda: once.run("image", job))
    waiters(2)
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert [kind for kind, _ in outcomes] == ["error"] * 3 and len(runs) == 1
    assert all(str(error) == "the mirror is down" for _, error in outcomes)
    # Failures are not kept: the next caller runs the job again.
    assert once.run("image", lambda: "built") == "built"


def test_keys_are_independent():
    once, started, release = Once(), threading.Event(), threading.Event()

    def slow():
        started.set()
        assert release.wait(WAIT)
        return "a"

    threads, outcomes = run_concurrently(1, lambda: once.run("a", slow))
    assert started.wait(WAIT)
    other, other_outcome = run_concurrently(1, lambda: once.run("b", lambda: "b"))
    other[0].join(WAIT)
    assert other_outcome == [("ok", "b")]  # while "a" is still running
    release.set()
    threads[0].join(WAIT)
    assert outcomes == [("ok", "a")]


def test_a_finished_job_runs_again_when_asked_again():
    """Once shares a run in flight; what lasts is the builder's records."""
    once, runs = Once(), []
    once.run("image", lambda: runs.append(1))
    once.run("image", lambda: runs.append(1))
    assert len(runs) == 2


def registry_builder(tmp_path, architectures, built):
    """An ImageBuilder whose builds only record what they were asked."""
    config = RegistryConfig(target="app:registry", suite="bookworm",
                            architectures=architectures, meta_packages={}, max_layers=100,
                            compression="gzip", created="1970-01-01T00:00:01Z")
    snapshot = Snapshot("bookworm", "Sat, 07 Oct 2023 09:53:48 UTC", "ab" * 32, {})
    image_builder = ImageBuilder(config, snapshot, str(tmp_path), BlobStore(tmp_path / "blobs"),
                                 "http://mirror.invalid/debian", 1)

    def build(name, path):
        image = BuiltImage("sha256:" + f"{len(built):064x}", "sha256:" + "f" * 64)
        built.append((architectures, name))
        write_record(path, image._asdict())
        return image

    image_builder._build_image = build
    return image_builder, config


def test_an_image_built_once_is_served_from_its_record(tmp_path):
    built = []
    image_builder, config = registry_builder(tmp_path, ("amd64",), built)
    first = image_builder.image(parse_name("curl/libstdc_p_p6", config))
    again, _ = registry_builder(tmp_path, ("amd64",), built)  # a restart
    assert again.image(parse_name("libstdc_p_p6/curl", config)) == first and len(built) == 1


def test_an_image_of_other_architectures_is_another_image(tmp_path):
    """Configured again with another architecture, the registry must not serve the image it
    built for the first one alone: that name now means an index of both."""
    built = []
    amd64, config = registry_builder(tmp_path, ("amd64",), built)
    amd64.image(parse_name("curl", config))
    both, config = registry_builder(tmp_path, ("amd64", "arm64"), built)
    both.image(parse_name("curl", config))
    assert [arches for arches, _ in built] == [("amd64",), ("amd64", "arm64")]
