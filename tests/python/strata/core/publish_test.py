import json

import pytest

from strata.core.image import canonical_json, sha256_digest
from strata.core.publish import PushedBlobs, as_docker_manifest


def test_the_repository_holding_most_blobs_is_the_mount_source(tmp_path):
    record = PushedBlobs(tmp_path / "pushed.json")
    record.record("reg:5000", "team/base", ["sha256:a", "sha256:b"])
    record.record("reg:5000", "team/other", ["sha256:c"])
    record.record("elsewhere:443", "x/y", ["sha256:a", "sha256:b", "sha256:c"])

    reloaded = PushedBlobs(tmp_path / "pushed.json")
    assert reloaded.best_source("reg:5000", "team/app", ["sha256:a", "sha256:b", "sha256:c"]) == (
        "team/base"
    )
    # The target repository itself is never a source; unknown blobs give no source.
    assert reloaded.best_source("reg:5000", "team/base", ["sha256:a", "sha256:b"]) is None
    assert reloaded.best_source("reg:5000", "team/app", ["sha256:z"]) is None


def test_a_missing_or_corrupt_record_is_empty(tmp_path):
    path = tmp_path / "pushed.json"
    assert PushedBlobs(path).best_source("r", "a/b", ["sha256:a"]) is None
    path.write_text("{not json")
    assert PushedBlobs(path).best_source("r", "a/b", ["sha256:a"]) is None


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
