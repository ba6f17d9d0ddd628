"""Credentials, challenges, basic auth and bearer tokens; no secret in any message."""

import base64
import json
import os
import re
import secrets
import traceback
import urllib.parse
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from strata.core import cli
from strata.core.oci import image
from strata.core.oci import media_types
from strata.core.oci.push_manifest import manifest_to_push
from strata.core.registry.auth import (
    Credentials,
    credentials_for,
    parse_challenge,
    take_credentials_file,
)
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import AuthenticationError
from strata.core.registry.pull import pull_layout
from strata.core.registry.push_policy import push_image
from strata_harness import Request, make_oci_layout, require_tool, start_registry
from strata_harness.registry_images import LocalImage, local_image

OCI_MANIFEST = media_types.OCI_MANIFEST
PASSWORD = "pw-" + secrets.token_hex(8)  # random, so a leak is unmistakable


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
    push_image(client, "strata/private", ["1"], img.manifest, OCI_MANIFEST, img.blobs)

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
    push_image(pusher, "strata/pulled", ["1"], img.manifest, OCI_MANIFEST, img.blobs)
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

    report = push_image(
        client,
        "private/copy",
        ["v2"],
        img.manifest,
        OCI_MANIFEST,
        img.blobs,
        known_in="private/app",
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


def test_credentials_from_environment_and_docker_config(tmp_path):
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    env = {"DOCKER_CONFIG": str(config_dir)}
    assert credentials_for("registry.example", env) is None
    auth = base64.b64encode(b"me:p:w").decode()
    (config_dir / "config.json").write_text(
        json.dumps(
            {"auths": {"https://registry.example": {"auth": auth}, "other.example": {"auth": "x"}}}
        )
    )
    creds = credentials_for("registry.example", env)
    assert (creds.username, creds.password) == ("me", "p:w")
    assert creds.source == f"{config_dir}/config.json (auths.https://registry.example)"
    assert credentials_for("elsewhere.example", env) is None
    with pytest.raises(ValueError, match="auths.other.example.*not base64"):
        credentials_for("other.example", env)

    env.update(STRATA_REGISTRY_USERNAME="ci", STRATA_REGISTRY_PASSWORD="token")
    assert credentials_for("registry.example", env) == Credentials(
        "ci", "token", "$STRATA_REGISTRY_USERNAME/$STRATA_REGISTRY_PASSWORD"
    )
    del env["STRATA_REGISTRY_PASSWORD"]
    with pytest.raises(ValueError, match="set both"):
        credentials_for("registry.example", env)

    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text('{"auths": {"registry.example": {"auth": "' + PASSWORD)
    with pytest.raises(ValueError, match="is not valid JSON") as e:
        credentials_for("registry.example", {"HOME": str(home)})
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


def credentials_file(path: Path, values: dict, mode: int = 0o600) -> str:
    path.write_text(json.dumps(values))
    path.chmod(mode)
    return str(path)


def test_push_takes_its_credentials_from_a_file_it_deletes(
    auth_registry, tmp_path, monkeypatch, capsys
):
    """What `pants publish` does: the push's argv names a 0600 file, not the secret, and the
    environment holds none; the file is gone once the push has read it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    layout = make_oci_layout(tmp_path / "layout", {"etc/motd": b"handed off\n"})
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(manifest_to_push(layout, docker=False))
    values = {"STRATA_REGISTRY_USERNAME": "strata", "STRATA_REGISTRY_PASSWORD": PASSWORD}
    handoff = credentials_file(tmp_path / "handoff", values)
    argv = ["push", "--layout", str(layout), "--manifest", str(manifest),
            "--repository", "strata/handoff", "--tag", "v1", "--registry", auth_registry.host]
    assert cli.main([*argv, "--credentials-file", handoff]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{auth_registry.host}/strata/handoff:v1@sha256:"), err
    assert not Path(handoff).exists()
    # Read once: a second push without it has no credentials.
    assert cli.main(argv) == 1
    assert "requires authentication; no credentials were found" in capsys.readouterr().err


def test_a_credentials_file_is_refused_unless_private_and_well_formed(tmp_path):
    values = {"STRATA_REGISTRY_USERNAME": "strata", "STRATA_REGISTRY_PASSWORD": PASSWORD}
    readable = credentials_file(tmp_path / "readable", values, 0o640)
    with pytest.raises(ValueError, match="that nobody else can read"):
        take_credentials_file(readable)
    link = tmp_path / "link"
    link.symlink_to(credentials_file(tmp_path / "target", values))
    with pytest.raises(OSError):
        take_credentials_file(str(link))
    for bad in ('{"STRATA_REGISTRY_PASSWORD": "' + PASSWORD, json.dumps({"TOKEN": PASSWORD})):
        path = tmp_path / "bad"
        path.write_text(bad)
        path.chmod(0o600)
        with pytest.raises(ValueError, match="is not a JSON object of") as e:
            take_credentials_file(str(path))
        assert PASSWORD not in str(e.value) and not path.exists()
    good = credentials_file(tmp_path / "good", values)
    assert take_credentials_file(good) == values and not Path(good).exists()
