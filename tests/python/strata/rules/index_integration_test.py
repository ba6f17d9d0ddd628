"""`oci_image_index` on a scratch repo: two tiny images (amd64 and arm64, sharing a layer)
packaged as an OCI layout and an oci-archive, read by skopeo (which picks a platform) and
checked with umoci; published twice to a real registry; and the errors, each naming the target
and the field.

Pants runs cost ~15 s each (~30 s under load), so a module fixture makes the package and publish
runs all tests read, and the error runs go through one pantsd.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import (
    Dockerd,
    Registry,
    ScratchRepo,
    assert_valid_image,
    pushes,
    require_tool,
    run_tool,
    upload_posts,
)

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
BUILD = """
    file(name="shared", source="etc/shared.txt")
    file(name="amd64_file", source="etc/amd64.txt")
    file(name="arm64_file", source="etc/arm64.txt")

    oci_image(name="amd64", dependencies=[":shared", ":amd64_file"], architecture="amd64")
    oci_image(
        name="arm64", dependencies=[":shared", ":arm64_file"], architecture="arm64", variant="8"
    )
    oci_image_index(
        name="index",
        images=[":amd64", ":arm64"],
        repository="strata/multi",
        tag="v1",
        registries=["{host}"],
        image_tags=["v1", "latest"],
    )
    oci_image_index(
        name="docker_list",
        images=[":amd64", ":arm64"],
        repository="strata/multi-docker",
        tag="v1",
        registries=["{host}"],
        publish_format="docker",
    )
    oci_image_index(
        name="archive", images=[":amd64", ":arm64"], tag="v1", output_format="oci-archive"
    )
"""
ERRORS = {
    "docker_archive/BUILD": """
        oci_image_index(name="index", images=["//:amd64"], output_format="docker-archive")
    """,
    "duplicate/BUILD": """
        oci_image(name="plain", dependencies=["//:shared"], architecture="arm64")
        oci_image(name="v8", dependencies=["//:shared"], architecture="arm64", variant="v8")
        oci_image_index(name="index", images=["//:amd64", ":plain", ":v8"])
    """,
    "unknown_arch/BUILD": """
        oci_image(name="image", dependencies=["//:shared"], architecture="aarch64")
    """,
    "not_an_image/BUILD": """
        oci_image_index(name="index", images=["//:amd64", "//:shared"])
    """,
    "empty/BUILD": """
        oci_image_index(name="index", images=[])
    """,
    "base_mismatch/BUILD": """
        oci_image(name="image", base="//:arm64", dependencies=["//:amd64_file"])
    """,
}


@dataclass(frozen=True)
class Built:
    repo: ScratchRepo
    package: subprocess.CompletedProcess[str]
    layout: Path
    archive: Path
    registry: Registry
    first: subprocess.CompletedProcess[str]  # `pants publish //:index`, twice
    second: subprocess.CompletedProcess[str]
    first_log: str  # what the registry logged during each publish
    second_log: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Built]:
    repo = ScratchRepo(tmp_path_factory.mktemp("index") / "repo")
    repo.write(
        {
            "etc/shared.txt": "in both images\n",
            "etc/amd64.txt": "amd64 only\n",
            "etc/arm64.txt": "arm64 only\n",
            "BUILD": BUILD.format(host=registry.host),
            **ERRORS,
        }
    )
    package = repo.run("package", "//:index", "//:archive")
    start = registry.log_path.stat().st_size
    first = repo.run("publish", "//:index")
    middle = registry.log_path.stat().st_size
    second = repo.run("publish", "//:index")
    log = registry.log_path.read_bytes()
    try:
        yield Built(
            repo,
            package,
            repo.root / "dist/index",
            repo.root / "dist/archive.tar",
            registry,
            first,
            second,
            log[start:middle].decode(),
            log[middle:].decode(),
        )
    finally:
        repo.stop_pantsd()


def skopeo(*args: str) -> str:
    return run_tool([require_tool("skopeo"), "--insecure-policy", *args]).stdout


def platforms_of(index: dict) -> list[dict]:
    return [manifest["platform"] for manifest in index["manifests"]]


@pytest.mark.parametrize("transport", ["oci", "oci-archive"])
def test_skopeo_reads_the_index_with_both_platforms(built: Built, transport: str) -> None:
    path = built.layout if transport == "oci" else built.archive
    index = json.loads(skopeo("inspect", "--raw", f"{transport}:{path}:v1"))
    assert index["mediaType"] == INDEX_MEDIA_TYPE
    # variant="8" is normalised to v8; amd64 has none, so the config and the index have none.
    assert platforms_of(index) == [AMD64, ARM64]


@pytest.mark.parametrize("transport", ["oci", "oci-archive"])
@pytest.mark.parametrize("arch", ["arm64", "amd64"])
def test_skopeo_takes_each_platforms_image_and_it_passes_the_strict_check(
    built: Built, transport: str, arch: str, tmp_path: Path
) -> None:
    path = built.layout if transport == "oci" else built.archive
    copy = tmp_path / "copy"
    skopeo("copy", "--quiet", "--override-arch", arch, f"{transport}:{path}:v1", f"oci:{copy}:t")
    config = json.loads(skopeo("inspect", "--config", "--raw", f"oci:{copy}:t"))
    assert (config["architecture"], config.get("variant")) == (
        (arch, "v8") if arch == "arm64" else (arch, None)
    )
    bundle = tmp_path / "bundle"
    assert_valid_image(copy, ref="t", unpack_to=bundle)
    assert (bundle / "rootfs/etc/shared.txt").read_text() == "in both images\n"
    assert (bundle / f"rootfs/etc/{arch}.txt").read_text() == f"{arch} only\n"


def blob(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs/sha256" / digest.split(":")[1]).read_bytes())


def test_the_layout_names_the_index_and_stores_the_shared_layer_once(built: Built) -> None:
    (named,) = json.loads((built.layout / "index.json").read_bytes())["manifests"]
    assert named["mediaType"] == INDEX_MEDIA_TYPE
    assert named["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    index = blob(built.layout, named["digest"])
    manifests = [blob(built.layout, m["digest"]) for m in index["manifests"]]
    layers = [{layer["digest"] for layer in m["layers"]} for m in manifests]
    assert [len(each) for each in layers] == [2, 2]
    (shared,) = layers[0] & layers[1]
    blobs = sorted(p.name for p in (built.layout / "blobs/sha256").iterdir())
    # The index, 2 manifests, 2 configs and 3 layers: the shared one once.
    assert len(blobs) == 1 + 2 + 2 + 3
    assert blobs.count(shared.split(":")[1]) == 1
    # What `package` printed: the index digest, each platform's manifest, the shared layers.
    assert f"Index digest: {named['digest']}" in built.package.stderr
    for platform, descriptor in zip(("linux/amd64", "linux/arm64/v8"), index["manifests"]):
        assert f"{platform}: {descriptor['digest']} (2 layers)" in built.package.stderr
    assert "Layers shared by all 2 platforms: 1" in built.package.stderr


def test_the_archive_is_the_layout_and_the_same_images_give_the_same_index(built: Built) -> None:
    with tarfile.open(built.archive) as tar:
        names = tar.getnames()
        archived = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    blobs = [n for n in names if n.startswith("blobs/sha256/")]
    assert names == ["blobs", "blobs/sha256", *sorted(blobs), "index.json", "oci-layout"]
    on_disk = {
        str(p.relative_to(built.layout)): p.read_bytes()
        for p in built.layout.rglob("*") if p.is_file()
    }
    assert archived == on_disk  # two targets, the same images and tag: the same bytes


def test_publish_pushes_the_images_then_the_index_and_its_tags(
    built: Built, tmp_path: Path
) -> None:
    name = f"{built.registry.host}/strata/multi"
    push = pushes(built.first.stdout)[name]
    digest = push.tags["v1"]
    assert push.tags == {"v1": digest, "latest": digest}
    assert f"{name}:v1 published to ({digest})" in built.first.stderr
    raw = built.registry.inspect("strata/multi:latest", raw=True)
    assert raw["mediaType"] == INDEX_MEDIA_TYPE and platforms_of(raw) == [AMD64, ARM64]
    # 2 configs and 3 layers uploaded (gzip: the images' compression is `none`); the shared
    # layer, pushed with the first image, is present for the second.
    assert (push.uploaded, push.present, push.mounted) == (5, 1, 0)
    assert upload_posts(built.first_log, "strata/multi") == 5
    for descriptor in raw["manifests"]:
        manifest = built.registry.inspect(f"strata/multi@{descriptor['digest']}", raw=True)
        assert {layer["mediaType"] for layer in manifest["layers"]} == {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
    # Manifests by digest, then the index by digest, then the tags.
    puts = re.findall(r'"PUT /v2/strata/multi/manifests/(\S+) HTTP/1.1" 201', built.first_log)
    assert puts == [*(m["digest"] for m in raw["manifests"]), digest, "v1", "latest"]
    copy = tmp_path / "pulled"
    skopeo("copy", "--quiet", "--src-tls-verify=false", "--override-arch", "arm64",
           built.registry.ref("strata/multi:v1"), f"oci:{copy}:t")  # fmt: skip
    assert_valid_image(copy, ref="t")


def test_a_second_identical_publish_uploads_nothing(built: Built) -> None:
    name = f"{built.registry.host}/strata/multi"
    first, again = pushes(built.first.stdout)[name], pushes(built.second.stdout)[name]
    assert again.tags == first.tags
    assert (again.uploaded, again.uploaded_bytes, again.mounted, again.present) == (0, 0, 0, 6)
    assert upload_posts(built.second_log, "strata/multi") == 0


def test_publish_format_docker_pushes_a_manifest_list_that_docker_and_skopeo_pull(
    built: Built, dockerd: Dockerd, tmp_path: Path
) -> None:
    published = built.repo.run("publish", "//:docker_list")
    name = f"{built.registry.host}/strata/multi-docker"
    digest = pushes(published.stdout)[name].tags["v1"]
    assert f"{name}:v1 published to ({digest})" in published.stderr
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}@{digest}")
    print(f"skopeo inspect --raw docker://{name}@{digest}:\n{raw.decode()}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    manifest_list = json.loads(raw)
    assert manifest_list["mediaType"] == MANIFEST_LIST
    assert platforms_of(manifest_list) == [AMD64, ARM64]
    for descriptor in manifest_list["manifests"]:
        assert descriptor["mediaType"] == DOCKER_MANIFEST
        manifest = built.registry.inspect(f"strata/multi-docker@{descriptor['digest']}", raw=True)
        assert manifest["mediaType"] == DOCKER_MANIFEST
        assert {layer["mediaType"] for layer in manifest["layers"]} == {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        }

    dockerd("pull", "--quiet", f"{name}@{digest}")
    inspected = dockerd("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}",
                        f"{name}@{digest}")  # fmt: skip
    assert inspected.stdout.decode() == "linux/amd64\n"
    copy, rootfs = tmp_path / "pulled", tmp_path / "bundle"
    skopeo("copy", "--quiet", "--src-tls-verify=false", "--override-arch", "arm64",
           f"docker://{name}@{digest}", f"oci:{copy}:t")  # fmt: skip
    assert_valid_image(copy, ref="t", unpack_to=rootfs)
    assert (rootfs / "rootfs/etc/arm64.txt").read_text() == "arm64 only\n"


@pytest.mark.parametrize("target, message", [
    ("docker_archive:index",
     "The 'output_format' field in target docker_archive:index is `docker-archive`, which holds "
     "images of one platform only (`docker load` has no image index): use `oci` or "
     "`oci-archive`"),
    ("duplicate:index",
     "The `images` field of duplicate:index lists two images of one platform: "
     "duplicate:plain and duplicate:v8 are both linux/arm64"),
    ("unknown_arch:image",
     "The 'architecture' field in target unknown_arch:image is invalid: unknown architecture "
     "'aarch64': Go calls it 'arm64'"),
    ("empty:index",
     "The `images` field of empty:index: an image index needs at least one image."),
    ("not_an_image:index",
     "The `images` field of not_an_image:index names //:shared, a `file` target: an index "
     "lists `oci_image` targets."),
    ("base_mismatch:image",
     "The `architecture` field of base_mismatch:image is 'amd64', but the image its `base` "
     "field names, //:arm64, is architecture 'arm64'"),
])  # fmt: skip
def test_errors_name_the_target_and_field_and_write_nothing(
    built: Built, target: str, message: str
) -> None:
    built.repo.assert_package_fails(target, message)
