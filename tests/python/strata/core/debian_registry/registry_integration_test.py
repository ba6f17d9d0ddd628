"""The registry that builds on pull, with real clients: podman pulls and runs, skopeo copies
(then the strict check), dockerd pulls (HEAD by tag, GET by digest), two pulls at once build
once, the image equals `pants package`'s, and every failure leaves the cache whole: an unknown
package, a malformed name, a push, a mirror that fails, a SIGKILL mid-build, a full disk, a
blob cut mid-way between client and registry."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import ScratchRepo, assert_valid_image
from strata_harness.debian_registry import CONFIG, DebianRegistry, MirrorProxy, get
from strata_harness.faults import Fault, FaultProxy
from strata_harness.tmpfs import tmpfs
from strata_harness.tools import require_tool, run_tool

OCI_ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json, "
                        "application/vnd.oci.image.index.v1+json"}


@pytest.fixture(scope="module")
def mirror() -> Iterator[MirrorProxy]:
    with MirrorProxy() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mirror: MirrorProxy
             ) -> Iterator[DebianRegistry]:
    root = tmp_path_factory.mktemp("debian-registry")
    with DebianRegistry(root, root / "cache", mirror.url).start() as server:
        yield server


def manifest(registry: DebianRegistry, name: str, headers=OCI_ACCEPT) -> tuple[str, dict]:
    status, answer, body = get(f"http://{registry.host}/v2/{name}/manifests/latest", headers)
    assert status == 200, body
    assert answer["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    return answer["Docker-Content-Digest"], json.loads(body)


def error_of(registry: DebianRegistry, path: str, method: str = "GET") -> tuple[int, str, str]:
    status, _, body = get(f"http://{registry.host}{path}", method=method)
    (error,) = json.loads(body)["errors"]
    return status, error["code"], error["message"]


def copy_to_layout(source: str, layout: Path, *args: str) -> None:
    run_tool([require_tool("skopeo"), "--insecure-policy", "copy", "--quiet",
              "--src-tls-verify=false", *args, f"docker://{source}", f"oci:{layout}:t"])


def assert_cache_whole(cache: Path, *, killed: bool = False) -> None:
    """Every blob is the bytes its name says and every record's blobs are there: what a failed
    or killed build must leave; no temporary is left, unless the server was killed (the next
    start clears them)."""
    blobs = cache / "blobs"
    for blob in (blobs / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    if not killed:
        assert not list(blobs.glob("tmp/*")) and not list(cache.glob("scratch/*"))
    for record in (cache / "layers").glob("*.json") if (cache / "layers").exists() else ():
        assert (blobs / "sha256" / json.loads(record.read_text())["digest"][7:]).exists()


def test_podman_pulls_and_runs_a_shell_image(registry: DebianRegistry, podman) -> None:
    image = f"{registry.host}/shell/curl"
    started = time.monotonic()
    run_tool(podman.command("pull", "--quiet", "--tls-verify=false", "--arch", "amd64", image),
             env=podman.env, timeout=900)
    print(f"podman pull {image}: {time.monotonic() - started:.1f} s")
    proc = subprocess.run(
        podman.command("run", "--rm", *podman.run_options(), image,
                       "bash", "-c", "curl --version | head -n 1; echo $BASH_VERSION"),
        env=podman.env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("curl 7."), proc.stdout
    assert registry.builds() == ["curl/shell (amd64, arm64)"]


def test_every_platform_passes_the_strict_check(registry: DebianRegistry, tmp_path: Path) -> None:
    digest, index = manifest(registry, "shell/curl")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for arch in ("amd64", "arm64"):
        layout = tmp_path / arch
        copy_to_layout(f"{registry.host}/shell/curl:latest", layout, "--override-arch", arch)
        bundle = tmp_path / f"{arch}-bundle"
        assert_valid_image(layout, "oci", ref="t", unpack_to=bundle)
        assert (bundle / "rootfs/usr/bin/curl").is_file()
        assert os.readlink(bundle / "rootfs/bin") == "usr/bin"
    # One spelling or another, one image: the order of the names, repeats.
    assert manifest(registry, "curl/shell/curl")[0] == digest
    # An architecture prefix picks one platform: its manifest, not an index.
    _, arm64 = manifest(registry, "arm64/shell/curl")
    assert arm64["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert arm64 == json.loads(get(f"http://{registry.host}/v2/shell/curl/manifests/"
                                   f"{index['manifests'][1]['digest']}", OCI_ACCEPT)[2])
    assert registry.builds() == ["curl/shell (amd64, arm64)", "curl/shell (arm64)"]


def test_docker_pulls_by_tag_then_by_digest(registry: DebianRegistry, dockerd) -> None:
    image = f"{registry.host}/shell/curl"
    dockerd("pull", "--platform", "linux/amd64", image, timeout=900)
    log = registry.log()
    assert "HEAD /v2/shell/curl/manifests/latest" in log or "GET /v2/shell/curl/manifests" in log
    assert "/v2/shell/curl/manifests/sha256:" in log  # then the platform's manifest, by digest
    assert dockerd.run(image, "bash", "-c", "echo hello from $0") == (0, "hello from bash\n")


def test_concurrent_pulls_of_a_new_image_build_it_once(registry: DebianRegistry) -> None:
    results: list = []
    pulls = [threading.Thread(target=lambda: results.append(manifest(registry, "amd64/jq")))
             for _ in range(2)]
    for pull in pulls:
        pull.start()
    for pull in pulls:
        pull.join()
    assert len(results) == 2 and results[0] == results[1]
    assert registry.builds().count("jq (amd64)") == 1


def test_a_new_combination_builds_only_its_new_layers(registry: DebianRegistry) -> None:
    manifest(registry, "amd64/shell/curl")
    before = len(registry.log())
    manifest(registry, "amd64/shell/curl/jq")
    (line,) = [l for l in registry.log()[before:].splitlines() if " layers (" in l]
    built, reused = line.split(" layers (")[0].split()[-1], line.split("(")[-1].split()[0]
    # jq and its libraries are new; everything of shell/curl is reused.
    assert int(reused) >= 40 and int(built) - int(reused) <= 4, line


def test_the_image_equals_pants_package(registry: DebianRegistry, tmp_path: Path) -> None:
    repo = ScratchRepo(tmp_path / "repo", files={"deb/BUILD": """
        debian_packages(name="pkgs", packages=["bash", "coreutils", "curl"])
        oci_image(name="image", dependencies=[":pkgs"], output_format="oci", compression="gzip")
    """})
    repo.run("debian-lock", "deb:pkgs")
    lock = json.loads((repo.root / "deb/debian.lock.json").read_text())
    snapshot = json.loads((registry.cache_dir / "snapshot.json").read_text())
    if lock["architectures"]["amd64"]["snapshot"]["release_sha256"] != hashlib.sha256(
            (registry.cache_dir / "blobs/sha256" / snapshot["inrelease"]["digest"][7:]
             ).read_bytes()).hexdigest():
        pytest.skip("the Debian mirror moved on between the registry's start and the lock")
    repo.run("package", "deb:image")
    layout = repo.root / "dist/deb/image"
    (pants_manifest,) = json.loads((layout / "index.json").read_text())["manifests"]
    digest, _ = manifest(registry, "amd64/shell/curl")
    assert digest == pants_manifest["digest"]


def test_errors_say_what_is_wrong(registry: DebianRegistry, mirror: MirrorProxy) -> None:
    status, code, message = error_of(registry, "/v2/shell/no-such-package/manifests/latest")
    assert (status, code) == (404, "MANIFEST_UNKNOWN")
    assert "no package or provider of no-such-package" in message
    status, code, message = error_of(registry, "/v2/Shell/manifests/latest")
    assert (status, code) == (400, "NAME_INVALID") and "'Shell'" in message
    status, code, _ = error_of(registry, "/v2/shell/curl/blobs/uploads/", method="POST")
    assert (status, code) == (405, "UNSUPPORTED")
    status, code, message = error_of(registry, "/v2/shell/manifests/v1")
    assert (status, code) == (404, "MANIFEST_UNKNOWN") and "'latest'" in message
    # A download that fails once is retried; one that keeps failing is a 502 naming it.
    mirror.fail(r"/pool/main/t/tree/", times=1)
    manifest(registry, "amd64/tree")
    assert mirror.count(r"/pool/main/t/tree/") == 2
    mirror.fail(r"/pool/main/h/hello/")
    try:
        status, code, message = error_of(registry, "/v2/amd64/hello/manifests/latest")
    finally:
        mirror.heal()
    assert (status, code) == (502, "UNKNOWN") and "downloading hello " in message, message
    assert mirror.count(r"/pool/main/h/hello/") == 3
    manifest(registry, "amd64/hello")  # the mirror is back: the next pull builds it
    assert_cache_whole(registry.cache_dir)


def test_a_blob_cut_mid_way_is_fetched_again(registry: DebianRegistry, dockerd) -> None:
    """dockerd retries a layer download that broke off, resuming it with a Range request."""
    _, image = manifest(registry, "amd64/shell/curl/jq")
    largest = max(image["layers"], key=lambda layer: layer["size"])["digest"]
    with FaultProxy(registry.host) as proxy:
        cut = proxy.add(Fault("cut", "GET", f"/blobs/{largest}", after=100_000))
        dockerd("pull", f"{proxy.host}/amd64/shell/curl/jq", timeout=900)
        assert cut.applied == 1
        assert proxy.count("GET", f"/v2/amd64/shell/curl/jq/blobs/{largest}") == 2
        assert dockerd.run(f"{proxy.host}/amd64/shell/curl/jq", "jq", "-n", "1+1") == (0, "2\n")
    assert f"GET /v2/amd64/shell/curl/jq/blobs/{largest} 206" in registry.log()


def test_a_build_killed_mid_way_leaves_no_partial_blob(
    tmp_path: Path, mirror: MirrorProxy
) -> None:
    cache = tmp_path / "cache"
    config = dict(CONFIG, architectures=["amd64"])
    server = DebianRegistry(tmp_path, cache, mirror.url, config=config).start()
    cut_off: list = []

    def pull() -> None:
        try:
            get(f"http://{server.host}/v2/python3.11/manifests/latest")
        except ConnectionError as e:  # the server dies under it
            cut_off.append(e)

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    deadline = time.monotonic() + 600
    while not list(cache.glob("layers/*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first layers are built, the rest not
    assert server.kill(signal.SIGKILL) == -signal.SIGKILL
    puller.join(60)
    assert cut_off, "the pull was answered before the kill"
    assert not list(cache.glob("images/*.json")), "the image was finished before the kill"
    assert_cache_whole(cache, killed=True)
    with DebianRegistry(tmp_path, cache, mirror.url, config=config).start() as again:
        digest, _ = manifest(again, "python3.11")
        copy_to_layout(f"{again.host}/python3.11:latest", tmp_path / "layout")
        assert again.kill(signal.SIGTERM) == 0
    assert again.log().rstrip().endswith("stopping")
    assert_valid_image(tmp_path / "layout", "oci", ref="t")
    assert_cache_whole(cache)
    # A restart keeps everything: the same image, with no build and nothing downloaded.
    asked = len(mirror.requests)
    (tmp_path / "third").mkdir()
    with DebianRegistry(tmp_path / "third", cache, mirror.url, config=config).start() as third:
        assert manifest(third, "python3.11")[0] == digest
        assert third.builds() == [] and len(mirror.requests) == asked


def test_a_full_cache_disk_fails_the_pull_and_leaves_nothing_half_written(
    tmp_path: Path, mirror: MirrorProxy
) -> None:
    config = dict(CONFIG, architectures=["amd64"])
    with tmpfs(tmp_path / "cache", "24m") as cache:
        with DebianRegistry(tmp_path, cache, mirror.url, config=config).start() as server:
            status, code, message = error_of(server, "/v2/python3.11/manifests/latest")
            assert status == 507 and "full" in message, message
            assert not list(cache.glob("images/*.json"))
            assert_cache_whole(cache)
