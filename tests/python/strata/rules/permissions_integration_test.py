"""`permissions` on `oci_image` and `oci_layer`, built by Pants on a scratch repo and checked with
real tools: the strict check, podman running as user 1000, the layer tars read back."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata_harness import (
    ScratchRepo,
    assert_valid_image,
    ran_processes,
    read_docker_archive,
    require_tool,
)

SCRIPT = "echo written > /var/lib/app/out && cat /var/lib/app/out && stat -c '%a %u:%g' /var/lib/app"
IMAGE_PERMISSIONS = '{"/var/lib/app": {"mode": "2775", "uid": 1000, "gid": 1000}}'
LAYER_PERMISSIONS = """{
        "/opt/tools/**": {"uid": 1000, "gid": 1000, "uname": "app"},
        "/opt/tools/su": {"mode": "4755", "uid": 0, "gid": 0},
    }"""
BUILD = """
    file(name="busybox", source="bin/busybox")
    file(name="motd", source="etc/motd")
    files(name="files", sources=["opt/tools/*"])
    oci_layer(name="tools", dependencies=[":files"], permissions=LAYER_PERMISSIONS)
    oci_image(
        name="image",
        dependencies=[":busybox", ":motd", ":tools"],
        max_layers=3,  # a customisation layer and two more: the oci_layer keeps one to itself
        directories={"/var/lib/app": "0755"},
        permissions=IMAGE_PERMISSIONS,
        user="1000",
        entrypoint=["/bin/busybox", "sh", "-c", SCRIPT],
    )
"""


def build_file(image_permissions: str = IMAGE_PERMISSIONS,
               layer_permissions: str = LAYER_PERMISSIONS) -> str:
    return (BUILD.replace("LAYER_PERMISSIONS", layer_permissions)
            .replace("IMAGE_PERMISSIONS", image_permissions).replace("SCRIPT", repr(SCRIPT)))


@dataclass(frozen=True)
class Built:
    repo: ScratchRepo
    cold: subprocess.CompletedProcess[str]
    image: Path  # a copy of the cold build's image: later tests rebuild in the repo


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("permissions")
    repo = ScratchRepo(base / "repo", isolated_cache=True)
    repo.write({
        "bin/busybox": Path(require_tool("busybox")).read_bytes(),
        "etc/motd": "hello\n",
        "opt/tools/su": "#!/bin/sh\n",
        "opt/tools/notes.txt": "owned by app\n",
        "BUILD": build_file(),
    })
    (repo.root / "bin/busybox").chmod(0o755)
    cold = repo.run("package", "//:image")
    return Built(repo, cold, Path(shutil.copy(repo.root / "dist/image.tar", base / "image.tar")))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_user_1000_writes_into_its_permissions_owned_directory(built: Built, run_image) -> None:
    assert_valid_image(built.image, "docker-archive")
    assert run_image(built.image) == (0, "written\n2775 1000:1000\n")


def test_the_layers_hold_the_modes_and_owners(built: Built) -> None:
    _, config, layers = read_docker_archive(built.image)
    # Three nodes of equal popularity in two layers: by key, //:tools would share the second,
    # but its permissions keep it alone.
    assert [h["comment"] for h in config["history"]] == [
        "//:tools", "//:busybox, //:motd", "customisation layer"]

    def meta(layer: int, path: str) -> tuple:
        m = layers[layer][path]
        return oct(m.mode), m.uid, m.gid, m.uname, m.gname

    # The oci_layer's rules, the later one winning for su; an id without a name leaves it empty.
    assert meta(0, "opt/tools/su") == ("0o4755", 0, 0, "", "")
    assert meta(0, "opt/tools/notes.txt") == ("0o644", 1000, 1000, "app", "")
    assert meta(0, "opt") == ("0o755", 0, 0, "root", "root")  # not below /opt/tools
    assert meta(2, "var/lib/app") == ("0o2775", 1000, 1000, "", "")
    assert meta(2, "var/lib") == ("0o755", 0, 0, "root", "root")
    assert meta(1, "bin/busybox") == ("0o755", 0, 0, "root", "root")


def test_a_change_of_permissions_reruns_only_the_affected_layer(built: Built) -> None:
    # The cold build ran for real (its store is its own), or the checks below prove nothing.
    assert len(ran_processes(built.cold, "Building //:image")) == 3
    repo, image = built.repo, built.repo.root / "dist/image.tar"

    repo.write({"BUILD": build_file(
        image_permissions='{"/var/lib/app": {"mode": "0775", "uid": 1000, "gid": 1000}}')})
    changed = repo.run("package", "//:image")
    assert ran_processes(changed, "Building ") == ["Building //:image: customisation layer"]
    _, config, layers = read_docker_archive(image)
    assert layers[2]["var/lib/app"].mode == 0o775

    repo.write({"BUILD": build_file(layer_permissions='{"/opt/tools/su": {"mode": "4750"}}')})
    changed = repo.run("package", "//:image")
    assert ran_processes(changed, "Building ") == ["Building //:image: layer 1 (//:tools)"]

    repo.write({"BUILD": build_file()})  # the same inputs again: the same bytes
    repo.run("package", "//:image")
    assert sha256(image) == sha256(built.image)


def test_a_rule_that_matches_nothing_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    repo = ScratchRepo(tmp_path / "repo")
    repo.write({
        "etc/motd": "hello\n",
        "BUILD": """
            file(name="motd", source="etc/motd")
            oci_image(name="image", dependencies=[":motd"], directories={"/var/lib/app": "0755"},
                      permissions={"/var/lib/app/**": {"uid": 1000}})
        """,
    })
    result = repo.run("package", "//:image", check=False)
    assert result.returncode != 0
    assert ("The `permissions` field of //:image is invalid: permissions[0]: "
            "'/var/lib/app/**' matches nothing in this layer, which holds what //:image adds on "
            "top") in result.stderr
    dist = repo.root / "dist"
    assert not dist.exists() or list(dist.rglob("*")) == []
