"""The manifest a push sends."""

import json

import pytest

from strata.core.oci.image import canonical_json, sha256_digest
from strata.core.oci.push_manifest import as_docker_manifest


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
