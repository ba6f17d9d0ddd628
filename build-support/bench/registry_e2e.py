"""The benchmark's Debian registry rows (issue 31): the registry that builds Debian images when
they are pulled (`strata.core.debian_registry`), started from --src with --python, a fresh cache
directory and a free 127.0.0.1 port; its mirror is the machine's apt mirror, which it finds
itself. Each pull is what a client does, over plain HTTP (one keep-alive connection): the
manifest by tag, then the config and every layer, each checked against its digest.

- cold: the first pull of IMAGE: every .deb downloaded, every layer built;
- cached: the same pull again, --reps times: the image's record, nothing built;
- extended: IMAGE/EXTRA right after, once: only the layers of the packages IMAGE lacks are
  built, the rest reused, as the registry's log line "N layers (M reused)" says.
"""

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List

SUITE = "bookworm"
ARCHITECTURE = "amd64"
START_TIMEOUT = 300.0  # a fresh cache fetches the suite's InRelease and Packages first
PULL_TIMEOUT = 1200.0
_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
# The builder's log line per image and architecture (builder.py, ImageBuilder._arch_image).
_LAYERS_LINE = re.compile(r"(\S+) for (\S+): (\d+) packages, (\d+) layers \((\d+) reused\)")
_BUILT_LINE = re.compile(r": built (\S+) \(")


def _config() -> Dict[str, object]:
    """The demo's `//app:registry` settings, for one architecture."""
    return {"target": "bench:registry", "suite": SUITE, "architectures": [ARCHITECTURE],
            "meta_packages": {"shell": ["bash", "coreutils"]}, "max_layers": 100,
            "compression": "gzip", "created": "1970-01-01T00:00:01Z"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Registry:
    """`python -m strata.core debian-registry` in its own process group, its log in a file."""

    def __init__(self, python: str, src: Path, work: Path) -> None:
        work.mkdir()
        config = work / "config.json"
        config.write_text(json.dumps(_config()), encoding="utf-8")
        self.log_path = work / "registry.log"
        self.port = _free_port()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [python, "-m", "strata.core", "debian-registry", "--config", str(config),
                 "--listen", f"127.0.0.1:{self.port}", "--cache-dir", str(work / "cache")],
                cwd=work, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(src)},
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log().strip().splitlines()[-1:] or ["(no output)"]
                raise RuntimeError(f"the registry did not start: {tail[0]}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            connection.request("GET", "/v2/")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _get(connection: http.client.HTTPConnection, path: str, headers=None) -> bytes:
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:500]!r}")
    return body


def _pull(registry: _Registry, name: str) -> Dict[str, object]:
    """One pull of `name`: seconds to the manifest and to the last blob, what it holds, and
    what the registry logged meanwhile (the layers it built and reused, the images it built)."""
    logged = len(registry.log())
    connection = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=PULL_TIMEOUT)
    try:
        started = time.perf_counter()
        manifest_bytes = _get(connection, f"/v2/{name}/manifests/latest", {"Accept": _ACCEPT})
        manifest_seconds = time.perf_counter() - started
        manifest = json.loads(manifest_bytes)
        descriptors = [manifest["config"], *manifest["layers"]]
        for descriptor in descriptors:
            blob = _get(connection, f"/v2/{name}/blobs/{descriptor['digest']}")
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            if (digest, len(blob)) != (descriptor["digest"], descriptor["size"]):
                raise RuntimeError(f"{name}: blob {descriptor['digest']} came as {digest}, "
                                   f"{len(blob)} bytes")
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    log = registry.log()[logged:]  # the build's lines come before the manifest
    layer_lines = _LAYERS_LINE.findall(log)
    return {
        "manifest_seconds": manifest_seconds,
        "seconds": seconds,
        "manifest": "sha256:" + hashlib.sha256(manifest_bytes).hexdigest(),
        "layers": len(manifest["layers"]),
        "bytes": sum(d["size"] for d in descriptors),
        "packages": sum(int(line[2]) for line in layer_lines),
        "layers_built": sum(int(line[3]) - int(line[4]) for line in layer_lines),
        "layers_reused": sum(int(line[4]) for line in layer_lines),
        "images_built": len(_BUILT_LINE.findall(log)),
    }


def run_registry_bench(args, work: Path, summary, log) -> Dict[str, object]:
    """The registry's figures. `args`: the bench's (reps, src, python, registry_image,
    registry_extra)."""
    image, extended = args.registry_image, f"{args.registry_image}/{args.registry_extra}"
    log(f"registry: starting it from {args.src} with a fresh cache ...")
    started = time.perf_counter()
    registry = _Registry(args.python, args.src, work)
    try:
        start_seconds = time.perf_counter() - started
        log(f"registry: {image}, cold ...")
        cold = _pull(registry, image)
        log(f"registry: {image} again (cached), {args.reps} reps ...")
        cached: List[Dict[str, object]] = [_pull(registry, image) for _ in range(args.reps)]
        log(f"registry: {extended} after {image} ...")
        extended_pull = _pull(registry, extended)
    finally:
        registry.stop()
    if {pull["manifest"] for pull in cached} != {cold["manifest"]}:
        raise RuntimeError(f"the registry served {image} as another image when asked again")
    return {
        "suite": SUITE,
        "architecture": ARCHITECTURE,
        "start_seconds": start_seconds,
        "cold": {"image": image, **cold},
        "cached": {
            "image": image, "runs": len(cached),
            "manifest_seconds": summary([pull["manifest_seconds"] for pull in cached]),
            "seconds": summary([pull["seconds"] for pull in cached]),
            "images_built": [pull["images_built"] for pull in cached],
        },
        "extended": {"image": extended, **extended_pull},
    }
