import pytest

from strata.core.errors import InvalidInput
from strata.core.oci import media_types as mt


def test_every_media_type_is_one_kind():
    kinds = {
        mt.OCI_INDEX: "index", mt.DOCKER_MANIFEST_LIST: "index",
        mt.OCI_MANIFEST: "manifest", mt.DOCKER_MANIFEST: "manifest",
        mt.OCI_CONFIG: "config", mt.DOCKER_CONFIG: "config",
        mt.OCI_LAYER: "layer", mt.OCI_LAYER_GZIP: "layer", mt.OCI_LAYER_ZSTD: "layer",
        mt.DOCKER_LAYER: "layer", mt.DOCKER_LAYER_GZIP: "layer",
    }
    tests = {"index": mt.is_index, "manifest": mt.is_manifest, "config": mt.is_config,
             "layer": mt.is_layer}
    for media_type, kind in kinds.items():
        assert [k for k, test in tests.items() if test(media_type)] == [kind], media_type


@pytest.mark.parametrize("compression, oci, media_type", [
    ("none", True, "application/vnd.oci.image.layer.v1.tar"),
    ("gzip", True, "application/vnd.oci.image.layer.v1.tar+gzip"),
    ("zstd", True, "application/vnd.oci.image.layer.v1.tar+zstd"),
    ("none", False, "application/vnd.docker.image.rootfs.diff.tar"),
    ("gzip", False, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
])
def test_layer_media_type_and_compression_are_inverse(compression, oci, media_type):
    assert mt.layer_media_type(compression, oci) == media_type
    assert mt.compression_of(media_type) == compression


def test_docker_has_no_zstd_and_unknown_types_are_refused():
    with pytest.raises(InvalidInput, match="no Docker v2s2 layer media type for compression 'zstd'"):
        mt.layer_media_type("zstd", False)
    with pytest.raises(InvalidInput, match="unsupported layer media type application/x-tar"):
        mt.compression_of("application/x-tar")
