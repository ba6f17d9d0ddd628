"""SBOMs attached to a pushed image as OCI 1.1 referrers (`push --attach`) and read back
(`pull --sbom-out`): the tag-schema fallback against docker-registry 2.8, the referrers API
against a proxy that adds it, and a registry that refuses the artifact."""

import http.client
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

import strata.core
from strata.core.oci import image, media_types
from strata.core.oci.push_manifest import manifest_to_push
from strata.core.oci.media_types import DOCKER_MANIFEST_LIST, OCI_MANIFEST
from strata.core.registry.client import RegistryClient
from strata.core.registry.pull import pull_layout
from strata.core.registry.referrers import fallback_tag
from strata_harness import Fault, Request, assert_valid_image, make_oci_layout
from strata_harness.registry_images import index_layout, skopeo_copy

SPDX = b'{"spdxVersion": "SPDX-2.3", "name": "x"}\n'
CDX = b'{"bomFormat": "CycloneDX", "specVersion": "1.5"}\n'


def core(home: Path, *argv: str) -> subprocess.CompletedProcess:
    """`python -m strata.core ARGV` as the Pants rules run it."""
    source_root = Path(strata.core.__file__).parent.parent.parent
    return subprocess.run(
        [sys.executable, "-E", "-s", "-B", "-m", "strata.core", *argv],
        cwd=source_root,
        env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(home / "cache"),
             "DOCKER_CONFIG": str(home / "docker")},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def sboms(tmp_path: Path, **files: bytes) -> List[str]:
    """Writes the SBOM files (name: content); returns their paths."""
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [str(tmp_path / name) for name in files]


def push(home: Path, layout: Path, host: str, repository: str, files: List[str]):
    """`push --attach` of `layout` (an image, or an index whose index.json has it first)."""
    manifest = home / "manifest.json"
    index = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    if media_types.is_index(index["mediaType"]):
        blob = layout / "blobs" / "sha256" / image.digest_hex(index["digest"])
        manifest.write_bytes(blob.read_bytes())
    else:
        manifest.write_bytes(manifest_to_push(layout, docker=False))
    attach = [arg for path in files for arg in ("--attach", path)]
    done = core(home, "push", "--layout", str(layout), "--manifest", str(manifest),
                "--registry", host, "--repository", repository, "--tag", "v1", *attach)  # fmt: skip
    return done, image.sha256_digest(manifest.read_bytes())


def referrer_lines(stdout: str) -> List[str]:
    return [line for line in stdout.splitlines() if line.startswith("  referrer: ")]


def pull(home: Path, host: str, repository: str, digest: str) -> subprocess.CompletedProcess:
    """`pull --sbom-out HOME/sboms` of the image into HOME/pulled."""
    return core(home, "pull", "--registry", host, "--repository", repository, "--digest", digest,
                "--platform", "linux/amd64", "--out", str(home / "pulled"),
                "--sbom-out", str(home / "sboms"))  # fmt: skip


def pull_sboms(home: Path, host: str, repository: str, digest: str) -> Dict[str, bytes]:
    done = pull(home, host, repository, digest)
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_bytes() for p in (home / "sboms").iterdir()}


def test_push_attaches_sboms_under_the_fallback_tag_and_pull_gets_them_back(registry, tmp_path):
    layout = make_oci_layout(tmp_path / "layout", {"hello.txt": b"hello\n"})
    files = sboms(tmp_path, **{"x.spdx.json": SPDX, "x.cdx.json": CDX})
    done, digest = push(tmp_path, layout, registry.host, "strata/sbom", files)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = referrer_lines(done.stdout)
    types = [line.split()[1] for line in lines]
    assert types == [media_types.SPDX_JSON, media_types.CYCLONEDX_JSON]

    index = registry.inspect(f"strata/sbom:{fallback_tag(digest)}", raw=True)
    assert index["mediaType"] == media_types.OCI_INDEX
    listed = {d["digest"]: d["artifactType"] for d in index["manifests"]}
    assert listed == {line.split()[2]: line.split()[1] for line in lines}
    manifest_size = len(manifest_to_push(layout, docker=False))
    subject = {"mediaType": media_types.OCI_MANIFEST, "digest": digest, "size": manifest_size}
    for artifact, artifact_type in listed.items():
        manifest = registry.inspect(f"strata/sbom@{artifact}", raw=True)
        assert manifest["subject"] == subject
        assert manifest["artifactType"] == artifact_type
        assert manifest["config"] == media_types.EMPTY_DESCRIPTOR

    again, _ = push(tmp_path, layout, registry.host, "strata/sbom", files)
    assert (again.returncode, referrer_lines(again.stdout)) == (0, lines), again.stderr
    assert len(registry.inspect(f"strata/sbom:{fallback_tag(digest)}", raw=True)["manifests"]) == 2

    pulled = pull_sboms(tmp_path, registry.host, "strata/sbom", digest)
    by_type = {line.split()[1]: image.digest_hex(line.split()[2]) for line in lines}
    assert pulled == {
        by_type[media_types.SPDX_JSON] + ".spdx.json": SPDX,
        by_type[media_types.CYCLONEDX_JSON] + ".cdx.json": CDX,
    }

    # A second, different SBOM of a type already attached goes beside the first.
    other = sboms(tmp_path, **{"y.spdx.json": SPDX + b" "})
    third, _ = push(tmp_path, layout, registry.host, "strata/sbom", other)
    assert third.returncode == 0, third.stderr
    assert len(registry.inspect(f"strata/sbom:{fallback_tag(digest)}", raw=True)["manifests"]) == 3


def test_sboms_attach_to_an_index_and_a_pull_of_it_gets_them(registry, tmp_path):
    layout = index_layout(tmp_path, "linux/amd64", "linux/arm64")
    files = sboms(tmp_path, **{"multi.spdx.json": SPDX})
    done, digest = push(tmp_path, layout, registry.host, "strata/sbom-index", files)
    assert done.returncode == 0, done.stderr
    [line] = referrer_lines(done.stdout)
    artifact = registry.inspect(f"strata/sbom-index@{line.split()[2]}", raw=True)
    assert artifact["subject"]["digest"] == digest
    assert artifact["subject"]["mediaType"] == media_types.OCI_INDEX
    pulled = pull_sboms(tmp_path, registry.host, "strata/sbom-index", digest)
    assert pulled == {image.digest_hex(line.split()[2]) + ".spdx.json": SPDX}


def test_a_pull_without_referrers_leaves_an_empty_sbom_directory(pushed, registry, tmp_path):
    sbom_out = tmp_path / "sboms"
    pull_layout(registry.host, "strata/faults", pushed.digest, pushed.platform, tmp_path / "o",
                sbom_out=sbom_out)  # fmt: skip
    assert list(sbom_out.iterdir()) == []


def test_transient_faults_while_attaching_are_retried(proxy, registry, tmp_path):
    cut = proxy.add(Fault("cut", "GET", "/manifests/sha256-", after=5))
    lost = proxy.add(Fault("no_response", "PUT", "/manifests/sha256-"))
    layout = make_oci_layout(tmp_path / "layout", {"hello.txt": b"faults\n"})
    files = sboms(tmp_path, **{"x.spdx.json": SPDX})
    done, digest = push(tmp_path, layout, proxy.host, "strata/sbom-faults", files)
    assert done.returncode == 0, done.stderr
    assert (cut.applied, lost.applied) == (1, 1)
    retries = done.stderr.splitlines()
    assert len(retries) == 2 and all("trying again" in line for line in retries), retries
    [line] = referrer_lines(done.stdout)
    index = registry.inspect(f"strata/sbom-faults:{fallback_tag(digest)}", raw=True)
    assert [d["digest"] for d in index["manifests"]] == [line.split()[2]]


def test_a_corrupt_sbom_is_a_warning_and_not_written(proxy, registry, tmp_path):
    layout = make_oci_layout(tmp_path / "layout", {"hello.txt": b"corrupt\n"})
    files = sboms(tmp_path, **{"x.spdx.json": SPDX})
    done, digest = push(tmp_path, layout, registry.host, "strata/sbom-corrupt", files)
    assert done.returncode == 0, done.stderr
    corrupt = proxy.add(Fault("corrupt", "GET", f"/blobs/{image.sha256_digest(SPDX)}", times=None))
    pulled = pull(tmp_path, proxy.host, "strata/sbom-corrupt", digest)
    assert pulled.returncode == 0, pulled.stderr
    assert corrupt.applied == 1
    [warning] = pulled.stderr.splitlines()
    assert warning.startswith("strata.core pull: warning: SBOM sha256:") and "digest" in warning
    assert list((tmp_path / "sboms").iterdir()) == []
    assert_valid_image(tmp_path / "pulled", "oci")


def forwarding(upstream: str, request: Request):
    """The registry's answer to `request`: (status, headers, body)."""
    conn = http.client.HTTPConnection(upstream, timeout=60)
    try:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "connection"}
        conn.request(request.method, request.path, body=request.body, headers=headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    dropped = ("connection", "keep-alive", "transfer-encoding", "content-length")
    kept = {k: v for k, v in response.getheaders() if k.lower() not in dropped}
    if request.method == "HEAD" and response.getheader("Content-Length"):
        kept["Content-Length"] = response.getheader("Content-Length")
    return response.status, kept, body


def with_subject(request: Request) -> bool:
    if request.method != "PUT" or "/manifests/" not in request.path:
        return False
    return "subject" in json.loads(request.body)


def test_a_registry_with_the_referrers_api_gets_no_fallback_tag(registry, serve, tmp_path):
    """A proxy adds the referrers API to docker-registry 2.8: the OCI-Subject header on the
    PUT of an artifact manifest, and GET /v2/<repo>/referrers/<digest>."""
    referrers: Dict[str, list] = {}

    def handle(request: Request):
        if request.method == "GET" and "/referrers/" in request.path:
            listed = referrers.get(request.path.rsplit("/", 1)[1], [])
            index = {"schemaVersion": 2, "mediaType": media_types.OCI_INDEX, "manifests": listed}
            headers = {"Content-Type": media_types.OCI_INDEX}
            return 200, headers, image.canonical_json(index)
        status, headers, body = forwarding(registry.host, request)
        if status == 201 and with_subject(request):
            manifest = json.loads(request.body)
            subject = manifest["subject"]["digest"]
            descriptor = {"mediaType": manifest["mediaType"], "artifactType":
                          manifest["artifactType"], "digest": image.sha256_digest(request.body),
                          "size": len(request.body)}  # fmt: skip
            referrers.setdefault(subject, []).append(descriptor)
            headers["OCI-Subject"] = subject
        return status, headers, body

    proxy = serve(handle)
    layout = make_oci_layout(tmp_path / "layout", {"hello.txt": b"api\n"})
    files = sboms(tmp_path, **{"x.spdx.json": SPDX, "x.cdx.json": CDX})
    done, digest = push(tmp_path, layout, proxy.host, "strata/sbom-api", files)
    assert done.returncode == 0, done.stderr
    assert len(referrer_lines(done.stdout)) == 2
    assert len(referrers[digest]) == 2
    tag = fallback_tag(digest)
    assert proxy.count("PUT", f"/v2/strata/sbom-api/manifests/{tag}") == 0
    assert registry.get(f"/v2/strata/sbom-api/manifests/{tag}")[0] == 404

    pulled = pull_sboms(tmp_path, proxy.host, "strata/sbom-api", digest)
    assert sorted(pulled.values()) == sorted([SPDX, CDX])
    assert proxy.count("GET", f"/v2/strata/sbom-api/referrers/{digest}") == 1
    assert proxy.count("GET", f"/v2/strata/sbom-api/manifests/{tag}") == 0


def test_a_refused_referrer_is_a_warning_and_the_image_is_published(registry, serve, tmp_path):
    invalid = {"errors": [{"code": "MANIFEST_INVALID", "message": "subject not supported"}]}

    def handle(request: Request):
        if with_subject(request):
            return 400, {"Content-Type": "application/json"}, json.dumps(invalid).encode()
        return forwarding(registry.host, request)

    proxy = serve(handle)
    layout = make_oci_layout(tmp_path / "layout", {"hello.txt": b"refused\n"})
    [spdx] = sboms(tmp_path, **{"x.spdx.json": SPDX})
    done, digest = push(tmp_path, layout, proxy.host, "strata/sbom-refused", [spdx])
    assert done.returncode == 0, done.stderr
    assert referrer_lines(done.stdout) == []
    [warning] = done.stderr.splitlines()
    assert warning.startswith(
        f"strata.core push: warning: {spdx} not attached to "
        f"{proxy.host}/strata/sbom-refused@{digest}: "
    )
    assert "HTTP 400" in warning and "MANIFEST_INVALID: subject not supported" in warning
    pulled = tmp_path / "image"
    skopeo_copy(registry.ref("strata/sbom-refused:v1"), f"oci:{pulled}:v1",
                "--src-tls-verify=false")  # fmt: skip
    assert_valid_image(pulled, "oci", ref="v1")


def test_a_fallback_tag_that_holds_no_index_is_a_warning(registry, tmp_path):
    layout = make_oci_layout(tmp_path / "layout", {"hello.txt": b"taken\n"})
    done, digest = push(tmp_path, layout, registry.host, "strata/sbom-taken", [])
    assert done.returncode == 0, done.stderr
    size = len(manifest_to_push(layout, docker=False))
    listed = {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}
    docker_list = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [listed]}
    with RegistryClient(registry.host) as client:  # the tag taken by a Docker manifest list
        client.push_manifest("strata/sbom-taken", fallback_tag(digest), DOCKER_MANIFEST_LIST,
                             image.canonical_json(docker_list))  # fmt: skip
    [spdx] = sboms(tmp_path, **{"x.spdx.json": SPDX})
    again, _ = push(tmp_path, layout, registry.host, "strata/sbom-taken", [spdx])
    assert again.returncode == 0, again.stderr
    [warning] = again.stderr.splitlines()
    assert warning.startswith(f"strata.core push: warning: {spdx} not attached to ")
    mismatch = f"its mediaType is '{DOCKER_MANIFEST_LIST}'"
    assert warning.endswith(f"is not a valid image index: TypeError(\"{mismatch}\")"), warning


@pytest.mark.parametrize("name", ["x.json", "x.spdx"])
def test_an_attachment_that_is_no_sbom_fails_before_anything_is_pushed(
    name, registry, serve, tmp_path
):
    proxy = serve(lambda request: forwarding(registry.host, request))
    layout = make_oci_layout(tmp_path / "layout", {"hello.txt": b"bad\n"})
    [path] = sboms(tmp_path, **{name: SPDX})
    done, _ = push(tmp_path, layout, proxy.host, "strata/sbom-bad", [path])
    assert done.returncode == 1
    assert done.stderr == (
        f"strata.core push: error: {path}: not an SBOM file name: "
        "it must end with .spdx.json or .cdx.json\n"
    )
    assert proxy.requests == []
