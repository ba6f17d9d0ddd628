"""`oci_image_bundle` on a scratch repo: three tiny images (two runnable with busybox, all
sharing a `files` layer; one of them an `oci` image with gzip layers) in one docker-archive,
loaded whole by `podman load` and `docker load` (the harness's private dockerd), read image by
image by skopeo and checked with umoci; and the errors, each naming the target and the field.

Pants runs cost ~15 s each (~30 s under load), so a module fixture makes the one package run
all tests read, and the error runs go through one pantsd.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import (
    Dockerd,
    Podman,
    ScratchRepo,
    assert_valid_image,
    require_tool,
    run_tool,
)

BUILD = """
    file(name="busybox", source="bin/busybox")
    file(name="shared", source="etc/shared.txt")
    file(name="a_file", source="etc/a.txt")

    oci_image(
        name="a",
        dependencies=[":busybox", ":shared", ":a_file"],
        repository="strata/bundle-a",
        tag="v1",
        entrypoint=["/bin/busybox", "cat", "/etc/a.txt"],
    )
    oci_image(  # no tag: the content-derived one
        name="b",
        dependencies=[":busybox", ":shared"],
        repository="strata/bundle-b",
        entrypoint=["/bin/busybox", "cat", "/etc/shared.txt"],
    )
    oci_image_bundle(name="bundle", images=[":a", ":b", "//tools:c"])
    oci_image_bundle(name="again", images=[":a", ":b", "//tools:c"])
"""
TOOLS_BUILD = """
    oci_image(
        name="c",
        dependencies=["//:shared"],
        repository="strata/bundle-c",
        tag="v1",
        output_format="oci",
        compression="gzip",
    )
"""
ERRORS = {
    "empty/BUILD": """
        oci_image_bundle(name="bundle", images=[])
    """,
    "duplicate/BUILD": """
        oci_image(name="same", dependencies=["//:a_file"], repository="strata/bundle-a", tag="v1")
        oci_image_bundle(name="bundle", images=["//:a", ":same"])
    """,
    "not_an_image/BUILD": """
        oci_image_bundle(name="bundle", images=["//:a", "//:shared"])
    """,
}


@dataclass(frozen=True)
class Built:
    repo: ScratchRepo
    package: subprocess.CompletedProcess[str]
    archive: Path
    entries: list  # manifest.json
    repo_tags: list  # each image's, in `images` order


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    repo = ScratchRepo(tmp_path_factory.mktemp("bundle") / "repo")
    repo.write(
        {
            "bin/busybox": Path(require_tool("busybox")).read_bytes(),
            "etc/shared.txt": "in every image\n",
            "etc/a.txt": "only in a\n",
            "BUILD": BUILD,
            "tools/BUILD": TOOLS_BUILD,
            **ERRORS,
        }
    )
    (repo.root / "bin/busybox").chmod(0o755)
    package = repo.run("package", "//:bundle", "//:again", "//:b", "//tools:c")
    archive = repo.root / "dist/bundle.tar"
    with tarfile.open(archive) as tar:
        entries = json.load(tar.extractfile("manifest.json"))
    try:
        yield Built(repo, package, archive, entries, [e["RepoTags"][0] for e in entries])
    finally:
        repo.stop_pantsd()


def skopeo(*args: str) -> str:
    return run_tool([require_tool("skopeo"), "--insecure-policy", *args]).stdout.decode()


def test_manifest_lists_each_image_by_its_own_name_in_order(built: Built) -> None:
    (b_manifest,) = json.loads(
        tarfile.open(built.repo.root / "dist/b.tar").extractfile("manifest.json").read()
    )
    # b's RepoTag is the one its own docker-archive has (its content-derived tag).
    assert built.repo_tags == ["strata/bundle-a:v1", *b_manifest["RepoTags"], "strata/bundle-c:v1"]
    # c is an `oci` image with gzip layers; in the bundle its layer is a tar with the same
    # diff_id, so its config is the one its own OCI layout holds.
    layout = built.repo.root / "dist/tools/c"
    (descriptor,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs/sha256" / descriptor["digest"][7:]).read_text())
    assert built.entries[2]["Config"] == manifest["config"]["digest"][7:] + ".json"
    for tag in built.repo_tags:
        assert f"Image: {tag}" in built.package.stderr
    assert "Layers stored: 3 (2 shared by several images)" in built.package.stderr


def test_each_layer_and_config_is_stored_once(built: Built) -> None:
    with tarfile.open(built.archive) as tar:
        names = tar.getnames()
    layers = [n for n in names if n.endswith("/layer.tar")]
    # busybox (a, b), shared (a, b, c), a.txt (a): three layers for six references.
    assert sum(len(e["Layers"]) for e in built.entries) == 3 + 2 + 1
    assert sorted(layers) == sorted({p for e in built.entries for p in e["Layers"]})
    assert len(layers) == len(set(layers)) == 3
    shared = set.intersection(*(set(e["Layers"]) for e in built.entries))
    assert len(shared) == 1 and names.count(shared.pop()) == 1
    assert len([n for n in names if n.endswith(".json")]) == 3 + 1  # configs, manifest.json
    assert names[-1] == "manifest.json"


def test_the_same_images_give_the_same_bytes(built: Built) -> None:
    assert built.archive.read_bytes() == (built.repo.root / "dist/again.tar").read_bytes()


def test_podman_load_loads_every_image_and_one_runs(built: Built, podman: Podman) -> None:
    podman("load", "--quiet", "-i", str(built.archive))
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    # podman names an image without a registry host localhost/<name>.
    assert {f"localhost/{tag}" for tag in built.repo_tags} <= set(listed)
    code, out = podman.run_image(built.archive, fmt="docker-archive", ref=built.repo_tags[0])
    assert (code, out) == (0, "only in a\n")


def test_docker_load_loads_every_image_and_one_runs(built: Built, dockerd: Dockerd) -> None:
    dockerd("load", "--quiet", "-i", str(built.archive))
    listed = dockerd("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert set(built.repo_tags) <= set(listed)
    assert dockerd.run(built.repo_tags[1]) == (0, "in every image\n")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_skopeo_reads_each_image_and_it_passes_the_strict_check(
    built: Built, index: int, tmp_path: Path
) -> None:
    tag = built.repo_tags[index]
    archive = f"docker-archive:{built.archive}"
    by_name = skopeo("inspect", "--config", "--raw", f"{archive}:{tag}")
    assert skopeo("inspect", "--config", "--raw", f"{archive}:@{index}") == by_name
    bundle = tmp_path / "bundle"
    assert_valid_image(built.archive, "docker-archive", ref=tag, unpack_to=bundle)
    assert (bundle / "rootfs/etc/shared.txt").read_text() == "in every image\n"
    assert (bundle / "rootfs/etc/a.txt").exists() == (index == 0)
    assert (bundle / "rootfs/bin/busybox").exists() == (index != 2)


@pytest.mark.parametrize("target, message", [
    ("empty:bundle",
     "The `images` field of empty:bundle is empty: a bundle holds at least one `oci_image` "
     "target."),
    ("duplicate:bundle",
     "The `images` field of duplicate:bundle lists two images of one repository:tag: //:a and "
     "duplicate:same are both strata/bundle-a:v1."),
    ("not_an_image:bundle",
     "The `images` field of not_an_image:bundle names //:shared, a `file` target: a bundle "
     "lists `oci_image` targets."),
])  # fmt: skip
def test_errors_name_the_target_and_field_and_write_nothing(
    built: Built, target: str, message: str
) -> None:
    built.repo.assert_package_fails(target, message)
