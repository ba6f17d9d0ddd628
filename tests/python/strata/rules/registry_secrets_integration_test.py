"""Registry credentials never reach anything Pants logs or writes: `pants -ldebug publish` with
STRATA_REGISTRY_PASSWORD, and `pants -ldebug package` of an image on an `oci_pull` of a private
registry whose credentials are in the docker config.json, both through pantsd as `./pants` runs.
Then the same publish and pull with the credentials from a docker credential helper (a fake
`docker-credential-fake` on the PATH `pants` was started with, the default of
[strata].credential_helper_search_paths), which the registry's log shows were used; and a
helper that is missing, or fails, is an error naming it and the registry.

Every file under the test's directory is searched afterwards (the scratch repo with its
`.pants.d` logs, run-tracker and pantsd logs, its own local store, and the TMPDIR that holds
Pants' sandboxes), apart from the registry's own files, the docker config and the helper that
hold the credentials by design, as is everything the runs printed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import (
    Registry,
    ScratchRepo,
    assert_valid_image,
    pushes,
    require_tool,
    start_registry,
)

USER = "strata"
PASSWORD = "pw-" + secrets.token_hex(12)  # random, so any hit is a leak
SECRETS = (
    PASSWORD,
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),  # the Authorization header's
    base64.b64encode(PASSWORD.encode()).decode(),
)
BUILD = """
    file(name="busybox", source="bin/busybox")
    oci_image(
        name="private",
        repository="strata/private",
        dependencies=[":busybox"],
        entrypoint=["/bin/busybox", "echo", "private"],
        registries=["{host}"],
        image_tags=["v1"],
    )
"""
PULL_BUILD = """
    oci_pull(name="pulled", registry="{host}", repository="strata/private", digest="{digest}")
    oci_image(name="on_pulled", base=":pulled", entrypoint=["/bin/busybox", "true"])
"""


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [secret for secret in SECRETS if secret.encode() in data]


def leaking_files(root: Path, skip: tuple[Path, ...]) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file() or any(p in path.parents for p in skip):
            continue
        hits = leaks(path.read_bytes())
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


HELPERS = {
    "fake": f"echo '{json.dumps({'ServerURL': '', 'Username': USER, 'Secret': PASSWORD})}'",
    "failing": "echo 'the session has expired: log in again' >&2; exit 1",
}


def helper_config(directory: Path, registry: Registry, helper: str) -> dict[str, str]:
    """A docker config whose credHelpers names `helper` for the registry."""
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"credHelpers": {registry.host: helper}}))
    return {"DOCKER_CONFIG": str(directory)}


@pytest.fixture(scope="module")
def scene(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Registry, dict[str, subprocess.CompletedProcess[str]]]]:
    base = tmp_path_factory.mktemp("secrets")
    (base / "tmp").mkdir()
    (base / "bin").mkdir()
    for name, script in HELPERS.items():
        helper = base / "bin" / f"docker-credential-{name}"
        helper.write_text(f'#!/bin/sh\necho "$1 $(cat)" >> {base}/{name}.calls\n{script}\n')
        helper.chmod(0o755)
    runs = {}
    with start_registry(base / "registry", htpasswd=(USER, PASSWORD)) as registry:
        repo = ScratchRepo(base / "repo", isolated_cache=True)
        repo.write(
            {
                "bin/busybox": Path(require_tool("busybox")).read_bytes(),
                "BUILD": BUILD.format(host=registry.host),
            }
        )
        (repo.root / "bin/busybox").chmod(0o755)
        common = {"TMPDIR": str(base / "tmp")}
        from_environment = {
            **common,
            "DOCKER_CONFIG": str(base / "no-docker-config"),
            "STRATA_REGISTRY_USERNAME": USER,
            "STRATA_REGISTRY_PASSWORD": PASSWORD,
        }
        with_helpers = {**common, "PATH": f"{base / 'bin'}:{os.environ['PATH']}"}
        helped = {**with_helpers, **helper_config(base / "config-fake", registry, "fake")}

        def run(name: str, *args: str, env: dict[str, str], check: bool = True) -> None:
            runs[name] = repo.run("-ldebug", *args, env=env, pantsd=True, check=check)

        try:
            # Twice through one pantsd: the second run must not reuse the first's hand-off.
            run("publish", "publish", "//:private", env=from_environment)
            run("publish again", "publish", "//:private", env=from_environment)
            digest = registry.inspect("strata/private:v1")["Digest"]
            config = base / "docker-config" / "config.json"
            config.parent.mkdir()
            auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            config.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
            config.chmod(0o600)
            repo.write({"pull/BUILD": PULL_BUILD.format(host=registry.host, digest=digest)})
            run("pull", "package", "pull:on_pulled",
                env={**common, "DOCKER_CONFIG": str(config.parent)})
            # Through credential helpers. Each pull's DOCKER_CONFIG and PATH differ from the
            # first's, so it is not that one's cache hit (nor is a failed pull cached).
            missing = helper_config(base / "config-missing", registry, "missing")
            run("publish (missing helper)", "publish", "//:private",
                env={**with_helpers, **missing}, check=False)
            failing = helper_config(base / "config-failing", registry, "failing")
            run("pull (failing helper)", "package", "pull:on_pulled",
                env={**with_helpers, **failing}, check=False)
            log_before = len(registry.log_path.read_text(errors="replace").splitlines())
            run("publish (helper)", "publish", "//:private", env=helped)
            run("pull (helper)", "package", "pull:on_pulled", env=helped)
            (registry.root / "helped.log").write_text(
                "\n".join(registry.log_path.read_text(errors="replace").splitlines()[log_before:])
            )
        finally:
            repo.stop_pantsd()
        yield base, registry, runs


def test_publish_and_pull_with_credentials_succeed(scene) -> None:
    base, registry, runs = scene
    for name in ("publish", "publish again", "publish (helper)"):
        run = runs[name]
        (push,) = pushes(run.stdout).values()
        assert f"{registry.host}/strata/private:v1 published to ({push.tags['v1']})" in run.stderr
    for name in ("pull", "pull (helper)"):
        assert runs[name].returncode == 0, runs[name].stderr[-3000:]
    assert (base / "repo/dist/pull/on_pulled.tar").is_file()
    # The runs did log at debug what they ran, so the searches below are meaningful.
    assert "Execute InteractiveProcess(" in runs["publish"].stderr
    assert "Pulling " in runs["pull"].stderr and "Pulling " in runs["pull (helper)"].stderr


def test_credentials_from_a_helper_were_used(scene) -> None:
    base, registry, _ = scene
    # docker's protocol: `get`, the registry on stdin; once for the push, once for the pull.
    assert (base / "fake.calls").read_text() == f"get {registry.host}\n" * 2
    # The htpasswd registry authorized the push's manifest and the pull's blobs: these runs
    # had no credentials but the helper's.
    authorized = [
        line for line in (registry.root / "helped.log").read_text().splitlines()
        if 'msg="authorized request"' in line
    ]  # fmt: skip
    assert any(
        "method=PUT" in line and "uri=/v2/strata/private/manifests/v1 " in line
        for line in authorized
    ), authorized
    assert any(
        "method=GET" in line and 'uri="/v2/strata/private/blobs/sha256:' in line
        for line in authorized
    ), authorized


def test_a_missing_or_failing_helper_is_a_clear_error(scene) -> None:
    base, registry, runs = scene
    missing, failing = runs["publish (missing helper)"], runs["pull (failing helper)"]
    assert missing.returncode != 0 and failing.returncode != 0
    config = base / "config-missing" / "config.json"
    assert (
        f"the credential helper docker-credential-missing (from {config} "
        f"(credHelpers.{registry.host})) for {registry.host}: docker-credential-missing is in "
        "no directory of $PATH"
    ) in missing.stderr, missing.stderr[-3000:]
    config = base / "config-failing" / "config.json"
    assert (
        f"the credential helper docker-credential-failing (from {config} "
        f"(credHelpers.{registry.host})) for {registry.host} failed (exit status 1): "
        "the session has expired: log in again"
    ) in failing.stderr, failing.stderr[-3000:]
    assert not (base / "missing.calls").exists() and (base / "failing.calls").is_file()


def test_no_secret_in_any_output_log_or_file(scene) -> None:
    base, registry, runs = scene
    found = leaking_files(base, skip=(registry.root, base / "docker-config", base / "bin"))
    for name, run in runs.items():
        for stream in ("stdout", "stderr"):
            hits = leaks(getattr(run, stream))
            if hits:
                found[f"{name}: {stream}"] = hits
    assert found == {}
    assert (base / "repo/.pants.d").is_dir() and list((base / "repo/.pants-store").iterdir())


def test_no_credential_file_is_left_behind(scene) -> None:
    base, _, _ = scene
    assert [p.name for p in (base / "tmp").iterdir() if "credential" in p.name] == []


def test_the_image_on_the_privately_pulled_base_is_valid_and_runs(scene, run_image) -> None:
    base, _, _ = scene
    image = base / "repo/dist/pull/on_pulled.tar"
    assert_valid_image(image, "docker-archive")
    assert run_image(image) == (0, "")
