"""Strata installed from its wheel (`[GLOBAL].plugins`), as in anyone's Pants repo: a consumer
repo with no Strata source on any of its paths builds the demo image, runs it and publishes it,
and every Process it runs is the one the plugin's source tree runs, byte for byte.

The wheel is `src/python/strata:dist`, built by Pants for this test. Two scratch repos hold the
same files but for how they load the plugin: "in-repo" copies its source onto `pythonpath`, the
consumer installs the wheel. They share one fresh local store, so the consumer, building after
the in-repo one, runs a Process only when its cache key (argv, environment, input digest)
differs from every one the in-repo build ran: it runs none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import (
    Registry,
    assert_valid_image,
    pushes,
    ran_processes,
    require_tool,
    run_tool,
)
from strata_harness.demo import demo_repo
from strata_harness.scratch import ScratchRepo, plugin_requirement

GREETING = "Hello from Strata, Ada! (layers dated 1970-01-01)\n"
# The demo's image, published: the same BUILD in both repos, so the registry's host is in both.
PUBLISHED = """
oci_image(name="published", registries=["{host}"], image_tags=["v1"], **DEMO_IMAGE)
"""
TARGETS = ("app:image", "app:image-layout")


@dataclass(frozen=True)
class Builds:
    wheel: Path
    in_repo: ScratchRepo
    consumer: ScratchRepo
    in_repo_run: subprocess.CompletedProcess[str]
    consumer_run: subprocess.CompletedProcess[str]
    in_repo_published: subprocess.CompletedProcess[str]
    consumer_published: subprocess.CompletedProcess[str]


def built_wheel() -> Path:
    """The wheel Pants built for this test (`runtime_package_dependencies`): at the sandbox's
    root, the distribution's output path."""
    (wheel,) = Path.cwd().glob("pants_backend_strata-*.whl")
    return wheel


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Builds]:
    base = tmp_path_factory.mktemp("plugin-wheel")
    links = base / "wheels"  # the consumer's find_links: the wheel alone
    links.mkdir()
    wheel = Path(shutil.copy(built_wheel(), links))
    # Everything but the plugin's loading is the same in both repos, the package index's
    # find_links among it (pex resolves name them in their argv).
    shared = {
        "GLOBAL": {"local_store_dir": str(base / "store")},
        "strata": {"blob_store": str(base / "blobs")},
        "python-repos": {"find_links": [f"file://{links}"]},
    }
    in_repo = demo_repo(base / "in-repo", config=shared)
    consumer = demo_repo(base / "consumer", config=shared, plugin_wheel=wheel)
    for repo in (in_repo, consumer):
        with open(repo.root / "app/BUILD", "a") as build:
            build.write(PUBLISHED.format(host=registry.host))
    in_repo_run = in_repo.run("package", *TARGETS)
    consumer_run = consumer.run("package", *TARGETS)
    in_repo_published = in_repo.run("publish", "app:published")
    consumer_published = consumer.run("publish", "app:published")
    yield Builds(wheel, in_repo, consumer, in_repo_run, consumer_run, in_repo_published,
                 consumer_published)
    for repo in (in_repo, consumer):
        repo.stop_pantsd()


def test_the_consumer_loads_strata_from_the_wheel_alone(builds: Builds) -> None:
    print((builds.consumer.root / "pants.toml").read_text())
    config = builds.consumer.config
    assert config["GLOBAL"]["plugins"] == [plugin_requirement(builds.wheel)]
    assert "strata" in config["GLOBAL"]["backend_packages"]
    assert "pythonpath" not in config["GLOBAL"]
    # No Strata source in the repo (nor a link to one): its files are the demo's and pants.toml.
    files = sorted(
        str(p.relative_to(builds.consumer.root))
        for p in builds.consumer.root.rglob("*")
        if not p.is_dir() and not p.relative_to(builds.consumer.root).parts[0].startswith(
            (".", "dist")
        )
    )
    assert not any("strata" in f for f in files), files
    assert not any(p.is_symlink() for p in builds.consumer.root.rglob("*") if "dist" not in p.parts)


def test_the_consumer_runs_no_process_the_source_tree_did_not(builds: Builds) -> None:
    layers = ran_processes(builds.in_repo_run, "Building app:image")
    assert len(layers) >= 40, layers  # a cold build: the store is the test's own
    # The consumer resolved its plugin (pex, from find_links and the index); everything else
    # was a cache hit on the in-repo build's results.
    ran = [
        p for p in ran_processes(builds.consumer_run)
        if plugin_requirement(builds.wheel) not in p
    ]
    assert ran == [], ran


def manifest_digest(layout: Path) -> str:
    (manifest,) = json.loads((layout / "index.json").read_text())["manifests"]
    return manifest["digest"]


def test_the_consumer_image_is_the_in_repo_image_and_runs(builds: Builds, run_image) -> None:
    assert builds.consumer.dist_digests() == builds.in_repo.dist_digests()
    layout = builds.consumer.root / "dist/app/image-layout"
    print(f"image-layout: consumer {manifest_digest(layout)}, "
          f"in-repo {manifest_digest(builds.in_repo.root / 'dist/app/image-layout')}")
    image = builds.consumer.root / "dist/app/image.tar"
    assert_valid_image(image, "docker-archive")
    assert_valid_image(layout, "oci")
    assert run_image(image, ["Ada"]) == (0, GREETING)


def test_the_consumer_publishes_the_in_repo_image(
    builds: Builds, registry: Registry, tmp_path: Path
) -> None:
    """The in-repo build published first: the consumer's push finds every blob present and
    tags the same manifest, which passes the strict check once pulled."""
    name = f"{registry.host}/strata/hello"
    in_repo = pushes(builds.in_repo_published.stdout)[name]
    consumer = pushes(builds.consumer_published.stdout)[name]
    print(f"published: consumer {consumer.tags}, in-repo {in_repo.tags}")
    assert consumer.tags == in_repo.tags
    assert (consumer.uploaded, consumer.mounted) == (0, 0)
    assert registry.inspect("strata/hello:v1")["Digest"] == consumer.tags["v1"]
    pulled = tmp_path / "pulled"
    run_tool([require_tool("skopeo"), "--insecure-policy", "copy", "--quiet",
              "--src-tls-verify=false", registry.ref("strata/hello:v1"), f"oci:{pulled}:t"])
    assert_valid_image(pulled, "oci", ref="t")
