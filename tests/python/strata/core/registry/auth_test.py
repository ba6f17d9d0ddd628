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
IDENTITY_TOKEN = "idt-" + secrets.token_hex(8)


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
        IDENTITY_TOKEN,
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
        """GET with basic credentials or none; or docker's OAuth2 POST, whose refresh token
        must be IDENTITY_TOKEN."""
        self.token_requests.append(request)
        if request.method == "POST":
            query = urllib.parse.parse_qs(request.body.decode())
            authorization = query.get("refresh_token") == [IDENTITY_TOKEN] and "identity"
            if query.get("grant_type") != ["refresh_token"] or not authorization:
                return 401, {}, b'{"details":"invalid refresh token"}'
            query["scope"] = " ".join(query.get("scope", [])).split()
        else:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
            basic = "Basic " + base64.b64encode(f"strata:{PASSWORD}".encode()).decode()
            authorization = request.headers.get("Authorization")
            if authorization not in (None, basic):
                return 401, {}, b'{"details":"incorrect username or password"}'
        if query.get("service") != ["fake-registry"]:
            return 401, {}, b'{"details":"unknown service"}'
        granted = set()
        for scope in query.get("scope", []):
            _, repository, actions = scope.split(":")
            for action in actions.split(","):
                if authorization or (repository.startswith("public/") and action == "pull"):
                    granted.add((repository, action))
        token = secrets.token_hex(8)
        self.tokens[token] = granted
        answer = {"access_token" if request.method == "POST" else "token": token}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

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


def fake_helper(directory: Path, name: str, script: str) -> None:
    """docker-credential-<name> in `directory`: a shell script that records its arguments and
    stdin in <name>.calls, then runs `script`."""
    directory.mkdir(exist_ok=True)
    helper = directory / f"docker-credential-{name}"
    calls = directory / f"{name}.calls"
    helper.write_text(f'#!/bin/sh\nprintf "%s %s\\n" "$*" "$(cat)" >> {calls}\n{script}\n')
    helper.chmod(0o755)


def answer(username: str, secret: str) -> str:
    return f"echo '{json.dumps({'ServerURL': 'ignored', 'Username': username, 'Secret': secret})}'"


def docker_config(tmp_path: Path, config: dict) -> Dict[str, str]:
    """An environment whose docker config.json is `config` and whose PATH has the helpers."""
    (tmp_path / "docker").mkdir(exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(json.dumps(config))
    return {"DOCKER_CONFIG": str(tmp_path / "docker"), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}


def test_credential_helpers_in_dockers_order(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_helper(bin_dir, "per-registry", answer("AWS", PASSWORD))
    fake_helper(bin_dir, "store", answer("store-user", "store-" + PASSWORD))
    basic = base64.b64encode(b"file-user:file-pw").decode()
    env = docker_config(
        tmp_path,
        {
            "auths": {"ecr.example": {"auth": basic}, "plain.example": {"auth": basic}},
            "credHelpers": {
                "ecr.example": "per-registry",
                "https://port.example:5000": "per-registry",
            },
            "credsStore": "store",
        },
    )
    config = f"{tmp_path}/docker/config.json"
    creds = credentials_for("ecr.example", env)
    assert (creds.username, creds.password) == ("AWS", PASSWORD)
    assert creds.source == (
        f"docker-credential-per-registry, from {config} (credHelpers.ecr.example)"
    )
    assert PASSWORD not in repr(creds)
    assert credentials_for("port.example:5000", env).username == "AWS"
    # Without a credHelpers entry, the credsStore answers, even where `auths` has an entry.
    assert credentials_for("plain.example", env).username == "store-user"
    # Each helper was asked `get`, with the registry's config key on stdin.
    assert (bin_dir / "per-registry.calls").read_text() == (
        "get ecr.example\nget port.example:5000\n"
    )
    assert (bin_dir / "store.calls").read_text() == "get plain.example\n"

    # Without any helper, `auths`.
    env = docker_config(tmp_path, {"auths": {"plain.example": {"auth": basic}}})
    assert credentials_for("plain.example", env).username == "file-user"


def test_a_helper_without_credentials_means_none(tmp_path):
    # docker-credential-helpers' message for "none": on stdout, exit status 1.
    none = "echo 'credentials not found in native keychain'; exit 1"
    fake_helper(tmp_path / "bin", "empty", none)
    env = docker_config(tmp_path, {"credsStore": "empty", "auths": {"reg.example": {}}})
    assert credentials_for("reg.example", env) is None


@pytest.mark.parametrize(
    "script, message",
    [
        (None, r"docker-credential-broken is in no directory of \$PATH \(.*/bin:/usr/bin:/bin\)"),
        ("echo 'no session: run login first' >&2; exit 3",
         r"failed \(exit status 3\): no session: run login first"),
        # Its stdout may be a secret: never shown, even when it fails.
        (answer("strata", PASSWORD) + "; exit 1", r"failed \(exit status 1\)\Z"),
        (f"echo 'Username: strata Secret: {PASSWORD}'",
         "did not answer a JSON object with a Username and a Secret"),
        (f"echo '{json.dumps({'Username': 'strata'})}'", "did not answer a JSON object"),
    ],
    ids=["missing", "failing", "failing-with-json", "not-json", "no-secret"],
)
def test_a_missing_failing_or_nonsensical_helper_is_an_error(tmp_path, script, message):
    if script is not None:
        fake_helper(tmp_path / "bin", "broken", script)
    env = docker_config(tmp_path, {"credHelpers": {"reg.example": "broken"}})
    with pytest.raises(AuthenticationError) as e:
        credentials_for("reg.example", env)
    text = str(e.value)
    assert text.startswith(
        "the credential helper docker-credential-broken (from "
        f"{tmp_path}/docker/config.json (credHelpers.reg.example)) for reg.example"
    ), text
    assert re.search(message, text), text
    assert_no_secret(e.value)


def test_pull_and_push_through_a_helper(auth_registry, tmp_path, monkeypatch):
    """Against the htpasswd registry: the credsStore helper's credentials, to pull and push."""
    fake_helper(tmp_path / "bin", "fake", answer("strata", PASSWORD))
    env = docker_config(tmp_path, {"credsStore": "fake"})
    monkeypatch.setenv("DOCKER_CONFIG", env["DOCKER_CONFIG"])
    monkeypatch.setenv("PATH", env["PATH"])
    img = local_image(tmp_path / "img", {"etc/motd": b"helped\n"})
    client = RegistryClient(auth_registry.host)
    report = push_image(client, "strata/helped", ["v1"], img.manifest, OCI_MANIFEST, img.blobs)
    assert report.digest == img.digest
    platform = "linux/amd64"
    pulled = pull_layout(auth_registry.host, "strata/helped", img.digest, platform, tmp_path / "o")
    assert pulled == img.digest
    assert (tmp_path / "bin" / "fake.calls").read_text() == f"get {auth_registry.host}\n" * 2


def test_identity_tokens_are_exchanged_as_refresh_tokens(token_registry, tmp_path):
    fake, img = token_registry
    fake_helper(tmp_path / "bin", "oauth", answer("<token>", IDENTITY_TOKEN))
    env = docker_config(tmp_path, {"credHelpers": {fake.host: "oauth"}})
    creds = credentials_for(fake.host, env)
    assert (creds.username, creds.identity_token) == ("", IDENTITY_TOKEN)
    assert IDENTITY_TOKEN not in repr(creds)
    client = RegistryClient(fake.host, credentials=creds)
    assert client.resolve("private/app", "v1")[2] == img.digest
    (exchange,) = fake.token_requests
    assert exchange.method == "POST" and "Authorization" not in exchange.headers
    assert urllib.parse.parse_qs(exchange.body.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [IDENTITY_TOKEN],
        "service": ["fake-registry"],
        "scope": ["repository:private/app:pull"],
        "client_id": ["strata"],
    }
    # `identitytoken` of a config.json `auths` entry, as `docker login` writes for some registries.
    env = docker_config(tmp_path, {"auths": {fake.host: {"identitytoken": IDENTITY_TOKEN}}})
    assert credentials_for(fake.host, env).identity_token == IDENTITY_TOKEN
    wrong = Credentials("", "", "a test", identity_token="wrong-" + IDENTITY_TOKEN)
    with pytest.raises(AuthenticationError, match="refused a token.*credentials: a test") as e:
        RegistryClient(fake.host, credentials=wrong).resolve("private/app", "v1")
    assert_no_secret(e.value)


def test_an_identity_token_is_no_basic_credential(auth_registry):
    token = Credentials("", "", "a test", identity_token=IDENTITY_TOKEN)
    with pytest.raises(AuthenticationError, match=r"\(a test\) are an identity token, which") as e:
        RegistryClient(auth_registry.host, credentials=token).resolve("strata/any", "v1")
    assert_no_secret(e.value)
