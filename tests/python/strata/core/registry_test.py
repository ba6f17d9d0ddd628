import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import logging
import math
import os
import re
import secrets
import socket
import tarfile
import threading
import traceback
import tracemalloc
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from strata.core.oci import image
from strata.core.oci.platforms import PlatformError
from strata.core.pull import pull_layout
from strata.core.auth import Credentials, credentials_for, parse_challenge
from strata.core.oci import media_types
from strata.core.registry import (
    AuthenticationError,
    AuthorizationError,
    DigestMismatchError,
    NotFoundError,
    PushReport,
    RegistryClient,
    RegistryError,
    UnsupportedMediaTypeError,
)
from strata_harness import (
    Fault,
    FaultProxy,
    Request,
    assert_valid_image,
    make_oci_layout,
    require_tool,
    run_tool,
    start_registry,
)

OCI_MANIFEST = media_types.OCI_MANIFEST
PASSWORD = "pw-" + secrets.token_hex(8)  # random, so a leak is unmistakable
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, tmp_path):
    """Credentials come only from what each test sets up."""
    monkeypatch.delenv("STRATA_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("STRATA_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


# --- hand-made images ---------------------------------------------------------------------


@dataclass
class LocalImage:
    manifest: bytes
    blobs: List[Tuple[str, int, str]]  # config first, then the layers

    @property
    def digest(self) -> str:
        return image.sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        return sum(size for _, size, _ in self.blobs)

    @property
    def platform(self) -> str:
        """os/arch, from the config (the harness's images are the host's)."""
        config = json.loads(Path(self.blobs[0][2]).read_bytes())
        return f"{config['os']}/{config['architecture']}"


def local_image(path: Path, files: dict, **kwargs) -> LocalImage:
    """An image made by the harness (independent of Strata), as push_image takes it."""
    layout = make_oci_layout(path, files, **kwargs)

    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / image.digest_hex(digest)

    index = json.loads((layout / "index.json").read_bytes())
    manifest = blob(index["manifests"][0]["digest"]).read_bytes()
    parsed = json.loads(manifest)
    descriptors = [parsed["config"], *parsed["layers"]]
    return LocalImage(
        manifest, [(d["digest"], d["size"], str(blob(d["digest"]))) for d in descriptors]
    )


def index_layout(tmp: Path, *platforms: str) -> Path:
    """An OCI layout whose ref "multi" is an index of one image per platform ("os/arch[/v]"),
    each with /etc/arch holding its platform."""
    out = tmp / "multi"
    (out / "blobs" / "sha256").mkdir(parents=True)

    def put(data: bytes, media_type: str) -> dict:
        (out / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
        return {"mediaType": media_type, "digest": image.sha256_digest(data), "size": len(data)}

    entries = []
    for platform in platforms:
        fields = dict(zip(("os", "architecture", "variant"), platform.split("/")))
        files = {"etc/arch": f"{platform}\n".encode()}
        single = local_image(tmp / platform.replace("/", "-"), files)
        config = {**json.loads(Path(single.blobs[0][2]).read_bytes()), **fields}
        layer = Path(single.blobs[1][2]).read_bytes()
        manifest = json.loads(single.manifest)
        manifest["config"] = put(image.canonical_json(config), media_types.OCI_CONFIG)
        manifest["layers"] = [put(layer, media_types.OCI_LAYER)]
        entry = put(image.canonical_json(manifest), OCI_MANIFEST)
        entry["platform"] = fields
        entries.append(entry)
    index = {"schemaVersion": 2, "mediaType": media_types.OCI_INDEX, "manifests": entries}
    top = put(image.canonical_json(index), media_types.OCI_INDEX)
    top["annotations"] = {image.REF_NAME_ANNOTATION: "multi"}
    (out / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    (out / "index.json").write_bytes(image.canonical_json({"schemaVersion": 2, "manifests": [top]}))
    return out


def layer_files(path: str) -> Dict[str, bytes]:
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":  # skopeo may compress layers on the way into a registry
        data = gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def write_random(path: Path, size: int) -> str:
    """Writes `size` random bytes in 1 MiB pieces; returns their digest."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for offset in range(0, size, MiB):
            piece = os.urandom(min(MiB, size - offset))
            digest.update(piece)
            f.write(piece)
    return "sha256:" + digest.hexdigest()


# --- in-test HTTP servers -----------------------------------------------------------------


Handler = Callable[[Request], Tuple[int, Dict[str, str], bytes]]


class Server:
    """An HTTP/1.1 (keep-alive) server on 127.0.0.1 in a thread, recording every request.
    With hang_up, it closes each connection after one answer without saying so."""

    def __init__(self, handle: Handler, hang_up: bool = False) -> None:
        self.requests: List[Request] = []
        server = self

        class RequestHandler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, self.path, self.headers, self.rfile.read(length))
                server.requests.append(request)
                status, headers, body = handle(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.close_connection = hang_up

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = answer

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, method: str, path_prefix: str) -> int:
        return sum(r.method == method and r.path.startswith(path_prefix) for r in self.requests)


@pytest.fixture
def serve():
    servers = []

    def start(handle: Handler, **kwargs) -> Server:
        servers.append(Server(handle, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def proxy(registry) -> Iterator[FaultProxy]:
    """A recording proxy in front of the registry (faults added by each test)."""
    with FaultProxy(registry.host) as proxy:
        yield proxy


def skopeo_copy(src: str, dest: str, *flags: str) -> None:
    run_tool([require_tool("skopeo"), "--insecure-policy", "copy", "--quiet", *flags, src, dest])


# --- push against the real registry -------------------------------------------------------


def test_push_image_is_valid_and_a_second_push_uploads_nothing(registry, proxy, tmp_path):
    files = {"bin/hello": (b"#!/bin/sh\necho hi\n", 0o755), "etc/motd": b"hello\n"}
    img = local_image(tmp_path / "img", files, entrypoint=["/bin/hello"])
    tags = ("v1", "latest")

    report = RegistryClient(proxy.host).push_image(
        "strata/push", tags, img.manifest, OCI_MANIFEST, img.blobs
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
    again = RegistryClient(proxy.host).push_image(
        "strata/push", tags, img.manifest, OCI_MANIFEST, img.blobs
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
    client.push_image("strata/mount-a", ["1"], first.manifest, OCI_MANIFEST, first.blobs)

    proxy.requests.clear()
    report = client.push_image(
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

    assert client.mount_blob("strata/mount-c", layer, "strata/mount-a") is True
    assert client.blob_exists("strata/mount-c", layer)
    proxy.requests.clear()
    assert client.mount_blob("strata/mount-c", config, "strata/mount-a") is False
    assert proxy.count("DELETE", "/v2/strata/mount-c/blobs/uploads/") == 1
    assert not client.blob_exists("strata/mount-c", config)


def test_chunked_upload(registry, proxy, tmp_path):
    img = local_image(tmp_path / "img", {"data.bin": os.urandom(10_000)})
    (_, config_size, _), (layer, layer_size, layer_path) = img.blobs
    layer_bytes = Path(layer_path).read_bytes()
    chunk = 4096
    assert config_size < chunk < layer_size
    client = RegistryClient(proxy.host, chunk_size=chunk)
    client.push_image("strata/chunked", ["1"], img.manifest, OCI_MANIFEST, img.blobs)

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


def test_failed_push_leaves_no_tag(registry, tmp_path):
    img = local_image(tmp_path / "img", {"etc/motd": b"original\n"})
    layer_path = Path(img.blobs[1][2])
    data = layer_path.read_bytes()
    layer_path.write_bytes(data.replace(b"original", b"tampered"))  # same size, other digest
    client = RegistryClient(registry.host)
    with pytest.raises(DigestMismatchError, match=re.escape(img.blobs[1][0])):
        client.push_image("strata/partial", ["v1"], img.manifest, OCI_MANIFEST, img.blobs)
    with pytest.raises(NotFoundError, match="manifest v1 not found"):
        client.resolve("strata/partial", "v1")


def test_push_validates_its_input_before_sending_anything(tmp_path):
    img = local_image(tmp_path / "img", {"a": b"a"})
    client = RegistryClient("127.0.0.1:9")  # nothing listens: any request would fail
    with pytest.raises(ValueError, match="missing: \\['sha256:"):
        client.push_image("strata/x", ["1"], img.manifest, OCI_MANIFEST, img.blobs[:1])
    wrong_size = [img.blobs[0], (img.blobs[1][0], 1, img.blobs[1][2])]
    with pytest.raises(ValueError, match="has size 1"):
        client.push_image("strata/x", ["1"], img.manifest, OCI_MANIFEST, wrong_size)
    with pytest.raises(ValueError, match="not the string"):
        client.push_image("strata/x", "latest", img.manifest, OCI_MANIFEST, img.blobs)
    with pytest.raises(ValueError, match="invalid tag"):
        client.push_image("strata/x", ["-bad"], img.manifest, OCI_MANIFEST, img.blobs)
    with pytest.raises(UnsupportedMediaTypeError, match="image manifests"):
        client.push_image("strata/x", ["1"], img.manifest, media_types.OCI_INDEX, img.blobs)
    with pytest.raises(UnsupportedMediaTypeError, match="text/plain"):
        client.push_manifest("strata/x", "1", "text/plain", img.manifest)
    with pytest.raises(DigestMismatchError, match="the manifest's digest is"):
        client.push_manifest("strata/x", "sha256:" + "0" * 64, OCI_MANIFEST, img.manifest)
    with pytest.raises(ValueError, match="mediaType"):
        client.push_manifest("strata/x", "1", media_types.DOCKER_MANIFEST, img.manifest)


# --- pull against the real registry -------------------------------------------------------


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


def test_pull_of_a_single_image_of_another_platform_fails(pushed, registry, tmp_path):
    own = pushed.platform
    where = f"{registry.host}/strata/faults@{pushed.digest}"
    message = f"^platform linux/s390x is not in {where}: it holds {own}$"
    with pytest.raises(PlatformError, match=message):
        pull_layout(registry.host, "strata/faults", pushed.digest, "linux/s390x", tmp_path / "x")
    assert pull_layout(registry.host, "strata/faults", pushed.digest, own, tmp_path / "y") == (
        pushed.digest
    )


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


# --- dropped connections and corruption (a fault-injecting proxy before the registry) ------


@pytest.fixture
def pushed(registry, tmp_path) -> LocalImage:
    """strata/faults:1 in the registry: a config and a 64 KiB layer."""
    img = local_image(tmp_path / "img", {"data.bin": os.urandom(64 * 1024)})
    client = RegistryClient(registry.host)
    client.push_image("strata/faults", ["1"], img.manifest, OCI_MANIFEST, img.blobs)
    return img


def retry_warnings(caplog) -> List[str]:
    return [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]


def test_pull_retries_connections_dropped_mid_body(pushed, proxy, tmp_path, caplog):
    (config, _, _), (layer, layer_size, _) = pushed.blobs
    cut_layer = proxy.add(Fault("cut", "GET", f"/blobs/{layer}", after=1000, times=2))
    reset_config = proxy.add(Fault("reset", "GET", f"/blobs/{config}", after=10))
    cut_manifest = proxy.add(Fault("cut", "GET", "/manifests/", after=10))
    caplog.set_level(logging.WARNING, logger="strata.core.registry")

    out = tmp_path / "pulled"
    assert pull_layout(proxy.host, "strata/faults", pushed.digest, pushed.platform, out) == (
        pushed.digest
    )
    assert (cut_layer.applied, reset_config.applied, cut_manifest.applied) == (2, 1, 1)
    assert_valid_image(out, "oci")
    warnings = retry_warnings(caplog)
    assert len(warnings) == 4, warnings
    dropped = f"fetching blob {layer} from {proxy.host}/strata/faults: the connection dropped "
    assert sum(w.startswith(dropped + f"after 1000 of {layer_size} bytes") for w in warnings) == 2
    # A reset may discard what had arrived: the count is what the client received.
    assert any(f"blob {config} from" in w and "ConnectionResetError" in w for w in warnings)
    assert any("resolving" in w and "dropped after 10 of" in w for w in warnings)
    assert not any("digest is" in w for w in warnings)


def test_pull_of_a_blob_always_cut_fails_saying_so(pushed, proxy, tmp_path):
    layer, layer_size, _ = pushed.blobs[1]
    cut = proxy.add(Fault("cut", "GET", f"/blobs/{layer}", after=1000, times=None))
    client = RegistryClient(proxy.host, retries=2, backoff=0.01)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RegistryError) as e:
        client.fetch_blob("strata/faults", layer, str(out / "layer"), layer_size)
    assert not isinstance(e.value, DigestMismatchError)
    assert str(e.value) == (
        f"fetching blob {layer} from {proxy.host}/strata/faults: failed after 3 attempts: "
        f"the connection dropped after 1000 of {layer_size} bytes"
    )
    assert cut.applied == 3
    assert list(out.iterdir()) == []


def test_pull_of_a_corrupted_blob_fails_at_once(pushed, proxy, tmp_path):
    layer, layer_size, _ = pushed.blobs[1]
    corrupt = proxy.add(Fault("corrupt", "GET", f"/blobs/{layer}", after=5000, times=None))
    client = RegistryClient(proxy.host, retries=2, backoff=0.01)
    with pytest.raises(DigestMismatchError, match=f"the registry sent {layer_size} bytes whose"):
        client.fetch_blob("strata/faults", layer, str(tmp_path / "layer"), layer_size)
    assert corrupt.applied == 1


def test_push_retries_dropped_uploads_and_answers(registry, proxy, tmp_path, caplog):
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
    caplog.set_level(logging.WARNING, logger="strata.core.registry")
    client = RegistryClient(proxy.host, chunk_size=4096, backoff=0.01)
    report = client.push_image("strata/faults-push", ["v1"], img.manifest, OCI_MANIFEST, img.blobs)

    assert [f.applied for f in faults] == [1] * len(faults)
    assert report.digest == img.digest
    assert registry.inspect("strata/faults-push:v1")["Digest"] == img.digest
    warnings = retry_warnings(caplog)
    for what in (f"uploading blob {config}", f"uploading blob {layer}", "pushing manifest"):
        assert any(w.startswith(what) for w in warnings), (what, warnings)
    copy = tmp_path / "copy"
    skopeo_copy(registry.ref("strata/faults-push:v1"), f"oci:{copy}:t", "--src-tls-verify=false")
    assert_valid_image(copy, ref="t")


# --- basic auth (the real registry with htpasswd) -----------------------------------------


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    require_tool("htpasswd")
    with start_registry(
        tmp_path_factory.mktemp("auth-registry"), htpasswd=("strata", PASSWORD)
    ) as reg:
        yield reg


def assert_no_secret(error: BaseException) -> None:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for secret in (
        PASSWORD,
        "wrong-" + PASSWORD,
        base64.b64encode(f"strata:{PASSWORD}".encode()).decode(),
    ):
        assert secret not in text


def test_basic_auth_with_credentials_from_each_source(auth_registry, tmp_path, monkeypatch):
    img = local_image(tmp_path / "img", {"etc/motd": b"private\n"})
    creds = Credentials("strata", PASSWORD)
    assert PASSWORD not in repr(creds)
    client = RegistryClient(auth_registry.host, credentials=creds)
    assert PASSWORD not in repr(client) and PASSWORD not in repr(vars(client))
    client.push_image("strata/private", ["1"], img.manifest, OCI_MANIFEST, img.blobs)

    monkeypatch.setenv("STRATA_REGISTRY_USERNAME", "strata")
    monkeypatch.setenv("STRATA_REGISTRY_PASSWORD", PASSWORD)
    assert RegistryClient(auth_registry.host).resolve("strata/private", "1")[2] == img.digest

    monkeypatch.delenv("STRATA_REGISTRY_USERNAME")
    monkeypatch.delenv("STRATA_REGISTRY_PASSWORD")
    config = Path(os.environ["DOCKER_CONFIG"], "config.json")
    config.parent.mkdir()
    auth = base64.b64encode(f"strata:{PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {f"http://{auth_registry.host}/v1/": {"auth": auth}}}))
    assert RegistryClient(auth_registry.host).resolve("strata/private", "1")[2] == img.digest


def test_basic_auth_failures_are_clear_and_leak_nothing(auth_registry):
    with pytest.raises(AuthenticationError) as anonymous:
        RegistryClient(auth_registry.host).resolve("strata/private", "1")
    message = str(anonymous.value)
    assert f"{auth_registry.host}/strata/private:1" in message
    assert "requires authentication" in message and "no credentials were found" in message
    assert_no_secret(anonymous.value)

    wrong = RegistryClient(
        auth_registry.host, credentials=Credentials("strata", "wrong-" + PASSWORD)
    )
    with pytest.raises(
        AuthenticationError, match="rejected the credentials \\(given explicitly\\)"
    ) as e:
        wrong.blob_exists("strata/private", "sha256:" + "2" * 64)
    assert auth_registry.host in str(e.value) and "strata/private" in str(e.value)
    assert_no_secret(e.value)


def test_a_pull_without_credentials_says_what_pulls_read(
    auth_registry, tmp_path, monkeypatch
):
    img = local_image(tmp_path / "img", {"etc/motd": b"private\n"})
    pusher = RegistryClient(auth_registry.host, credentials=Credentials("strata", PASSWORD))
    pusher.push_image("strata/pulled", ["1"], img.manifest, OCI_MANIFEST, img.blobs)
    # Set for `publish`; a pull must not take them (they would enter its cache key).
    monkeypatch.setenv("STRATA_REGISTRY_USERNAME", "strata")
    monkeypatch.setenv("STRATA_REGISTRY_PASSWORD", PASSWORD)
    config = Path(os.environ["DOCKER_CONFIG"], "config.json")
    platform = img.platform
    with pytest.raises(AuthenticationError) as e:
        pull_layout(auth_registry.host, "strata/pulled", img.digest, platform, tmp_path / "o")
    message = str(e.value)
    assert message.startswith(
        f"resolving {auth_registry.host}/strata/pulled@{img.digest}: {auth_registry.host} "
        "requires authentication"
    )
    assert message.endswith(
        f"no credentials were found in {config}: pulls read only the docker config.json "
        "($DOCKER_CONFIG/config.json, else ~/.docker/config.json), never "
        "$STRATA_REGISTRY_USERNAME/$STRATA_REGISTRY_PASSWORD, which would become part of the "
        "cached pull's key; log in (docker login) so that the config.json has them"
    )
    assert_no_secret(e.value)

    config.parent.mkdir()
    auth = base64.b64encode(f"strata:{PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    pulled = pull_layout(auth_registry.host, "strata/pulled", img.digest, platform, tmp_path / "o")
    assert pulled == img.digest


# --- bearer tokens, redirects, retries (in-test servers) ----------------------------------


class TokenRegistry:
    """A registry in miniature behind bearer tokens, like Docker Hub or distribution's token
    auth: /token grants the requested scopes to strata:PASSWORD (anyone may pull `public/*`);
    every /v2/ request needs a token covering its repository and action. Blob GETs redirect
    to a separate "storage" server with a signed URL."""

    def __init__(self, serve) -> None:
        self.manifests: Dict[Tuple[str, str], Tuple[str, bytes]] = {}
        self.blobs: Dict[Tuple[str, str], bytes] = {}
        self.tokens: Dict[str, set] = {}
        self.token_requests: List[Request] = []
        self.storage = serve(self._storage)
        self.server = serve(self._handle)
        self.host = self.server.host

    def add_image(self, repository: str, tag: str, img: LocalImage) -> None:
        self.manifests[(repository, tag)] = self.manifests[(repository, img.digest)] = (
            OCI_MANIFEST,
            img.manifest,
        )
        for digest, _, path in img.blobs:
            self.blobs[(repository, digest)] = Path(path).read_bytes()

    def scopes_of(self, request: Request) -> List[str]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)["scope"]

    def _issue(self, request: Request):
        self.token_requests.append(request)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        basic = "Basic " + base64.b64encode(f"strata:{PASSWORD}".encode()).decode()
        authorization = request.headers.get("Authorization")
        if authorization not in (None, basic) or query.get("service") != ["fake-registry"]:
            return 401, {}, b'{"details":"incorrect username or password"}'
        granted = set()
        for scope in query.get("scope", []):
            _, repository, actions = scope.split(":")
            for action in actions.split(","):
                if authorization or (repository.startswith("public/") and action == "pull"):
                    granted.add((repository, action))
        token = secrets.token_hex(8)
        self.tokens[token] = granted
        return 200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode()

    def _storage(self, request: Request):
        digest = "sha256:" + request.path.split("/")[-1].split("?")[0]
        blob = next(data for (_, d), data in self.blobs.items() if d == digest)
        return 200, {}, blob

    def _handle(self, request: Request):
        url = urllib.parse.urlsplit(request.path)
        if url.path == "/token":
            return self._issue(request)
        query = urllib.parse.parse_qs(url.query)
        match = re.fullmatch(
            r"/v2/(.+)/(manifests|blobs)/([^/]+)|/v2/(.+)/blobs/uploads/|/v2/", url.path
        )
        repository = match.group(1) or match.group(4)
        needs = set()
        if repository:
            needs.add((repository, "pull" if request.method in ("GET", "HEAD") else "push"))
        if "from" in query:
            needs.add((query["from"][0], "pull"))
        token = (request.headers.get("Authorization") or "").partition("Bearer ")[2]
        if token not in self.tokens or not needs <= self.tokens[token]:
            scope = "".join(f',scope="repository:{r}:{a}"' for r, a in sorted(needs))
            challenge = f'Bearer realm="http://{self.host}/token",service="fake-registry"{scope}'
            return 401, {"WWW-Authenticate": challenge}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        if not repository:
            return 200, {}, b"{}"
        kind, reference = match.group(2), match.group(3)
        if kind == "manifests" and request.method == "PUT":
            media_type = request.headers["Content-Type"]
            self.manifests[(repository, reference)] = (media_type, request.body)
            return 201, {"Docker-Content-Digest": image.sha256_digest(request.body)}, b""
        if kind == "manifests" and (repository, reference) in self.manifests:
            media_type, body = self.manifests[(repository, reference)]
            return 200, {"Content-Type": media_type}, body
        if kind == "blobs" and (repository, reference) in self.blobs:
            if request.method == "HEAD":
                return 200, {}, b""
            signed = f"http://{self.storage.host}/data/{image.digest_hex(reference)}?sig=s3cr3t"
            return 307, {"Location": signed}, b""
        source = (query.get("from", [""])[0], query.get("mount", [""])[0])
        if match.group(4) and source in self.blobs:
            self.blobs[(repository, source[1])] = self.blobs[source]
            return 201, {"Docker-Content-Digest": source[1]}, b""
        return 404, {}, b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}'


@pytest.fixture
def token_registry(serve, tmp_path):
    fake = TokenRegistry(serve)
    img = local_image(tmp_path / "img", {"etc/motd": b"behind a token\n"})
    fake.add_image("private/app", "v1", img)
    fake.add_image("public/app", "v1", img)
    return fake, img


def test_bearer_token_flow_with_credentials(token_registry, tmp_path):
    fake, img = token_registry
    client = RegistryClient(fake.host, credentials=Credentials("strata", PASSWORD))
    assert client.resolve("private/app", "v1") == (OCI_MANIFEST, img.manifest, img.digest)
    layer, size, path = img.blobs[1]
    assert client.fetch_blob("private/app", layer, str(tmp_path / "layer"), size) == size
    assert (tmp_path / "layer").read_bytes() == Path(path).read_bytes()
    # One token for the pull scope, cached; fetched with the basic credentials.
    assert [fake.scopes_of(r) for r in fake.token_requests] == [["repository:private/app:pull"]]
    assert fake.token_requests[0].headers["Authorization"].startswith("Basic ")
    # The registry redirected the blob to storage, which got no Authorization header.
    (storage_get,) = fake.storage.requests
    assert "Authorization" not in storage_get.headers and "sig=s3cr3t" in storage_get.path

    fake.tokens.clear()  # tokens revoked: the client takes a new one from the next challenge
    assert client.resolve("private/app", "v1")[2] == img.digest
    assert len(fake.token_requests) == 2

    report = client.push_image(
        "private/copy", ["v2"], img.manifest, OCI_MANIFEST, img.blobs, known_in="private/app"
    )
    assert (report.blobs_skipped, report.blobs_mounted, report.blobs_uploaded) == (0, 2, 0)
    assert fake.manifests[("private/copy", "v2")] == (OCI_MANIFEST, img.manifest)
    assert [fake.scopes_of(r) for r in fake.token_requests[2:]] == [
        ["repository:private/copy:pull,push"],
        ["repository:private/app:pull", "repository:private/copy:pull,push"],
    ]


def test_bearer_token_anonymous_and_refused(token_registry):
    fake, img = token_registry
    anonymous = RegistryClient(fake.host)
    assert anonymous.resolve("public/app", "v1")[2] == img.digest
    assert "Authorization" not in fake.token_requests[-1].headers
    with pytest.raises(
        AuthenticationError, match="requires authentication.*no credentials were found"
    ):
        anonymous.resolve("private/app", "v1")

    wrong = RegistryClient(fake.host, credentials=Credentials("strata", "wrong-" + PASSWORD))
    with pytest.raises(AuthenticationError) as e:
        wrong.resolve("private/app", "v1")
    assert f"token server http://{fake.host}/token" in str(e.value)
    assert "repository:private/app:pull" in str(e.value) and "given explicitly" in str(e.value)
    assert_no_secret(e.value)


def test_retries_server_errors_then_gives_up_clearly(serve):
    manifest = image.canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST})
    digest = image.sha256_digest(manifest)
    failures = [2]

    def handle(request: Request):
        if request.path == "/v2/":
            return 200, {}, b"{}"
        if failures[0]:
            failures[0] -= 1
            return 503, {}, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}'
        return 200, {"Content-Type": OCI_MANIFEST}, manifest

    server = serve(handle)
    client = RegistryClient(server.host, retries=2, backoff=0.01)
    assert client.resolve("app", digest)[1] == manifest
    failures[0] = 3
    with pytest.raises(
        RegistryError, match="failed after 3 attempts: .*HTTP 503.*UNAVAILABLE: try later"
    ):
        client.resolve("app", digest)

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = RegistryClient(f"127.0.0.1:{s.getsockname()[1]}", retries=1, backoff=0.01)
        with pytest.raises(
            RegistryError, match="failed after 2 attempts: .*ConnectionRefusedError"
        ):
            closed.resolve("app", "latest")


def test_a_keep_alive_connection_the_server_closed_costs_no_retry(serve):
    manifest = image.canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST})
    server = serve(lambda r: (200, {"Content-Type": OCI_MANIFEST}, manifest), hang_up=True)
    client = RegistryClient(server.host, retries=0)
    for _ in range(3):
        assert client.resolve("app", "latest")[1] == manifest
    assert len(server.requests) == 4  # the ping, then one GET each


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


# --- units --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "registry, insecure, base_url",
    [
        ("127.0.0.1:5000", None, "http://127.0.0.1:5000"),
        ("localhost:5000", None, "http://localhost:5000"),
        ("[::1]:5000", None, "http://[::1]:5000"),
        ("localhost", False, "https://localhost"),
        ("ghcr.io", None, "https://ghcr.io"),
        ("registry.internal:5000", True, "http://registry.internal:5000"),
    ],
)
def test_scheme(registry, insecure, base_url):
    assert RegistryClient(registry, insecure=insecure).base_url == base_url


@pytest.mark.parametrize("registry", ["https://ghcr.io", "ghcr.io/v2", "", "host:port"])
def test_registry_must_be_a_host(registry):
    with pytest.raises(ValueError, match="host\\[:port\\]"):
        RegistryClient(registry)


def test_credentials_from_environment_and_docker_config(tmp_path):
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    env = {"DOCKER_CONFIG": str(config_dir)}
    assert credentials_for("ghcr.io", env) is None
    auth = base64.b64encode(b"me:p:w").decode()
    (config_dir / "config.json").write_text(
        json.dumps({"auths": {"https://ghcr.io": {"auth": auth}, "other.io": {"auth": "x"}}})
    )
    creds = credentials_for("ghcr.io", env)
    assert (creds.username, creds.password) == ("me", "p:w")
    assert creds.source == f"{config_dir}/config.json (auths.https://ghcr.io)"
    assert credentials_for("quay.io", env) is None
    with pytest.raises(ValueError, match="auths.other.io.*not base64"):
        credentials_for("other.io", env)

    env.update(STRATA_REGISTRY_USERNAME="ci", STRATA_REGISTRY_PASSWORD="token")
    assert credentials_for("ghcr.io", env) == Credentials(
        "ci", "token", "$STRATA_REGISTRY_USERNAME/$STRATA_REGISTRY_PASSWORD"
    )
    del env["STRATA_REGISTRY_PASSWORD"]
    with pytest.raises(ValueError, match="set both"):
        credentials_for("ghcr.io", env)

    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text('{"auths": {"ghcr.io": {"auth": "' + PASSWORD)
    with pytest.raises(ValueError, match="is not valid JSON") as e:
        credentials_for("ghcr.io", {"HOME": str(home)})
    assert PASSWORD not in str(e.value)


def test_parse_challenge():
    header = (
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert parse_challenge(header) == (
        "bearer",
        {
            "realm": "https://auth.example/token",
            "service": "reg",
            "scope": "repository:a/b:pull,push",
        },
    )
    assert parse_challenge('Basic realm="say \\"hi\\""') == ("basic", {"realm": 'say "hi"'})
    assert parse_challenge("") == ("", {})
