"""Registry credentials never reach anything Pants logs or writes: `pants -ldebug publish` with
STRATA_REGISTRY_PASSWORD, and `pants -ldebug package` of an image on an `oci_pull` of a private
registry whose credentials are in the docker config.json, both through pantsd as `./pants` runs.

Every file under the test's directory is searched afterwards (the scratch repo with its
`.pants.d` logs, run-tracker and pantsd logs, its own local store, and the TMPDIR that holds
Pants' sandboxes), apart from the registry's own files and the docker config that holds the
credentials by design, as is everything the runs printed.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from strata_harness import Registry, ScratchRepo, pushes, require_tool, start_registry

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


class Runs:
    def __init__(self) -> None:
        self.all: list[subprocess.CompletedProcess[str]] = []

    def add(self, run: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        self.all.append(run)
        return run


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Registry, Runs]]:
    base = tmp_path_factory.mktemp("secrets")
    (base / "tmp").mkdir()
    runs = Runs()
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
        try:
            # Twice through one pantsd: the second run must not reuse the first's hand-off.
            for _ in range(2):
                runs.add(repo.run("-ldebug", "publish", "//:private", env=from_environment,
                                  pantsd=True))  # fmt: skip
            digest = registry.inspect("strata/private:v1")["Digest"]
            config = base / "docker-config" / "config.json"
            config.parent.mkdir()
            auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            config.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
            config.chmod(0o600)
            repo.write({"pull/BUILD": PULL_BUILD.format(host=registry.host, digest=digest)})
            runs.add(repo.run("-ldebug", "package", "pull:on_pulled",
                              env={**common, "DOCKER_CONFIG": str(config.parent)}, pantsd=True))
        finally:
            repo.stop_pantsd()
        yield base, registry, runs


def test_publish_and_pull_with_credentials_succeed(scene) -> None:
    base, registry, runs = scene
    first, second, pull = runs.all
    for run in (first, second):
        (push,) = pushes(run.stdout).values()
        assert f"{registry.host}/strata/private:v1 published to ({push.tags['v1']})" in run.stderr
    assert (base / "repo/dist/pull/on_pulled.tar").is_file()
    # The runs did log at debug what they ran, so the searches below are meaningful.
    assert "Execute InteractiveProcess(" in first.stderr
    assert "Pulling " in pull.stderr


def test_no_secret_in_any_output_log_or_file(scene) -> None:
    base, registry, runs = scene
    found = leaking_files(base, skip=(registry.root, base / "docker-config"))
    for i, run in enumerate(runs.all):
        for stream in ("stdout", "stderr"):
            hits = leaks(getattr(run, stream))
            if hits:
                found[f"run {i}: {stream}"] = hits
    assert found == {}
    assert (base / "repo/.pants.d").is_dir() and list((base / "repo/.pants-store").iterdir())


def test_no_credential_file_is_left_behind(scene) -> None:
    base, _, _ = scene
    assert [p.name for p in (base / "tmp").iterdir() if "credential" in p.name] == []
