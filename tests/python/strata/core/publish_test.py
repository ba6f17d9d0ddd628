import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

import strata.core
from strata.core.oci.image import canonical_json, sha256_digest
from strata.core.publish import PushedBlobs, as_docker_manifest, manifest_to_push
from strata_harness import assert_valid_image, make_oci_layout, require_tool, run_tool


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


class StallingRelay:
    """A TCP relay to a registry that stops passing on what clients send once `limit` bytes
    have gone through, so that an upload hangs mid-blob for as long as the test likes."""

    def __init__(self, upstream: str, limit: int) -> None:
        self.upstream, self.limit, self.relayed = upstream, limit, 0
        self.stalled = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: List[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        host, port = self.upstream.rsplit(":", 1)
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection((host, int(port)))
            self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(64 * 1024):
                if from_client:
                    if self.relayed + len(data) > self.limit:
                        self.stalled.set()
                        return  # read no more: the client's sends block once buffers fill
                    self.relayed += len(data)
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for s in self._sockets:
            s.close()


def run_push(layout: Path, manifest: Path, registry: str, home: Path) -> subprocess.Popen:
    """`python -m strata.core push` as `pants publish` runs it (an InteractiveProcess)."""
    source_root = Path(strata.core.__file__).parent.parent.parent
    return subprocess.Popen(
        [sys.executable, "-E", "-s", "-B", "-m", "strata.core", "push",
         "--layout", str(layout), "--manifest", str(manifest),
         "--registry", registry, "--repository", "strata/interrupted", "--tag", "v1"],
        cwd=source_root,
        env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(home / "cache"),
             "DOCKER_CONFIG": str(home / "docker")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_an_interrupted_push_prints_one_line_and_a_second_push_resumes(registry, tmp_path):
    """Ctrl-C mid-upload: one line saying what reached the registry, exit 130 (128 + SIGINT);
    the next push skips the blobs already there and completes."""
    big = os.urandom(24 * 1024 * 1024)
    layout = make_oci_layout(tmp_path / "layout", {"big.bin": big})
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(manifest_to_push(layout, docker=False))
    descriptors = json.loads(manifest.read_bytes())
    config, [layer] = descriptors["config"], descriptors["layers"]

    relay = StallingRelay(registry.host, limit=1024 * 1024)  # the config passes, the layer not
    try:
        push = run_push(layout, manifest, relay.host, tmp_path)
        assert relay.stalled.wait(60), push.communicate(timeout=60)
        push.send_signal(signal.SIGINT)
        out, err = push.communicate(timeout=60)
    finally:
        relay.close()
    assert err == (
        f"strata.core push: interrupted: {relay.host}/strata/interrupted: 1 of 2 blobs in place: "
        f"1 uploaded ({config['size']} bytes), 0 mounted, 0 already present; manifest not "
        "pushed; run `pants publish` again to resume: blobs already pushed are skipped\n"
    )
    assert (push.returncode, out) == (130, "")

    again = run_push(layout, manifest, registry.host, tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert out.splitlines()[1] == (
        f"  blobs: 1 uploaded ({layer['size']} bytes), 0 mounted, 1 already present"
    )
    pulled = tmp_path / "pulled"
    skopeo = [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet"]
    run_tool([*skopeo, "--src-tls-verify=false", registry.ref("strata/interrupted:v1"),
              f"oci:{pulled}:v1"])  # fmt: skip
    assert_valid_image(pulled, "oci", ref="v1")
