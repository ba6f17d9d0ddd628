"""The distribution API against the real registry and in-test servers."""

import json
import math
import os
import tracemalloc
from pathlib import Path

import pytest

from strata.core.oci import image
from strata.core.oci import media_types
from strata.core.oci.platforms import PlatformError
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import (
    AuthorizationError,
    DigestMismatchError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from strata.core.registry.push_policy import push_image
from strata_harness.registry_images import (
    MiB,
    index_layout,
    layer_files,
    local_image,
    skopeo_copy,
    write_random,
)

OCI_MANIFEST = media_types.OCI_MANIFEST


def test_pull_platform_from_an_index_pushed_by_skopeo(registry, tmp_path):
    layout = index_layout(tmp_path, "linux/amd64", "linux/arm64")
    skopeo_copy(
        f"oci:{layout}:multi", registry.ref("strata/multi:1"), "--all", "--dest-tls-verify=false"
    )
    client = RegistryClient(registry.host)
    media_type, index_bytes, index_digest = client.resolve("strata/multi", "1")
    assert media_type == media_types.OCI_INDEX
    assert index_digest == image.sha256_digest(index_bytes)

    for arch in ("amd64", "arm64"):
        media_type, data, digest = client.pull_manifest(
            "strata/multi", index_digest, f"linux/{arch}"
        )
        assert media_type == OCI_MANIFEST and digest == image.sha256_digest(data)
        manifest = json.loads(data)
        out = tmp_path / "pulled" / arch
        out.mkdir(parents=True)
        for d in [manifest["config"], *manifest["layers"]]:
            path = out / image.digest_hex(d["digest"])
            assert client.fetch_blob("strata/multi", d["digest"], str(path), d["size"]) == d["size"]
            assert image.sha256_digest(path.read_bytes()) == d["digest"]
        config = json.loads((out / image.digest_hex(manifest["config"]["digest"])).read_bytes())
        assert config["architecture"] == arch
        layer = out / image.digest_hex(manifest["layers"][0]["digest"])
        assert layer_files(str(layer)) == {"etc/arch": f"linux/{arch}\n".encode()}
        assert sorted(p.name for p in out.iterdir()) == sorted(
            image.digest_hex(d["digest"]) for d in [manifest["config"], *manifest["layers"]]
        )

    with pytest.raises(
        PlatformError,
        match=f"platform linux/s390x is not in {registry.host}/strata/multi@{index_digest}: "
        "it holds linux/amd64, linux/arm64$",
    ):
        client.pull_manifest("strata/multi", index_digest, "linux/s390x")
    missing = "sha256:" + "0" * 64
    with pytest.raises(
        NotFoundError, match=f"strata/multi@{missing}: manifest {missing} not found"
    ):
        client.pull_manifest("strata/multi", missing)


def test_pull_of_a_platform_with_several_variants_is_ambiguous(registry, tmp_path):
    layout = index_layout(tmp_path, "linux/arm/v6", "linux/arm/v7", "linux/arm64/v8")
    skopeo_copy(
        f"oci:{layout}:multi", registry.ref("strata/arm:1"), "--all", "--dest-tls-verify=false"
    )
    client = RegistryClient(registry.host)
    index_digest = client.resolve("strata/arm", "1")[2]
    with pytest.raises(PlatformError) as e:
        client.pull_manifest("strata/arm", index_digest, "linux/arm")
    assert str(e.value) == (
        f"platform linux/arm is ambiguous in {registry.host}/strata/arm@{index_digest}: "
        "it holds linux/arm/v6, linux/arm/v7"
    )
    for platform, variant in (("linux/arm/v7", "v7"), ("linux/arm64", "v8")):
        manifest = json.loads(client.pull_manifest("strata/arm", index_digest, platform)[1])
        config = tmp_path / variant
        client.fetch_blob("strata/arm", manifest["config"]["digest"], str(config))
        assert json.loads(config.read_bytes())["variant"] == variant


def test_fetch_blob_verifies_and_leaves_nothing_behind(registry, tmp_path):
    data = b"strata digest test " + os.urandom(64)
    digest = image.sha256_digest(data)
    (tmp_path / "blob").write_bytes(data)
    client = RegistryClient(registry.host)
    client.upload_blob("strata/verify", str(tmp_path / "blob"), digest, len(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = str(out_dir / "blob")

    stored = registry.root.glob(
        f"data/**/blobs/sha256/{digest[7:9]}/{image.digest_hex(digest)}/data"
    )
    stored = next(stored)
    stored.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # the registry now serves other bytes
    with pytest.raises(DigestMismatchError, match=f"fetching blob {digest} from .*strata/verify"):
        client.fetch_blob("strata/verify", digest, out)
    assert list(out_dir.iterdir()) == []

    stored.write_bytes(data)
    with pytest.raises(
        DigestMismatchError, match=f"sends {len(data)} bytes, expected {len(data) + 1}"
    ):
        client.fetch_blob("strata/verify", digest, out, len(data) + 1)
    missing = "sha256:" + "1" * 64
    with pytest.raises(NotFoundError, match=f"blob {missing} not found"):
        client.fetch_blob("strata/verify", missing, out)
    assert list(out_dir.iterdir()) == []

    assert client.fetch_blob("strata/verify", digest, out, len(data)) == len(data)
    assert Path(out).read_bytes() == data and os.listdir(out_dir) == ["blob"]


def test_manifests_are_verified(serve):
    good = image.canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})
    other = image.canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [1]})
    pinned = "/v2/app/manifests/" + image.sha256_digest(good)
    answers = {
        pinned: (200, {"Content-Type": OCI_MANIFEST}, other),
        "/v2/app/manifests/lying": (
            200,
            {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": image.sha256_digest(other)},
            good,
        ),
        "/v2/app/manifests/schema1": (
            200,
            {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
            b'{"schemaVersion": 1}',
        ),
        "/v2/app/manifests/untyped": (200, {"Content-Type": "application/json"}, good),
        "/v2/secret/manifests/v1": (403, {}, b'{"errors":[{"code":"DENIED","message":"no"}]}'),
    }
    server = serve(lambda r: answers.get(r.path, (200, {}, b"{}")))
    client = RegistryClient(server.host)
    with pytest.raises(
        DigestMismatchError, match="sent a manifest with digest " + image.sha256_digest(other)
    ):
        client.pull_manifest("app", image.sha256_digest(good))
    with pytest.raises(DigestMismatchError, match="reports digest"):
        client.resolve("app", "lying")
    with pytest.raises(UnsupportedMediaTypeError, match="manifest.v1\\+prettyjws"):
        client.resolve("app", "schema1")
    assert client.resolve("app", "untyped")[0] == OCI_MANIFEST  # from the document's mediaType
    with pytest.raises(
        AuthorizationError,
        match=f"{server.host}/secret:v1: {server.host} denied access \\(DENIED: no\\)",
    ):
        client.resolve("secret", "v1")


def test_chunked_upload(registry, proxy, tmp_path):
    img = local_image(tmp_path / "img", {"data.bin": os.urandom(10_000)})
    (_, config_size, _), (layer, layer_size, layer_path) = img.blobs
    layer_bytes = Path(layer_path).read_bytes()
    chunk = 4096
    assert config_size < chunk < layer_size
    client = RegistryClient(proxy.host, chunk_size=chunk)
    push_image(client, "strata/chunked", ["1"], img.manifest, OCI_MANIFEST, img.blobs)

    patches = [r for r in proxy.requests if r.method == "PATCH"]
    assert len(patches) == math.ceil(layer_size / chunk)
    ranges = [(o, min(o + chunk, layer_size) - 1) for o in range(0, layer_size, chunk)]
    assert [r.headers["Content-Range"] for r in patches] == [f"{a}-{b}" for a, b in ranges]
    assert b"".join(r.body for r in patches) == layer_bytes
    blob_puts = [r for r in proxy.requests if r.method == "PUT" and "/blobs/uploads/" in r.path]
    assert [len(r.body) for r in blob_puts] == [config_size, 0]  # monolithic config; closing PUT
    assert registry.get(f"/v2/strata/chunked/blobs/{layer}") == (200, layer_bytes)


def test_uploads_and_downloads_stream_in_constant_memory(registry, tmp_path):
    big, small, back = tmp_path / "big", tmp_path / "small", tmp_path / "back"
    big_digest, small_digest = write_random(big, 20 * MiB), write_random(small, 5 * MiB)
    client = RegistryClient(registry.host)  # 8 MiB chunks: the big blob goes in 3 PATCHes
    tracemalloc.start()
    try:
        client.upload_blob("strata/big", str(big), big_digest, 20 * MiB)
        client.upload_blob("strata/big", str(small), small_digest, 5 * MiB)
        assert client.fetch_blob("strata/big", big_digest, str(back), 20 * MiB) == 20 * MiB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MiB  # 1 MiB buffers, whatever the blob or chunk size
    assert image.sha256_digest(back.read_bytes()) == big_digest
