"""`oci_pull` and `pants publish` on a scratch repo through a fault-injecting proxy in front of
a real registry: connections dropped mid-transfer are retried, each retry is shown to the user,
and the images come out whole; a registry that trickles fails the pull under the
`[strata].registry_stall_*` rule, naming the registry, the blob and the rule.

One module fixture makes the Pants runs (~15 s each).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import (
    Fault,
    FaultProxy,
    Registry,
    ScratchRepo,
    assert_valid_image,
    make_busybox_image,
    pushes,
    require_tool,
    run_tool,
)

BUILD = """
    file(name="note", source="etc/note.txt")
    oci_pull(name="base", registry="{proxy}", repository="strata/flaky-base", digest="{digest}")
    oci_image(
        name="on_pull",
        base=":base",
        dependencies=[":note"],
        entrypoint=["/bin/busybox", "cat", "/etc/note.txt"],
    )
    oci_pull(name="slow_base", registry="{proxy}", repository="strata/slow-base", digest="{digest}")
    oci_image(name="on_slow_pull", base=":slow_base", dependencies=[":note"])
    oci_image(
        name="app",
        repository="strata/flaky-push",
        base=":base",
        dependencies=[":note"],
        entrypoint=["/bin/busybox", "cat", "/etc/note.txt"],
        registries=["{proxy}"],
        image_tags=["v1"],
    )
"""
NOTE = "pulled and pushed through a flaky connection\n"


@dataclass(frozen=True)
class Runs:
    package: subprocess.CompletedProcess[str]
    package_again: subprocess.CompletedProcess[str]  # the pull a cache hit
    publish: subprocess.CompletedProcess[str]
    pull_faults: list[Fault]
    push_faults: list[Fault]
    dist: Path
    slow_pull: subprocess.CompletedProcess[str]  # through a trickle, with a 1 s stall rule
    slow_layer: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Runs]:
    base = tmp_path_factory.mktemp("faults")
    make_busybox_image(base / "base.tar", files={"etc/base.txt": b"the base\n"})
    registry.push(base / "base.tar", "strata/flaky-base:1")
    registry.push(base / "base.tar", "strata/slow-base:1")
    digest = registry.inspect("strata/flaky-base:1")["Digest"]
    layer = registry.inspect("strata/flaky-base:1", raw=True)["layers"][0]
    with FaultProxy(registry.host) as proxy:
        repo = ScratchRepo(base / "repo")
        repo.write({"etc/note.txt": NOTE, "BUILD": BUILD.format(proxy=proxy.host, digest=digest)})
        pull_faults = [
            proxy.add(Fault("cut", "GET", f"/manifests/{digest}", after=50)),
            proxy.add(
                Fault("cut", "GET", f"/blobs/{layer['digest']}", after=layer["size"] // 2, times=2)
            ),
        ]
        package = repo.run("package", "//:on_pull")
        package_again = repo.run("package", "//:on_pull")
        push = "/v2/strata/flaky-push"
        push_faults = [
            proxy.add(Fault("cut_request", "PUT", f"{push}/blobs/uploads/", after=10)),
            proxy.add(Fault("no_response", "PUT", f"{push}/manifests/sha256:")),
            proxy.add(Fault("no_response", "PUT", f"{push}/manifests/v1")),
        ]
        publish = repo.run("publish", "//:app")
        # 20 bytes a second, where the rule asks for 1000: without it, some 14 h.
        proxy.add(Fault("trickle", "GET", f"/slow-base/blobs/{layer['digest']}", 100, None))
        stall = ["--strata-registry-stall-bytes=1000", "--strata-registry-stall-seconds=1"]
        slow_pull = repo.run(*stall, "package", "//:on_slow_pull", check=False, timeout=600)
        yield Runs(
            package, package_again, publish, pull_faults, push_faults, repo.root / "dist",
            slow_pull, layer["digest"],
        )  # fmt: skip


def retries(output: str, repository: str) -> list[str]:
    """The registry client's retry warnings about `repository` in a Pants run's output."""
    return [
        line for line in output.splitlines() if "trying again" in line and repository in line
    ]


def test_pull_through_dropped_connections(runs: Runs, run_image) -> None:
    assert [f.applied for f in runs.pull_faults] == [1, 2]
    shown = retries(runs.package.stderr, "/strata/flaky-base")
    assert len(shown) == 3, runs.package.stderr
    assert sum("resolving " in line for line in shown) == 1
    assert sum("fetching blob " in line for line in shown) == 2
    # The pull is cached now: its retries are history, not news.
    assert retries(runs.package_again.stderr, "/strata/flaky-base") == []
    image = runs.dist / "on_pull.tar"
    assert_valid_image(image, "docker-archive")
    assert run_image(image) == (0, NOTE)


def test_publish_through_dropped_connections(
    runs: Runs, registry: Registry, run_image, tmp_path: Path
) -> None:
    assert [f.applied for f in runs.push_faults] == [1, 1, 1]
    shown = retries(runs.publish.stderr, "/strata/flaky-push")
    assert len(shown) == 3, runs.publish.stderr
    assert sum("uploading blob " in line for line in shown) == 1
    assert sum("pushing manifest " in line for line in shown) == 2
    (push,) = pushes(runs.publish.stdout).values()
    assert registry.inspect("strata/flaky-push:v1")["Digest"] == push.tags["v1"]
    pulled = tmp_path / "pulled.tar"
    run_tool(
        [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
         registry.ref("strata/flaky-push:v1"), f"docker-archive:{pulled}"]
    )  # fmt: skip
    assert_valid_image(pulled, "docker-archive")
    assert run_image(pulled) == (0, NOTE)


def test_a_pull_from_a_registry_that_trickles_fails_naming_the_stall(runs: Runs) -> None:
    err = runs.slow_pull.stderr
    assert runs.slow_pull.returncode != 0
    assert len(retries(err, "/strata/slow-base")) == 4, err
    host = err.split("strata.core pull: error: ", 1)[1].split("/", 1)[0]
    assert (
        f"strata.core pull: error: {host}/strata/slow-base@sha256:"
    ) in err
    assert (
        f"fetching blob {runs.slow_layer} from {host}/strata/slow-base: failed after 5 "
        "attempts: the registry stalled: fewer than 1000 bytes arrived in 1s (the stall rule"
    ) in " ".join(err.split())
    assert not (runs.dist / "on_slow_pull.tar").exists()
