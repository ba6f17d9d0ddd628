import datetime
import hashlib
import json
import re
import time

import pytest

from strata.core.oci import image
from strata.core.oci import media_types

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
        "mediaType": media_types.OCI_CONFIG if oci else media_types.DOCKER_CONFIG,
        "digest": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        "size": len(config_bytes),
    }
    if oci:
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        types = [media_types.OCI_LAYER, media_types.OCI_LAYER_GZIP]
    else:
        assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        types = [media_types.DOCKER_LAYER, media_types.DOCKER_LAYER_GZIP]
    assert manifest["layers"] == [
        {"mediaType": types[0], "digest": DIFF_IDS[0], "size": 10240},
        {"mediaType": types[1], "digest": "sha256:" + "d" * 64, "size": 99},
    ]


def test_layer_media_types():
    assert media_types.layer_media_type("zstd", True) == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert (
        media_types.layer_media_type("gzip", False) == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    with pytest.raises(ValueError, match="no Docker v2s2 layer media type for compression 'zstd'"):
        image.make_manifest(b"{}", [dict(LAYERS[0], compression="zstd")], oci=False)
    with pytest.raises(ValueError, match="'xz'"):
        media_types.layer_media_type("xz", True)


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


BASE_RUNTIME = {
    "Env": ["PATH=/usr/bin:/bin", "LANG=C", "TZ=UTC"],
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "WorkingDir": "/srv",
    "User": "101",
    "ExposedPorts": {"80/tcp": {}},
    "Volumes": {"/var/cache": {}},
    "Labels": {"maintainer": "base", "version": "1"},
    "StopSignal": "SIGQUIT",
    "Healthcheck": {"Test": ["CMD", "true"]},
    "OnBuild": ["RUN make"],
    "Hostname": "builder",
    "Image": "sha256:" + "e" * 64,
}
INHERITED = {k: v for k, v in BASE_RUNTIME.items() if k not in ("OnBuild", "Hostname", "Image")}


@pytest.mark.parametrize(
    "own, expected",
    [
        # Nothing set: everything that describes how to run the base is inherited.
        ({}, INHERITED),
        # Env: in place for known keys (base order kept), appended in own order otherwise.
        (
            {"Env": ["Z=1", "LANG=C.UTF-8", "A=2", "PATH=/app/bin"]},
            dict(INHERITED, Env=["PATH=/app/bin", "LANG=C.UTF-8", "TZ=UTC", "Z=1", "A=2"]),
        ),
        # The same own key twice: the later value wins, still in one place.
        ({"Env": ["X=1", "X=2"]}, dict(INHERITED, Env=BASE_RUNTIME["Env"] + ["X=2"])),
        # A new Entrypoint resets Cmd, as Docker's ENTRYPOINT does.
        ({"Entrypoint": ["/app"]}, {k: v for k, v in dict(INHERITED, Entrypoint=["/app"]).items()
                                    if k != "Cmd"}),
        ({"Entrypoint": ["/app"], "Cmd": ["--serve"]},
         dict(INHERITED, Entrypoint=["/app"], Cmd=["--serve"])),
        # A new Cmd alone keeps the base's Entrypoint.
        ({"Cmd": ["nginx", "-t"]}, dict(INHERITED, Cmd=["nginx", "-t"])),
        # An empty Cmd is set (to nothing); null is unset.
        ({"Cmd": []}, dict(INHERITED, Cmd=[])),
        ({"Cmd": None, "User": None}, INHERITED),
        # Labels merge, own winning per key.
        ({"Labels": {"version": "2", "app": "x"}},
         dict(INHERITED, Labels={"maintainer": "base", "version": "2", "app": "x"})),
        # The rest are replaced whole, ExposedPorts and Volumes included.
        (
            {"WorkingDir": "/app", "User": "0", "ExposedPorts": {"8080/tcp": {}}, "Volumes": {},
             "StopSignal": "SIGTERM", "Healthcheck": {"Test": ["NONE"]}},
            dict(INHERITED, WorkingDir="/app", User="0", ExposedPorts={"8080/tcp": {}},
                 Volumes={}, StopSignal="SIGTERM", Healthcheck={"Test": ["NONE"]}),
        ),
        # Keys the base lacks are the image's own.
        ({"ArgsEscaped": True}, dict(INHERITED, ArgsEscaped=True)),
    ],
)
def test_inherit_config(own, expected):
    before = json.dumps(BASE_RUNTIME), json.dumps(own)
    assert image.inherit_config(BASE_RUNTIME, own) == expected
    assert (json.dumps(BASE_RUNTIME), json.dumps(own)) == before  # inputs untouched


@pytest.mark.parametrize(
    "base, own, expected",
    [
        # A base without Env, Labels or Cmd (Docker writes nulls).
        ({"Env": None, "Cmd": None, "Labels": None}, {"Env": ["A=1"], "Labels": {"a": "b"}},
         {"Env": ["A=1"], "Labels": {"a": "b"}}),
        ({}, {}, {}),
        # An own key replaces the base's last entry for it, as Docker does.
        ({"Env": ["A=1", "B=2", "A=3"]}, {"Env": ["A=4"]}, {"Env": ["A=1", "B=2", "A=4"]}),
        # A base entry without "=" is kept verbatim (and named by all of it).
        ({"Env": ["WEIRD", "A=1"]}, {"Env": ["WEIRD=x"]}, {"Env": ["WEIRD=x", "A=1"]}),
        # Only the part before the first "=" is the name.
        ({"Env": ["A=b=c"]}, {"Env": ["A=d=e"]}, {"Env": ["A=d=e"]}),
    ],
)
def test_inherit_config_edges(base, own, expected):
    assert image.inherit_config(base, own) == expected


@pytest.mark.parametrize(
    "base, own, message",
    [
        ({}, {"Env": ["NOEQUALS"]}, "KEY=VALUE"),
        ({}, {"Env": "A=1"}, "config.Env must be a list of strings"),
        ({"Env": [1]}, {"Env": ["A=1"]}, "base config's Env"),
        ({"Labels": []}, {"Labels": {"a": "b"}}, "base config's Labels"),
        ({}, {"Labels": {"a": 1}}, "config.Labels must be an object of strings"),
        ([], {}, "two config objects"),
    ],
)
def test_inherit_config_rejects(base, own, message):
    with pytest.raises(ValueError, match=message):
        image.inherit_config(base, own)


BASE_CONFIG = {
    "architecture": "arm64",
    "variant": "v8",
    "os": "linux",
    "author": "someone",
    "created": "2020-01-01T00:00:00Z",
    "config": {"Env": ["A=1"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "f" * 64]},
    "history": [{"created_by": "ADD rootfs"}, {"created_by": "CMD sh", "empty_layer": True}],
}


def test_config_on_a_base():
    spec = {"created": "1970-01-01T00:00:01Z", "config": {"Env": ["B=2"]}}
    config = image.make_config(spec, LAYERS[:2], ["one", "two"], BASE_CONFIG)
    assert config == {
        # The platform comes from the base when the spec leaves it out.
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {"Env": ["A=1", "B=2"], "Cmd": ["sh"]},
        "created": "1970-01-01T00:00:01Z",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "f" * 64] + DIFF_IDS[:2]},
        "history": BASE_CONFIG["history"] + [
            {"created": "1970-01-01T00:00:01Z", "created_by": "strata", "comment": c}
            for c in ("one", "two")
        ],
    }
    same = dict(spec, architecture="arm64", os="linux", variant="v8")
    assert image.make_config(same, LAYERS[:2], ["one", "two"], BASE_CONFIG) == config


@pytest.mark.parametrize(
    "spec, base, message",
    [
        ({"architecture": "amd64"}, BASE_CONFIG, "config.architecture is 'amd64' but the base"),
        ({"os": "windows"}, BASE_CONFIG, "config.os is 'windows' but the base"),
        ({"variant": "v7"}, BASE_CONFIG, "config.variant is 'v7' but the base"),
        ({}, dict(BASE_CONFIG, rootfs={}), "no rootfs.diff_ids list"),
        ({}, dict(BASE_CONFIG, rootfs={"diff_ids": ["x"]}), "not a sha256 digest"),
        ({}, dict(BASE_CONFIG, history={}), "history must be a list"),
        ({}, dict(BASE_CONFIG, config=[]), "config must be an object"),
    ],
)
def test_config_on_a_base_rejects(spec, base, message):
    with pytest.raises(ValueError, match=message):
        image.make_config(spec, [], [], base)


@pytest.mark.parametrize("created, seconds", [
    ("1970-01-01T00:00:01Z", 1),
    ("2023-05-06T07:08:09.123+05:30", 1683337089),
    ("2242-03-16T12:56:31Z", 8 ** 11 - 1),
])
def test_epoch_seconds_is_the_layers_mtime_of_a_created_time(created, seconds):
    """One RFC 3339 parser for `created` (config) and `mtime` (the layers' entries)."""
    assert image.epoch_seconds(created) == seconds


@pytest.mark.parametrize("created", ["1969-12-31T23:59:59.9-00:00", "2242-03-16T12:56:32Z"])
def test_epoch_seconds_refuses_what_a_tar_header_cannot_hold(created):
    with pytest.raises(ValueError, match=re.escape(
            f"the time {created!r}, as the layers' mtime, must be from 1970-01-01T00:00:00Z to "
            "2242-03-16T12:56:31Z")):
        image.epoch_seconds(created)


def test_epoch_seconds_takes_what_resolve_created_takes():
    assert abs(image.epoch_seconds("now") - time.time()) < 5
    with pytest.raises(ValueError, match="RFC 3339"):
        image.epoch_seconds("2023-02-30T00:00:00Z")


@pytest.mark.parametrize("architecture", image.GO_ARCHITECTURES)
def test_go_architectures_are_valid(architecture):
    assert image.validate_architecture(architecture) == architecture


@pytest.mark.parametrize("name, hint", [
    ("aarch64", "Go calls it 'arm64'"),
    ("x86_64", "Go calls it 'amd64'"),
    ("armhf", "Go calls it 'arm' \\(variant 'v7'\\)"),
    ("arm65", "expected one of 386, amd64,"),
])
def test_unknown_architectures_are_refused_with_gos_name(name, hint):
    with pytest.raises(ValueError, match=f"unknown architecture '{name}': {hint}"):
        image.validate_architecture(name)


@pytest.mark.parametrize("architecture, variant, normal", [
    ("arm64", "v8", "v8"), ("arm64", "8", "v8"), ("arm64", "v8.0", "v8"), ("arm64", "v8.2", "v8.2"),
    ("arm", "7", "v7"), ("arm", "v6", "v6"), ("amd64", "v3", "v3"),
])
def test_variants_are_normalised_as_index_clients_match_them(architecture, variant, normal):
    assert image.normal_variant(architecture, variant) == normal


@pytest.mark.parametrize("architecture, variant, problem", [
    ("arm64", "v7", "unknown variant 'v7' of 'arm64': expected v8,"),
    ("arm", "v9", "unknown variant 'v9' of 'arm': expected v5, v6, v7 or v8"),
    ("amd64", "v5", "unknown variant 'v5' of 'amd64'"),
    ("s390x", "z15", "architecture 's390x' has no variants"),
])
def test_variants_an_architecture_lacks_are_refused(architecture, variant, problem):
    with pytest.raises(ValueError, match=problem):
        image.normal_variant(architecture, variant)


def test_variant_is_in_the_config_only_when_set():
    without = image.make_config({"architecture": "arm64", "os": "linux"}, [], [])
    assert "variant" not in without
    platform = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    with_variant = image.make_config(platform, [], [])
    assert with_variant["variant"] == "v8"
    assert image.platform_of(with_variant) == platform


def test_platform_conflicts_with_the_base():
    base = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert image.platform_conflicts({"architecture": "arm64", "os": "linux"}, base) == []
    assert image.platform_conflicts({"architecture": "amd64", "os": "linux"}, base) == [
        ("architecture", "amd64", "arm64")
    ]
