"""The manifest a push sends."""

import json

import pytest

from strata.core.oci.image import canonical_json, sha256_digest
from strata.core.oci.push_manifest import (
    as_docker_manifest,
    index_manifests,
    layout_blob,
    layout_manifest,
    manifest_to_push,
)
from strata_harness.registry_images import index_layout


def test_docker_manifest_keeps_the_blobs_and_changes_the_media_types():
    config = b'{"architecture":"amd64","os":"linux"}'
    oci = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + "a" * 64, "size": 10}],
    }  # fmt: skip
    docker = json.loads(as_docker_manifest(canonical_json(oci), config))
    assert docker["mediaType"] == (
        "application/vnd.docker.distribution.manifest.v2+json"
    )
    assert docker["config"]["digest"] == oci["config"]["digest"]
    assert docker["layers"] == [
        {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "digest": "sha256:" + "a" * 64, "size": 10}
    ]  # fmt: skip
    oci["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    with pytest.raises(ValueError, match="zstd"):
        as_docker_manifest(canonical_json(oci), config)


def test_an_index_pushed_as_docker_is_a_manifest_list_of_docker_manifests(tmp_path):
    layout = index_layout(tmp_path, "linux/amd64", "linux/arm64/v8")
    oci_index = layout_manifest(layout)
    assert manifest_to_push(layout, docker=False) == oci_index

    manifest_list = manifest_to_push(layout, docker=True)
    parsed = json.loads(manifest_list)
    assert parsed["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    images = index_manifests(layout, manifest_list)
    oci_images = index_manifests(layout, oci_index)
    assert [json.loads(m)["mediaType"] for m in images] == [
        "application/vnd.docker.distribution.manifest.v2+json"
    ] * 2
    assert parsed["manifests"] == [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "digest": sha256_digest(docker), "size": len(docker), "platform": platform}
        for docker, platform in zip(
            images, [{"os": "linux", "architecture": "amd64"},
                     {"os": "linux", "architecture": "arm64", "variant": "v8"}],
        )
    ]  # fmt: skip
    # Each image as a single image with publish_format="docker" would be pushed.
    for docker, oci in zip(images, oci_images):
        config = layout_blob(layout, json.loads(oci)["config"]["digest"]).read_bytes()
        assert docker == as_docker_manifest(oci, config)
    assert manifest_list == manifest_to_push(layout, docker=True)  # a decision, made alike
