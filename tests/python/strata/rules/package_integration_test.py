"""`pants package` on a scratch repo, checked with real tools (skopeo, umoci, podman).

Pants runs cost ~15 s each (no pantsd), so one cold build of every image target, with a local
store of its own, is shared by the tests that only read its output.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata_harness import (
    ScratchRepo,
    assert_valid_image,
    ran_processes,
    read_docker_archive,
    require_tool,
    run_tool,
    serve_directory,
    source_ref,
)

GREETING = "hello from strata\n"
BUILD = """
    file(name="busybox", source="bin/busybox")
    files(name="etc", sources=["etc/*.txt"], dependencies=[":busybox"])

    IMAGE = dict(
        dependencies=[":etc"],
        symlinks={"/bin/sh": "/bin/busybox"},
        directories={"/tmp": "1777"},
        entrypoint=["/bin/busybox", "cat", "/etc/greeting.txt"],
    )
    oci_image(name="image", **IMAGE)
    oci_image(name="archive", output_format="oci-archive", **IMAGE)
    oci_image(name="gzip", output_format="oci-archive", compression="gzip", **IMAGE)
    oci_image(name="zstd", output_format="oci-archive", compression="zstd", **IMAGE)
    oci_image(name="layout", output_format="oci", compression="gzip", **IMAGE)
"""


@dataclass(frozen=True)
class Built:
    repo: ScratchRepo
    cold: subprocess.CompletedProcess[str]
    dist: Path  # a copy of dist/ right after the cold build: later tests rebuild in the repo


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("package")
    repo = ScratchRepo(base / "repo", isolated_cache=True)
    repo.write(
        {
            "bin/busybox": Path(require_tool("busybox")).read_bytes(),
            "etc/greeting.txt": GREETING,
            "etc/motd.txt": "be nice\n",
            "BUILD": BUILD,
        }
    )
    (repo.root / "bin/busybox").chmod(0o755)
    cold = repo.run("package", "::")
    return Built(repo, cold, Path(shutil.copytree(repo.root / "dist", base / "dist")))


def read_oci(path: Path) -> tuple[dict, dict, dict[str, bytes]]:
    """(manifest, config, blobs by digest) of a single-image OCI layout or oci-archive."""
    if path.is_dir():
        files = {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    else:
        with tarfile.open(path) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    blobs = {
        "sha256:" + name[len("blobs/sha256/"):]: data
        for name, data in files.items()
        if name.startswith("blobs/sha256/")
    }
    (descriptor,) = json.loads(files["index.json"])["manifests"]
    manifest = json.loads(blobs[descriptor["digest"]])
    return manifest, json.loads(blobs[manifest["config"]["digest"]]), blobs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_busybox_image_is_valid_and_runs(built: Built, run_image) -> None:
    image = built.dist / "image.tar"
    assert_valid_image(image, "docker-archive")
    assert run_image(image) == (0, GREETING)
    # As nobody, through the customisation layer's /bin/sh symlink and world-writable /tmp.
    script = "echo written > /tmp/probe && cat /tmp/probe /etc/greeting.txt"
    assert run_image(image, user="65534", entrypoint=["/bin/sh", "-c", script]) == (
        0,
        "written\n" + GREETING,
    )


def test_layers_are_popular_nodes_first_and_customisation_on_top(built: Built) -> None:
    manifest, config, layers = read_docker_archive(built.dist / "image.tar")
    # //:busybox is referenced by //:etc, so it is the more popular node and sinks lowest.
    assert [h["comment"] for h in config["history"]] == [
        "//:busybox",
        "//:etc",
        "customisation layer",
    ]
    diff_ids = config["rootfs"]["diff_ids"]
    assert manifest["Layers"] == [f"{d[len('sha256:'):]}/layer.tar" for d in diff_ids]
    assert [sorted(layer) for layer in layers] == [
        ["bin", "bin/busybox"],
        ["etc", "etc/greeting.txt", "etc/motd.txt"],
        ["bin", "bin/sh", "tmp"],
    ]
    assert layers[0]["bin/busybox"].mode == 0o755
    assert layers[1]["etc/greeting.txt"].mode == 0o644
    assert layers[2]["bin/sh"].issym() and layers[2]["bin/sh"].linkname == "/bin/busybox"
    assert layers[2]["tmp"].isdir() and layers[2]["tmp"].mode == 0o1777


def test_rebuilds_run_only_the_layers_whose_content_changed(built: Built) -> None:
    # The cold build ran for real (its store is its own), or the checks below prove nothing.
    assert ran_processes(built.cold, "Assembling //:image") == ["Assembling //:image"]
    repo, image = built.repo, built.repo.root / "dist/image.tar"
    _, before, _ = read_docker_archive(built.dist / "image.tar")

    unchanged = repo.run("package", "//:image")
    assert ran_processes(unchanged, "Building ") == []
    assert ran_processes(unchanged, "Assembling ") == []
    assert sha256(image) == sha256(built.dist / "image.tar")

    repo.write({"etc/motd.txt": "be nicer\n"})
    changed = repo.run("package", "//:image")
    assert ran_processes(changed, "Building ") == ["Building //:image: layer 2 (//:etc)"]
    assert ran_processes(changed, "Assembling ") == ["Assembling //:image"]
    _, after, _ = read_docker_archive(image)
    old, new = before["rootfs"]["diff_ids"], after["rootfs"]["diff_ids"]
    assert len(old) == len(new) == 3
    assert [a == b for a, b in zip(old, new)] == [True, False, True]


@pytest.mark.parametrize(
    "output, fmt, media_type",
    [
        ("archive.tar", "oci-archive", "application/vnd.oci.image.layer.v1.tar"),
        ("gzip.tar", "oci-archive", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("layout", "oci", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ],
)
def test_oci_outputs_are_valid(built: Built, output: str, fmt: str, media_type: str) -> None:
    path = built.dist / output
    assert_valid_image(path, fmt)
    manifest, _, _ = read_oci(path)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [media_type] * 3


def test_zstd_oci_archive_copies_and_decompresses_to_its_diff_ids(
    built: Built, tmp_path: Path
) -> None:
    # umoci 0.4.7 cannot unpack zstd layers, so assert_valid_image is out: skopeo copies it
    # (checking every blob's digest), and the layers must decompress to the config's diff_ids.
    path = built.dist / "zstd.tar"
    run_tool(
        [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet",
         source_ref(path, "oci-archive"), f"oci:{tmp_path / 'layout'}:t"]
    )  # fmt: skip
    manifest, config, blobs = read_oci(path)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+zstd"
    ] * 3
    zstd = shutil.which("zstd")
    assert zstd, "the zstd image was built, so zstd is installed"
    diff_ids = [
        "sha256:" + hashlib.sha256(
            subprocess.run(
                [zstd, "-dc"], input=blobs[layer["digest"]], capture_output=True, check=True
            ).stdout
        ).hexdigest()
        for layer in manifest["layers"]
    ]
    assert diff_ids == config["rootfs"]["diff_ids"]


def test_conflicting_paths_fail_naming_both_targets_and_write_nothing(tmp_path: Path) -> None:
    repo = ScratchRepo(tmp_path / "repo", config={"source": {"root_patterns": ["/src"]}})
    repo.write(
        {
            "etc/motd": "from a file\n",
            "src/etc/motd": "from a resource\n",
            "BUILD": """
                file(name="motd_file", source="etc/motd")
                resource(name="motd_resource", source="src/etc/motd")
                oci_image(name="image", dependencies=[":motd_file", ":motd_resource"])
            """,
        }
    )
    result = repo.run("package", "//:image", check=False)
    assert result.returncode != 0
    for fragment in ("//:motd_file", "//:motd_resource", "/etc/motd"):
        assert fragment in result.stderr
    dist = repo.root / "dist"
    assert not dist.exists() or list(dist.rglob("*")) == []


def test_http_sources_are_downloaded_and_a_missing_file_fails_naming_its_target(
    tmp_path: Path,
) -> None:
    served = {"notice.txt": b"downloaded file\n", "banner.txt": b"downloaded resource\n"}
    (tmp_path / "served").mkdir()
    for name, data in served.items():
        (tmp_path / "served" / name).write_bytes(data)

    def http_source(name: str) -> str:
        data = served[name]
        return (f'http_source("{url}/{name}", len={len(data)}, '
                f'sha256="{hashlib.sha256(data).hexdigest()}", filename="{name}")')

    with serve_directory(tmp_path / "served") as url:
        repo = ScratchRepo(tmp_path / "repo", config={"source": {"root_patterns": ["/src"]}})
        repo.write(
            {
                "etc/local.txt": "on disk\n",
                "etc/BUILD": f"""
                    file(name="notice", source={http_source("notice.txt")})
                    file(name="local", source="local.txt")
                    file(name="gone", source="gone.txt")
                """,
                "src/BUILD": f'resource(name="banner", source={http_source("banner.txt")})',
                "BUILD": """
                    oci_image(name="image", dependencies=["etc:notice", "etc:local", "src:banner"])
                    oci_image(name="broken", dependencies=["etc:local", "etc:gone"])
                """,
            }
        )
        broken = repo.run("package", "//:broken", check=False)
        assert broken.returncode != 0
        assert "The 'source' field in target etc:gone must have 1 file" in broken.stderr
        assert not (repo.root / "dist").exists() or list((repo.root / "dist").rglob("*")) == []

        repo.run("package", "//:image")
    image = repo.root / "dist/image.tar"
    assert_valid_image(image, "docker-archive")
    with tarfile.open(image) as outer:
        (manifest,) = json.load(outer.extractfile("manifest.json"))
        contents = {}
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                contents.update({m.name: layer.extractfile(m).read()
                                 for m in layer.getmembers() if m.isfile()})
    assert contents == {
        "etc/notice.txt": served["notice.txt"],
        "etc/local.txt": b"on disk\n",
        "banner.txt": served["banner.txt"],
    }
