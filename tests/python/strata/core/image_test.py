import datetime
import hashlib
import json

import pytest

from strata.core import image

DIFF_IDS = ["sha256:" + c * 64 for c in "abc"]
LAYERS = [
    {"diff_id": d, "digest": d, "size": 10240, "blob_size": 10240, "compression": "none"}
    for d in DIFF_IDS
]
GOLDEN_CONFIG_DIGEST = "sha256:a408bccca3ff3887687fedafab733185126542c3d119fe6fce420164498e0d61"
SPEC_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "1970-01-01T00:00:01Z",
    "config": {"Entrypoint": ["/bin/hello"], "Env": ["A=b"]},
}


def test_config_shape():
    config = image.make_config(SPEC_CONFIG, LAYERS, ["one", "two", "three"])
    assert config == {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/hello"], "Env": ["A=b"]},
        "created": "1970-01-01T00:00:01Z",
        "rootfs": {"type": "layers", "diff_ids": DIFF_IDS},
        "history": [
            {"created": "1970-01-01T00:00:01Z", "created_by": "strata", "comment": c}
            for c in ("one", "two", "three")
        ],
    }


@pytest.mark.parametrize("runtime", [None, {}])
def test_config_object_always_present(runtime):
    spec = dict(SPEC_CONFIG, config=runtime)
    assert image.make_config(spec, [], [])["config"] == {}
    spec.pop("config")
    config = image.make_config(spec, LAYERS[:1], [""])
    assert config["config"] == {}
    assert b'"config":{}' in image.canonical_json(config)


def test_config_defaults_and_variant():
    config = image.make_config({"architecture": "arm64", "variant": "v8"}, [], [])
    assert (config["architecture"], config["os"], config["variant"]) == ("arm64", "linux", "v8")
    assert config["created"] == image.DEFAULT_CREATED
    assert image.platform_of(config) == {"architecture": "arm64", "os": "linux", "variant": "v8"}


def test_history_follows_layers():
    config = image.make_config(SPEC_CONFIG, list(reversed(LAYERS)), ["c", "b", "a"])
    assert config["rootfs"]["diff_ids"] == list(reversed(DIFF_IDS))
    assert len(config["history"]) == len(config["rootfs"]["diff_ids"])
    assert [h["comment"] for h in config["history"]] == ["c", "b", "a"]
    with pytest.raises(ValueError, match="3 layers but 2 history comments"):
        image.make_config(SPEC_CONFIG, LAYERS, ["a", "b"])


@pytest.mark.parametrize(
    "created",
    ["1970-01-01T00:00:01Z", "2023-06-30T23:59:59.123456789Z", "2024-02-29T12:00:00+05:30"],
)
def test_created_rfc3339(created):
    assert image.make_config(dict(SPEC_CONFIG, created=created), [], [])["created"] == created


@pytest.mark.parametrize(
    "created",
    [
        "1970-01-01",
        "1970-01-01 00:00:01Z",
        "1970-01-01t00:00:01z",
        "2023-02-29T00:00:00Z",
        "2023-01-01T24:00:00Z",
        "2023-01-01T00:00:00+24:00",
        "2023-01-01T00:00:00",
        "yesterday",
        0,
    ],
)
def test_created_rejected(created):
    with pytest.raises(ValueError, match="RFC 3339"):
        image.make_config(dict(SPEC_CONFIG, created=created), [], [])


def test_created_now_is_current_utc():
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    created = image.make_config(dict(SPEC_CONFIG, created="now"), LAYERS[:1], ["x"])["created"]
    after = datetime.datetime.now(datetime.timezone.utc)
    parsed = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    assert before <= parsed <= after
    assert image.resolve_created(created) == created


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"Entrypoint": ["/x"]}, "unknown keys"),
        ({"config": []}, "config.config must be an object"),
        ({"architecture": ""}, "config.architecture"),
        ({"os": 3}, "config.os"),
    ],
)
def test_config_rejects_bad_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        image.make_config(spec, [], [])


def test_canonical_json_is_fixed():
    data = {"b": [1, "é"], "a": {"z": None, "y": True}}
    assert image.canonical_json(data) == b'{"a":{"y":true,"z":null},"b":[1,"\\u00e9"]}'
    with pytest.raises(ValueError):
        image.canonical_json({"x": float("nan")})


def test_golden_config_digest():
    """Pins the serialisation: a change here changes every image's digest and tag."""
    config_bytes = image.canonical_json(image.make_config(SPEC_CONFIG, LAYERS, ["a", "b", "c"]))
    assert image.sha256_digest(config_bytes) == GOLDEN_CONFIG_DIGEST


@pytest.mark.parametrize("oci", [True, False])
def test_manifest_shape(oci):
    config_bytes = image.canonical_json(image.make_config(SPEC_CONFIG, LAYERS, ["a", "b", "c"]))
    layers = [
        dict(LAYERS[0]),
        dict(LAYERS[1], digest="sha256:" + "d" * 64, blob_size=99, compression="gzip"),
    ]
    manifest = image.make_manifest(config_bytes, layers, oci)
    assert manifest["schemaVersion"] == 2
    assert manifest["config"] == {
        "mediaType": image.MEDIA_TYPE_OCI_CONFIG if oci else image.MEDIA_TYPE_DOCKER_CONFIG,
        "digest": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        "size": len(config_bytes),
    }
    if oci:
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        types = [image.MEDIA_TYPE_OCI_LAYER, image.MEDIA_TYPE_OCI_LAYER_GZIP]
    else:
        assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        types = [image.MEDIA_TYPE_DOCKER_LAYER, image.MEDIA_TYPE_DOCKER_LAYER_GZIP]
    assert manifest["layers"] == [
        {"mediaType": types[0], "digest": DIFF_IDS[0], "size": 10240},
        {"mediaType": types[1], "digest": "sha256:" + "d" * 64, "size": 99},
    ]


def test_layer_media_types():
    assert image.layer_media_type("zstd", True) == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert (
        image.layer_media_type("gzip", False) == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    with pytest.raises(ValueError, match="no Docker v2s2 layer media type for compression 'zstd'"):
        image.make_manifest(b"{}", [dict(LAYERS[0], compression="zstd")], oci=False)
    with pytest.raises(ValueError, match="'xz'"):
        image.layer_media_type("xz", True)


def test_index_shape():
    manifest_bytes = b'{"schemaVersion":2}'
    index = image.make_index(manifest_bytes, "v1", {"architecture": "amd64", "os": "linux"})
    assert index == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + hashlib.sha256(manifest_bytes).hexdigest(),
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    assert "platform" not in image.make_index(manifest_bytes, "v1")["manifests"][0]


def test_content_tag_is_stable():
    def tag_of(spec):
        config = image.make_config(spec, LAYERS, ["a", "b", "c"])
        return image.content_tag(image.sha256_digest(image.canonical_json(config)))

    tag = tag_of(SPEC_CONFIG)
    assert tag == tag_of(json.loads(json.dumps(SPEC_CONFIG)))
    assert tag == GOLDEN_CONFIG_DIGEST[len("sha256:") :][:32]
    assert len(tag) == 32 and image.validate_tag(tag) == tag
    assert tag != tag_of(dict(SPEC_CONFIG, config={"Env": ["A=c"]}))


@pytest.mark.parametrize(
    "digest", ["a" * 64, "sha256:" + "A" * 64, "sha256:abc", "sha512:" + "a" * 64, None]
)
def test_content_tag_rejects_non_digests(digest):
    with pytest.raises(ValueError, match="not a sha256 digest"):
        image.content_tag(digest)


@pytest.mark.parametrize(
    "repository",
    [
        "app",
        "app/image",
        "a/b/c",
        "my_app/x--y.v2",
        "a__b",
        "registry.example.com/app",
        "localhost/app",
        "localhost:5000/team/app",
        "Registry.Example.com:443/app",
        "127.0.0.1:5000/app",
    ],
)
def test_valid_repositories(repository):
    assert image.validate_repository(repository) == repository


@pytest.mark.parametrize(
    "repository",
    [
        "",
        "App",
        "app/Image",
        "app/",
        "/app",
        "app//image",
        "_app",
        "app_",
        "a___b",
        "a..b",
        "app:tag",
        "app@sha256",
        "exa mple",
        "-host.com/app",
        "host.com:port/app",
        "a" * 256,
        None,
    ],
)
def test_invalid_repositories(repository):
    with pytest.raises(ValueError, match="repository"):
        image.validate_repository(repository)


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_x", "A-b_c.d", "0", "a" * 128])
def test_valid_tags(tag):
    assert image.validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a" * 129, "a:b", "a/b", "é", "a b", None])
def test_invalid_tags(tag):
    with pytest.raises(ValueError, match="invalid tag"):
        image.validate_tag(tag)


def test_repo_tag():
    assert image.repo_tag("localhost:5000/app", "v1") == "localhost:5000/app:v1"
    with pytest.raises(ValueError, match="invalid tag"):
        image.repo_tag("app", "v:1")
