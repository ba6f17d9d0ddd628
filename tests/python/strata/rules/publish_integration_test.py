"""`pants publish` on a scratch repo to real registries (one open, one behind htpasswd), with
the pushed images pulled back by skopeo and checked with umoci and podman.

Pants runs cost ~15 s each, so a module fixture makes two publish runs that all tests read: the
first with credentials, the second without.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import (
    Dockerd,
    Registry,
    ScratchRepo,
    assert_valid_image,
    pushes,
    require_tool,
    run_tool,
    start_registry,
    upload_posts,
)

USER = "strata"
PASSWORD = "pw-" + secrets.token_hex(8)  # random, so a leak is unmistakable
BUILD = """
    file(name="busybox", source="bin/busybox")
    file(name="hello", source="etc/hello.txt")

    # No SBOM for the two images whose blob uploads the tests count: its referrers' blobs
    # would be uploads too. //:docker and //:private attach theirs.
    oci_image(
        name="app",
        repository="strata/app",
        dependencies=[":busybox"],
        entrypoint=["/bin/busybox", "echo", "published"],
        registries=["{host}"],
        image_tags=["v1", "latest"],
        sbom=False,
    )
    oci_image(
        name="other",
        repository="strata/other",
        dependencies=[":busybox", ":hello"],
        entrypoint=["/bin/busybox", "cat", "/etc/hello.txt"],
        registries=["{host}"],
        image_tags=["v1"],
        sbom=False,
    )
    oci_image(
        name="docker",
        repository="strata/docker",
        dependencies=[":busybox"],
        entrypoint=["/bin/busybox", "echo", "docker v2s2"],
        registries=["{host}", "{auth_host}"],
        image_tags=["v1"],
        publish_format="docker",
    )
    oci_image(
        name="private",
        repository="strata/private",
        dependencies=[":busybox"],
        entrypoint=["/bin/busybox", "echo", "private"],
        registries=["{auth_host}"],
        image_tags=["v1"],
    )
"""
@dataclass(frozen=True)
class Published:
    registry: Registry
    auth_registry: Registry
    first: subprocess.CompletedProcess[str]  # //:app, //:docker and //:private, with credentials
    first_output: list[dict]  # its --publish-output JSON
    second: subprocess.CompletedProcess[str]  # //:app, //:other and //:private, without
    first_log: str  # what the open registry logged during each run
    second_log: str


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, registry: Registry
) -> Iterator[Published]:
    base = tmp_path_factory.mktemp("publish")
    with start_registry(base / "auth-registry", htpasswd=(USER, PASSWORD)) as auth_registry:
        repo = ScratchRepo(base / "repo")
        repo.write(
            {
                "bin/busybox": Path(require_tool("busybox")).read_bytes(),
                "etc/hello.txt": "hello from another repository\n",
                "BUILD": BUILD.format(host=registry.host, auth_host=auth_registry.host),
            }
        )
        (repo.root / "bin/busybox").chmod(0o755)
        # No docker config.json: credentials come from the environment or not at all.
        no_docker_config = {"DOCKER_CONFIG": str(base / "no-docker-config")}
        credentials = {"STRATA_REGISTRY_USERNAME": USER, "STRATA_REGISTRY_PASSWORD": PASSWORD}

        log_start = registry.log_path.stat().st_size
        output = base / "publish-output.json"
        first = repo.run(
            "publish",
            f"--publish-output={output}",
            "//:app",
            "//:docker",
            "//:private",
            env={**no_docker_config, **credentials},
        )
        log_middle = registry.log_path.stat().st_size
        second = repo.run(
            "publish", "//:app", "//:other", "//:private", env=no_docker_config, check=False
        )
        log = registry.log_path.read_bytes()
        yield Published(
            registry,
            auth_registry,
            first,
            json.loads(output.read_text()),
            second,
            log[log_start:log_middle].decode(),
            log[log_middle:].decode(),
        )


def test_publish_pushes_each_tag_and_the_pulled_image_runs(
    published: Published, run_image, tmp_path: Path
) -> None:
    host = published.registry.host
    push = pushes(published.first.stdout)[f"{host}/strata/app"]
    assert set(push.tags) == {"v1", "latest"}
    digest = push.tags["v1"]
    assert push.tags["latest"] == digest
    for tag in ("v1", "latest"):
        assert f"{host}/strata/app:{tag} published to ({digest})" in published.first.stderr
        inspected = published.registry.inspect(f"strata/app:{tag}")
        assert inspected["Digest"] == digest
    # Config and busybox layer; the layer may be mounted when //:docker, which shares it, was
    # pushed first in the same run.
    assert (push.uploaded + push.mounted, push.present) == (2, 0)
    assert upload_posts(published.first_log, "strata/app") == push.uploaded

    pulled = tmp_path / "pulled.tar"
    run_tool(
        [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
         published.registry.ref("strata/app:v1"), f"docker-archive:{pulled}"]
    )  # fmt: skip
    assert_valid_image(pulled, "docker-archive")
    assert run_image(pulled) == (0, "published\n")


def test_second_identical_publish_uploads_nothing(published: Published) -> None:
    host = published.registry.host
    first = pushes(published.first.stdout)[f"{host}/strata/app"]
    again = pushes(published.second.stdout)[f"{host}/strata/app"]
    assert again.tags == first.tags
    assert (again.uploaded, again.uploaded_bytes, again.mounted, again.present) == (0, 0, 0, 2)
    assert upload_posts(published.second_log, "strata/app") == 0


def layer_digests(registry: Registry, name: str) -> list[str]:
    return [layer["digest"] for layer in registry.inspect(name, raw=True)["layers"]]


def test_docker_v2s2_publish(published: Published, run_image, tmp_path: Path) -> None:
    raw = published.registry.inspect("strata/docker:v1", raw=True)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert raw["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {layer["mediaType"] for layer in raw["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    pulled = tmp_path / "docker.tar"
    run_tool(
        [require_tool("skopeo"), "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
         published.registry.ref("strata/docker:v1"), f"docker-archive:{pulled}"]
    )  # fmt: skip
    assert_valid_image(pulled, "docker-archive")
    assert run_image(pulled) == (0, "docker v2s2\n")


def test_images_sharing_a_layer_push_the_same_blob(published: Published) -> None:
    """The premise of the next test: //:other's bottom layer is //:app's, byte for byte."""
    app = layer_digests(published.registry, "strata/app:v1")
    other = layer_digests(published.registry, "strata/other:v1")
    assert len(app) == 1 and len(other) == 2
    assert app[0] in other


def test_an_image_sharing_a_layer_uploads_only_its_new_blobs(published: Published) -> None:
    other = pushes(published.second.stdout)[f"{published.registry.host}/strata/other"]
    # Its config and //:hello's layer; the busybox layer mounted from strata/app (or present).
    assert other.uploaded == 2
    assert other.mounted + other.present == 1
    assert upload_posts(published.second_log, "strata/other") == 2


def test_publish_with_credentials_from_the_environment(published: Published) -> None:
    auth = published.auth_registry
    push = pushes(published.first.stdout)[f"{auth.host}/strata/private"]
    assert auth.inspect("strata/private:v1")["Digest"] == push.tags["v1"]
    assert f"{auth.host}/strata/private:v1 published to ({push.tags['v1']})" in (
        published.first.stderr
    )
    # Its SBOM went up through the same credentials, as referrers in the tag schema's index.
    hex_digest = push.tags["v1"].split(":", 1)[1]
    referrers = auth.inspect(f"strata/private:sha256-{hex_digest}", raw=True)
    assert sorted(m["artifactType"] for m in referrers["manifests"]) == [
        "application/spdx+json", "application/vnd.cyclonedx+json"
    ]


def test_publish_without_credentials_fails_clearly_and_leaks_nothing(
    published: Published,
) -> None:
    host = published.auth_registry.host
    second = published.second
    assert second.returncode != 0
    assert f"{host}/strata/private:v1 failed" in second.stderr
    assert re.search(
        rf"strata\.core push: error: {re.escape(host)}/strata/private: .*"
        rf"{re.escape(host)} requires authentication; no credentials were found",
        second.stderr,
    )
    # The open registry's images still went out in the same run.
    assert f"{published.registry.host}/strata/other:v1 published to" in second.stderr
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for run in (published.first, second):
        for secret in (PASSWORD, basic):
            assert secret not in run.stdout and secret not in run.stderr


def printed_digest(run: subprocess.CompletedProcess[str], name: str) -> str:
    """The digest `pants publish` printed for `name` ("host/repository:tag")."""
    match = re.search(rf"{re.escape(name)} published to \((sha256:[0-9a-f]{{64}})\)", run.stderr)
    assert match, f"no digest printed for {name}:\n{run.stderr}"
    return match[1]


@pytest.mark.parametrize(
    "repository, media_type, output",
    [
        ("strata/app", "application/vnd.oci.image.manifest.v1+json", "published\n"),
        ("strata/docker", "application/vnd.docker.distribution.manifest.v2+json", "docker v2s2\n"),
    ],
)
def test_the_printed_digest_is_the_pushed_manifest_and_docker_pulls_it(
    published: Published, dockerd: Dockerd, tmp_path: Path, repository, media_type, output
) -> None:
    """Per registry and per publish_format, the digest `pants publish` prints and writes to
    --publish-output is that of the manifest the registry holds: `image@digest` works."""
    registries = [published.registry]
    if repository == "strata/docker":
        registries.append(published.auth_registry)
    for registry in registries:
        name = f"{registry.host}/{repository}:v1"
        digest = printed_digest(published.first, name)
        creds = [f"--creds={USER}:{PASSWORD}"] if registry.credentials else []
        raw = run_tool(
            [require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false", *creds,
             registry.ref(f"{repository}@{digest}")]
        ).stdout  # fmt: skip
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
        assert json.loads(raw)["mediaType"] == media_type
        [entry] = [e for e in published.first_output if name in e["names"]]
        assert entry["published"] and entry["registry"] == registry.host
        assert (entry["digest"], entry["media_type"]) == (digest, media_type)

    name = f"{published.registry.host}/{repository}"
    reference = f"{name}@{printed_digest(published.first, f'{name}:v1')}"
    dockerd("pull", "--quiet", reference)
    assert dockerd.run(reference) == (0, output)
    saved = tmp_path / "saved.tar"
    dockerd("save", "--output", str(saved), reference)
    assert_valid_image(saved, "docker-archive")
