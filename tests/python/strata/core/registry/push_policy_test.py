"""Which blobs a push skips, mounts and uploads, and in which order it pushes."""

import json
import os
import re
import urllib.parse
from pathlib import Path

import pytest

from strata.core.oci import media_types
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import (
    DigestMismatchError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from strata.core.oci import image
from strata.core.registry.push_policy import PushedBlobs, PushReport, push_image, push_index
from strata_harness import Fault, assert_valid_image
from strata.core.oci.push_manifest import index_manifests, manifest_blobs, manifest_to_push
from strata_harness.registry_images import index_layout, local_image, skopeo_copy

OCI_MANIFEST = media_types.OCI_MANIFEST


def test_push_image_is_valid_and_a_second_push_uploads_nothing(registry, proxy, tmp_path):
    files = {"bin/hello": (b"#!/bin/sh\necho hi\n", 0o755), "etc/motd": b"hello\n"}
    img = local_image(tmp_path / "img", files, entrypoint=["/bin/hello"])
    tags = ("v1", "latest")

    report = push_image(
        RegistryClient(proxy.host), "strata/push", tags, img.manifest, OCI_MANIFEST, img.blobs
    )
    assert report == PushReport(img.digest, tags, 0, 0, 2, img.size)
    manifest_puts = [
        r.path for r in proxy.requests if r.method == "PUT" and "/manifests/" in r.path
    ]
    assert manifest_puts == [f"/v2/strata/push/manifests/{ref}" for ref in (img.digest, *tags)]

    assert registry.inspect("strata/push:v1")["Digest"] == img.digest
    copy = tmp_path / "copy"
    skopeo_copy(registry.ref("strata/push:latest"), f"oci:{copy}:t", "--src-tls-verify=false")
    assert_valid_image(copy, ref="t")

    proxy.requests.clear()
    again = push_image(
        RegistryClient(proxy.host), "strata/push", tags, img.manifest, OCI_MANIFEST, img.blobs
    )
    assert again == PushReport(img.digest, tags, 2, 0, 0, 0)
    assert proxy.count("POST", "/v2/strata/push/blobs/uploads/") == 0
    assert proxy.count("PATCH", "/") == 0
    assert proxy.count("HEAD", "/v2/strata/push/blobs/") == 2


def test_push_mounts_layers_from_another_repository(registry, proxy, tmp_path):
    shared = {"usr/share/common.txt": b"shared between images\n" * 64}
    first = local_image(tmp_path / "a", shared, entrypoint=["/a"])
    second = local_image(tmp_path / "b", shared, entrypoint=["/b"])
    (config, config_size, _), layer = second.blobs[0], second.blobs[1][0]
    assert first.blobs[1][0] == layer and first.blobs[0][0] != config
    client = RegistryClient(proxy.host)
    push_image(client, "strata/mount-a", ["1"], first.manifest, OCI_MANIFEST, first.blobs)

    proxy.requests.clear()
    report = push_image(
        client,
        "strata/mount-b",
        ["1"],
        second.manifest,
        OCI_MANIFEST,
        second.blobs,
        known_in="strata/mount-a",
    )
    counts = (report.blobs_mounted, report.blobs_uploaded, report.bytes_uploaded)
    assert counts == (1, 1, config_size)
    # The config is not in mount-a: its upload goes on in the session the declined mount opened.
    posts = [r.path for r in proxy.requests if r.method == "POST"]
    assert len(posts) == 2
    assert all("mount=sha256" in p and "from=strata%2Fmount-a" in p for p in posts)
    assert registry.inspect("strata/mount-b:1")["Layers"] == [layer]

    assert client.mount_blob("strata/mount-c", layer, "strata/mount-a") is None
    assert client.blob_exists("strata/mount-c", layer)
    proxy.requests.clear()
    session = client.mount_blob("strata/mount-c", config, "strata/mount-a")
    assert session is not None
    client.cancel_upload("strata/mount-c", session)
    assert proxy.count("DELETE", "/v2/strata/mount-c/blobs/uploads/") == 1
    assert not client.blob_exists("strata/mount-c", config)


def test_failed_push_leaves_no_tag(registry, tmp_path):
    img = local_image(tmp_path / "img", {"etc/motd": b"original\n"})
    layer_path = Path(img.blobs[1][2])
    data = layer_path.read_bytes()
    layer_path.write_bytes(data.replace(b"original", b"tampered"))  # same size, other digest
    client = RegistryClient(registry.host)
    with pytest.raises(DigestMismatchError, match=re.escape(img.blobs[1][0])):
        push_image(client, "strata/partial", ["v1"], img.manifest, OCI_MANIFEST, img.blobs)
    with pytest.raises(NotFoundError, match="manifest v1 not found"):
        client.resolve("strata/partial", "v1")


def test_push_validates_its_input_before_sending_anything(tmp_path):
    img = local_image(tmp_path / "img", {"a": b"a"})
    client = RegistryClient("127.0.0.1:9")  # nothing listens: any request would fail
    with pytest.raises(ValueError, match="missing: \\['sha256:"):
        push_image(client, "strata/x", ["1"], img.manifest, OCI_MANIFEST, img.blobs[:1])
    wrong_size = [img.blobs[0], (img.blobs[1][0], 1, img.blobs[1][2])]
    with pytest.raises(ValueError, match="has size 1"):
        push_image(client, "strata/x", ["1"], img.manifest, OCI_MANIFEST, wrong_size)
    with pytest.raises(ValueError, match="not the string"):
        push_image(client, "strata/x", "latest", img.manifest, OCI_MANIFEST, img.blobs)
    with pytest.raises(ValueError, match="invalid tag"):
        push_image(client, "strata/x", ["-bad"], img.manifest, OCI_MANIFEST, img.blobs)
    with pytest.raises(UnsupportedMediaTypeError, match="image manifests"):
        push_image(client, "strata/x", ["1"], img.manifest, media_types.OCI_INDEX, img.blobs)
    with pytest.raises(UnsupportedMediaTypeError, match="text/plain"):
        client.push_manifest("strata/x", "1", "text/plain", img.manifest)
    with pytest.raises(DigestMismatchError, match="the manifest's digest is"):
        client.push_manifest("strata/x", "sha256:" + "0" * 64, OCI_MANIFEST, img.manifest)
    with pytest.raises(ValueError, match="mediaType"):
        client.push_manifest("strata/x", "1", media_types.DOCKER_MANIFEST, img.manifest)


def test_push_retries_dropped_uploads_and_answers(registry, proxy, tmp_path, retry_warnings):
    quote = urllib.parse.quote
    img = local_image(tmp_path / "img", {"data.bin": os.urandom(10_000)})
    (config, _, _), (layer, _, _) = img.blobs
    faults = [
        # The connection drops while the config, then a chunk of the layer, goes up...
        Fault("cut_request", "PUT", f"/blobs/uploads/.*digest={quote(config)}", after=100),
        Fault("cut_request", "PATCH", "/blobs/uploads/", after=1000),
        # ...and the registry completes the layer and takes the manifest, but its answers
        # are lost: the upload session is gone, so only a new one can succeed.
        Fault("no_response", "PUT", f"/blobs/uploads/.*digest={quote(layer)}"),
        Fault("no_response", "PUT", f"/manifests/{img.digest}"),
    ]
    for fault in faults:
        proxy.add(fault)
    client = RegistryClient(proxy.host, chunk_size=4096, backoff=0.01)
    report = push_image(
        client, "strata/faults-push", ["v1"], img.manifest, OCI_MANIFEST, img.blobs
    )

    assert [f.applied for f in faults] == [1] * len(faults)
    assert report.digest == img.digest
    assert registry.inspect("strata/faults-push:v1")["Digest"] == img.digest
    warnings = retry_warnings()
    for what in (f"uploading blob {config}", f"uploading blob {layer}", "pushing manifest"):
        assert any(w.startswith(what) for w in warnings), (what, warnings)
    copy = tmp_path / "copy"
    skopeo_copy(registry.ref("strata/faults-push:v1"), f"oci:{copy}:t", "--src-tls-verify=false")
    assert_valid_image(copy, ref="t")


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


def an_index(tmp_path):
    """Two images sharing no blob, and an OCI image index over them."""
    images = [
        local_image(tmp_path / arch, {"etc/arch": f"{arch}\n".encode()}, entrypoint=["/a"])
        for arch in ("amd64", "arm64")
    ]
    index = image.canonical_json(image.make_image_index([
        {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": len(img.manifest),
         "platform": {"os": "linux", "architecture": arch}}
        for img, arch in zip(images, ("amd64", "arm64"))
    ]))  # fmt: skip
    return images, index


def test_push_index_pushes_images_then_the_index_then_tags(registry, proxy, tmp_path):
    images, index = an_index(tmp_path)
    digest = image.sha256_digest(index)
    pairs = [(img.manifest, img.blobs) for img in images]
    size = sum(img.size for img in images)

    report = push_index(RegistryClient(proxy.host), "strata/index", ["v1"], index, pairs)
    assert report == PushReport(digest, ("v1",), 0, 0, 4, size)
    manifest_puts = [
        r.path.rsplit("/", 1)[1] for r in proxy.requests
        if r.method == "PUT" and "/manifests/" in r.path
    ]
    assert manifest_puts == [images[0].digest, images[1].digest, digest, "v1"]
    pushed = registry.inspect("strata/index:v1", raw=True)
    assert pushed["manifests"] == json.loads(index)["manifests"]
    copy = tmp_path / "copy"
    skopeo_copy(registry.ref("strata/index:v1"), f"oci:{copy}:t", "--src-tls-verify=false",
                "--override-arch", "arm64")
    assert_valid_image(copy, ref="t")

    proxy.requests.clear()
    again = push_index(RegistryClient(proxy.host), "strata/index", ["v1"], index, pairs)
    assert again == PushReport(digest, ("v1",), 4, 0, 0, 0)
    assert proxy.count("POST", "/v2/strata/index/blobs/uploads/") == 0


def test_push_index_refuses_images_that_are_not_the_indexs(tmp_path):
    images, index = an_index(tmp_path)
    client = RegistryClient("127.0.0.1:9")  # nothing listens: nothing may be sent
    with pytest.raises(ValueError, match="are not the index's manifests"):
        push_index(client, "strata/index", ["v1"], index, [(images[0].manifest, images[0].blobs)])


def test_push_index_pushes_a_docker_manifest_list_as_one(registry, tmp_path):
    layout = index_layout(tmp_path, "linux/amd64", "linux/arm64/v8")
    manifest_list = manifest_to_push(layout, docker=True)
    pairs = [(m, manifest_blobs(layout, m)) for m in index_manifests(layout, manifest_list)]

    report = push_index(RegistryClient(registry.host), "strata/list", ["v1"], manifest_list, pairs)
    assert report.digest == image.sha256_digest(manifest_list)
    assert registry.inspect(f"strata/list@{report.digest}", raw=True) == json.loads(manifest_list)
    pushed = registry.inspect("strata/list:v1", raw=True)
    assert pushed["mediaType"] == media_types.DOCKER_MANIFEST_LIST
    copy = tmp_path / "copy"
    skopeo_copy(registry.ref("strata/list:v1"), f"oci:{copy}:t", "--src-tls-verify=false",
                "--override-arch", "arm64")
    assert_valid_image(copy, ref="t")
