"""`base` images on a scratch repo: an `oci_image` chain, an `oci_image_archive` and an `oci_pull`
from a real registry, checked with skopeo, umoci and podman.

Pants runs cost ~15 s each, so one repo holds every target and a module fixture makes the few
runs all tests read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata_harness import (
    Registry,
    ScratchRepo,
    Symlink,
    assert_valid_image,
    layer_tar,
    make_busybox_image,
    ran_processes,
    require_tool,
    run_tool,
)

CHAIN = ("bottom", "mid", "top")
BUILD = """
    file(name="busybox", source="bin/busybox")
    file(name="mid_file", source="etc/mid.txt")
    file(name="top_file", source="etc/top.txt")
    file(name="note", source="etc/note.txt")

    oci_image(
        name="bottom",
        dependencies=[":busybox"],
        env={{"A": "base", "B": "base"}},
        entrypoint=["/bin/busybox"],
    )
    oci_image(
        name="mid", base=":bottom", dependencies=[":mid_file"], env={{"B": "mid", "C": "mid"}}
    )
    oci_image(name="top", base=":mid", dependencies=[":top_file"], cmd=["env"])
    # Like a Dockerfile that only sets ENV/CMD: no files of its own, so no layer of its own.
    oci_image(name="config_only", base=":bottom", env={{"D": "config"}}, cmd=["env"])

    oci_image_archive(name="handmade", source="handmade.tar")
    oci_image(
        name="on_archive",
        base=":handmade",
        dependencies=[":note"],
        entrypoint=["/bin/busybox", "cat", "/etc/note.txt"],
    )

    # The same image with zstd layers, which a docker-archive cannot hold as they are.
    oci_image_archive(name="handmade_zstd", source="handmade-zstd.tar")
    oci_image(
        name="on_zstd_archive",
        base=":handmade_zstd",
        dependencies=[":note"],
        entrypoint=["/bin/busybox", "cat", "/etc/note.txt"],
    )

    oci_pull(name="multi", registry="{host}", repository="strata/multi", digest="{digest}", tag="1")
    oci_image(
        name="on_pull", base=":multi", dependencies=[":note"], cmd=["/etc/arch", "/etc/note.txt"]
    )
    # No `platform` on the base: each image gets the base's image of its own platform.
    oci_image(name="on_pull_arm64", base=":multi", dependencies=[":note"], architecture="arm64")
"""
NOTE = "added on top of a base\n"


def _put(layout: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def index_layout(out: Path, ref: str, images: dict[str, dict]) -> tuple[str, dict[str, str]]:
    """An OCI layout whose ref `ref` is an index of one image per platform ("os/arch[/variant]":
    files, with /etc/arch naming the architecture added). Layers are gzipped, as registries
    hold them, so skopeo can push the index with --preserve-digests. Returns (index digest,
    {platform: its layer's diff_id})."""
    (out / "blobs" / "sha256").mkdir(parents=True)
    entries, diff_ids = [], {}
    for platform, files in images.items():
        fields = dict(zip(("os", "architecture", "variant"), platform.split("/")))
        layer = layer_tar({**files, "etc/arch": f"{fields['architecture']}\n".encode()})
        diff_ids[platform] = "sha256:" + hashlib.sha256(layer).hexdigest()
        config = {
            **fields,
            "config": {"Entrypoint": ["/bin/busybox", "cat"], "Cmd": ["/etc/arch"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_ids[platform]]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _put(out, _json(config), "application/vnd.oci.image.config.v1+json"),
            "layers": [
                _put(
                    out,
                    gzip.compress(layer, mtime=0),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                )
            ],
        }
        entry = _put(out, _json(manifest), manifest["mediaType"])
        entries.append({**entry, "platform": fields})
    index_type = "application/vnd.oci.image.index.v1+json"
    index = _put(
        out, _json({"schemaVersion": 2, "mediaType": index_type, "manifests": entries}), index_type
    )
    index["annotations"] = {"org.opencontainers.image.ref.name": ref}
    (out / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(_json({"schemaVersion": 2, "manifests": [index]}))
    return index["digest"], diff_ids


def two_platform_layout(out: Path) -> tuple[str, dict[str, str]]:
    """An index "multi" of a runnable linux/amd64 image (busybox and /etc/arch) and a
    linux/arm64 one, whose /bin/busybox is a stand-in for the program its config starts (an
    image on it would not build without one; nothing runs it). Returns (index digest,
    {platform: its layer's diff_id})."""
    busybox = Path(require_tool("busybox")).read_bytes()
    amd64 = {"bin/busybox": (busybox, 0o755), "bin/sh": Symlink("busybox")}
    arm64 = {"bin/busybox": (b"#!/bin/sh\n", 0o755)}
    return index_layout(out, "multi", {"linux/amd64": amd64, "linux/arm64": arm64})


@dataclass(frozen=True)
class Built:
    repo: ScratchRepo
    index_digest: str
    diff_ids: dict[str, str]  # of the base index's images, by platform
    before_push: subprocess.CompletedProcess[str]  # //:on_pull while its digest is not there
    cold: subprocess.CompletedProcess[str]  # every image, after the push
    dist: Path  # dist/ of the cold build
    rebuilt: subprocess.CompletedProcess[str]  # the chain again, from an emptied local store


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Built:
    base = tmp_path_factory.mktemp("base")
    index_digest, diff_ids = two_platform_layout(base / "multi")
    repo = ScratchRepo(base / "repo", isolated_cache=True)
    repo.write(
        {
            "bin/busybox": Path(require_tool("busybox")).read_bytes(),
            "etc/mid.txt": "mid\n",
            "etc/top.txt": "top\n",
            "etc/note.txt": NOTE,
            "BUILD": BUILD.format(host=registry.host, digest=index_digest),
        }
    )
    (repo.root / "bin/busybox").chmod(0o755)
    make_busybox_image(repo.root / "handmade.tar")
    run_tool(
        [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet",
         "--dest-compress-format", "zstd", f"docker-archive:{repo.root / 'handmade.tar'}",
         f"oci-archive:{repo.root / 'handmade-zstd.tar'}"]
    )  # fmt: skip

    before_push = repo.run("package", "//:on_pull", check=False)
    run_tool(
        [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet", "--all",
         "--preserve-digests", "--dest-tls-verify=false",
         f"oci:{base / 'multi'}:multi", registry.ref("strata/multi:1")]
    )  # fmt: skip
    cold = repo.run(
        "package",
        *(f"//:{name}" for name in (*CHAIN, "config_only", "on_archive", "on_zstd_archive",
                                    "on_pull", "on_pull_arm64")),
    )
    dist = Path(shutil.copytree(repo.root / "dist", base / "dist"))
    assert repo.local_store is not None
    shutil.rmtree(repo.local_store)
    rebuilt = repo.run("package", *(f"//:{name}" for name in CHAIN))
    return Built(repo, index_digest, diff_ids, before_push, cold, dist, rebuilt)


def config_of(docker_archive: Path) -> dict:
    with tarfile.open(docker_archive) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
        return json.load(tar.extractfile(manifest["Config"]))


def test_chain_inherits_layers_and_config_and_runs(
    built: Built, run_image, tmp_path: Path
) -> None:
    for name in CHAIN:
        assert_valid_image(built.dist / f"{name}.tar", "docker-archive", unpack_to=tmp_path / name)
    bottom, mid, top = (config_of(built.dist / f"{name}.tar") for name in CHAIN)
    bottom_ids = bottom["rootfs"]["diff_ids"]
    assert len(bottom_ids) == 1
    assert mid["rootfs"]["diff_ids"][:1] == bottom_ids
    assert top["rootfs"]["diff_ids"][:2] == mid["rootfs"]["diff_ids"]
    assert len(top["rootfs"]["diff_ids"]) == 3
    assert top["history"][:2] == mid["history"]
    assert top["config"]["Env"] == ["A=base", "B=mid", "C=mid"]
    assert top["config"]["Entrypoint"] == ["/bin/busybox"]
    assert top["config"]["Cmd"] == ["env"]

    code, out = run_image(built.dist / "top.tar")
    assert code == 0
    assert {"A=base", "B=mid", "C=mid"} <= set(out.splitlines())
    rootfs = tmp_path / "top" / "rootfs"
    assert (rootfs / "etc/mid.txt").read_text() == "mid\n"
    assert (rootfs / "etc/top.txt").read_text() == "top\n"


def test_an_image_may_only_change_its_base_config(built: Built, run_image) -> None:
    bottom, config_only = (config_of(built.dist / f"{n}.tar") for n in ("bottom", "config_only"))
    assert config_only["rootfs"] == bottom["rootfs"]
    assert config_only["config"]["Env"] == ["A=base", "B=base", "D=config"]
    assert_valid_image(built.dist / "config_only.tar", "docker-archive")
    code, out = run_image(built.dist / "config_only.tar")
    assert code == 0 and "D=config" in out.splitlines()


def test_chain_rebuilt_from_scratch_is_identical(built: Built) -> None:
    # The local store was emptied, so these are real rebuilds, not cache hits.
    assert ran_processes(built.rebuilt, "Assembling //:top") != []
    for name in CHAIN:
        rebuilt = (built.repo.root / "dist" / f"{name}.tar").read_bytes()
        assert rebuilt == (built.dist / f"{name}.tar").read_bytes(), name


def test_image_on_an_archive_runs(built: Built, run_image) -> None:
    image = built.dist / "on_archive.tar"
    assert_valid_image(image, "docker-archive")
    assert len(config_of(image)["rootfs"]["diff_ids"]) == 2
    assert run_image(image) == (0, NOTE)


def test_a_zstd_base_goes_into_a_docker_archive_decompressed_and_runs(
    built: Built, run_image
) -> None:
    image = built.dist / "on_zstd_archive.tar"
    assert_valid_image(image, "docker-archive")
    with tarfile.open(image) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
        heads = [tar.extractfile(name).read(512) for name in manifest["Layers"]]
    assert all(head[257:262] == b"ustar" for head in heads)  # tars, none zstd (or gzip)
    assert config_of(image)["rootfs"]["diff_ids"] == config_of(built.dist / "on_archive.tar")[
        "rootfs"]["diff_ids"]
    assert run_image(image) == (0, NOTE)


def test_pull_picks_the_platform_and_runs(built: Built, run_image) -> None:
    image = built.dist / "on_pull.tar"
    assert_valid_image(image, "docker-archive")
    config = config_of(image)
    assert config["architecture"] == "amd64"
    assert config["rootfs"]["diff_ids"][0] == built.diff_ids["linux/amd64"]
    assert run_image(image) == (0, "amd64\n" + NOTE)


def test_an_image_gets_the_base_image_of_its_own_platform(built: Built) -> None:
    image = built.dist / "on_pull_arm64.tar"
    assert_valid_image(image, "docker-archive")
    config = config_of(image)
    assert config["architecture"] == "arm64"
    assert config["rootfs"]["diff_ids"][0] == built.diff_ids["linux/arm64"]


def test_pull_of_a_missing_digest_fails_naming_it_and_is_not_cached(built: Built) -> None:
    assert built.before_push.returncode != 0
    assert f"strata/multi@{built.index_digest}" in built.before_push.stderr
    assert f"manifest {built.index_digest} not found" in built.before_push.stderr
    # The same pull, once the index is there: a failure was not cached as a result.
    assert ran_processes(built.cold, "Pulling ") != []


def test_tag_instead_of_digest_is_a_field_error(built: Built, registry: Registry) -> None:
    built.repo.write(
        {
            "tagged/BUILD": f"""
                oci_pull(name="pull", registry="{registry.host}", repository="strata/multi",
                         digest="latest")
                oci_image(name="image", base=":pull", dependencies=["//:note"])
            """
        }
    )
    result = built.repo.run("package", "tagged:image", check=False)
    assert result.returncode != 0
    assert "The 'digest' field in target tagged:pull must be a `sha256:<64 hex>` digest" in (
        result.stderr
    )
    assert "'latest'" in result.stderr


def test_an_ambiguous_or_missing_platform_is_an_error_naming_the_field(
    built: Built, registry: Registry, tmp_path: Path
) -> None:
    layout = tmp_path / "arm"
    digest, _ = index_layout(layout, "arm", {"linux/arm/v6": {}, "linux/arm/v7": {}})
    run_tool(
        [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet", "--all",
         "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:arm",
         registry.ref("strata/arm:1")]
    )  # fmt: skip
    (built.repo.root / "platforms").mkdir()
    with tarfile.open(built.repo.root / "platforms/arm.tar", "w") as tar:  # an oci-archive
        for child in sorted(layout.iterdir()):
            tar.add(child, arcname=child.name)
    pulled = f"{registry.host}/strata/arm@{digest}"
    built.repo.write(
        {
            "platforms/BUILD": f"""
                oci_pull(name="pull", registry="{registry.host}", repository="strata/arm",
                         digest="{digest}", platform="linux/arm")
                oci_image(name="on_pull", base=":pull", dependencies=["//:note"])
                oci_image_archive(name="archive", source="arm.tar", platform="linux/arm")
                oci_image(name="on_archive", base=":archive", dependencies=["//:note"])
                oci_pull(name="pull_s390x", registry="{registry.host}", repository="strata/arm",
                         digest="{digest}", platform="linux/s390x")
                oci_image(name="on_pull_s390x", base=":pull_s390x", dependencies=["//:note"])
            """
        }
    )
    expected = {
        "on_pull": (
            "The `platform` field of platforms:pull is `linux/arm`, which matches several "
            f"images of {pulled}: linux/arm/v6, linux/arm/v7. Set it to one of them."
        ),
        "on_archive": (
            "The `platform` field of platforms:archive is `linux/arm`, which matches several "
            "images of platforms/arm.tar: linux/arm/v6, linux/arm/v7. Set it to one of them."
        ),
        "on_pull_s390x": (
            "The `platform` field of platforms:pull_s390x is `linux/s390x`, which matches no "
            f"image of {pulled}; it holds linux/arm/v6, linux/arm/v7. Set it to one of those."
        ),
    }
    for image, message in expected.items():
        result = built.repo.run("package", f"platforms:{image}", check=False)
        assert result.returncode != 0
        assert f"InvalidFieldException: {message}" in result.stderr, result.stderr
        assert "--platform" not in result.stderr and "--ref" not in result.stderr
        assert not (built.repo.root / "dist" / "platforms").exists()
