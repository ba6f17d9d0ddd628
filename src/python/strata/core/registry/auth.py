"""Registry credentials (explicit, environment, docker config.json and its credential
helpers) and auth challenges.

Nothing here puts a password, identity token, or anything derived from one, into a message
or a repr.
"""

import base64
import binascii
import json
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from strata.core.registry.errors import AuthenticationError

ENV_USERNAME = "STRATA_REGISTRY_USERNAME"
ENV_PASSWORD = "STRATA_REGISTRY_PASSWORD"
MAX_CREDENTIALS_FILE = 64 * 1024
HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT = 120.0  # seconds; a helper may open a browser or refresh a cloud login
# docker-credential-helpers' protocol: this Username says the Secret is an identity token
# (an OAuth2 refresh token), and this message (on stdout, exit 1) says there are none.
IDENTITY_TOKEN_USERNAME = "<token>"
HELPER_NOT_FOUND = "credentials not found in native keychain"
# Docker keeps Docker Hub's credentials under its v1 index URL, whatever host is pulled from.
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

# One `key=value` or `key="quoted \" value"` parameter of an RFC 7235 challenge.
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?\s*')
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Credentials:
    """A username and password, or an identity token (an OAuth2 refresh token that the
    registry's token server exchanges for access tokens, as docker does); `source` says where
    they came from, for error messages."""

    username: str
    password: str = field(repr=False)
    source: str = "given explicitly"
    identity_token: str = field(default="", repr=False)

    @property
    def has_basic(self) -> bool:
        return bool(self.username)

    def basic_authorization(self) -> str:
        pair = f"{self.username}:{self.password}".encode("utf-8")
        return "Basic " + base64.b64encode(pair).decode("ascii")


def docker_config_path(environ: Mapping[str, str] = os.environ) -> str:
    directory = environ.get("DOCKER_CONFIG")
    if not directory:
        directory = os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def credentials_for(
    registry: str, environ: Mapping[str, str] = os.environ, *, from_environment: bool = True
) -> Optional[Credentials]:
    """The credentials for `registry` (host[:port]): $STRATA_REGISTRY_USERNAME and
    $STRATA_REGISTRY_PASSWORD when set (and `from_environment`), else the docker config.json's,
    in docker's order: the helper of `credHelpers.<registry>`, else the `credsStore` helper,
    else `auths.<registry>`. A helper is found on $PATH of `environ` and runs with `environ`;
    one that is missing, fails or answers nonsense is an AuthenticationError naming it."""
    username, password = environ.get(ENV_USERNAME), environ.get(ENV_PASSWORD)
    if from_environment and (username or password):
        if not (username and password):
            raise ValueError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
        return Credentials(username, password, f"${ENV_USERNAME}/${ENV_PASSWORD}")
    return _from_docker_config(docker_config_path(environ), registry, environ)


def take_credentials_file(path: str) -> Dict[str, str]:
    """The $STRATA_REGISTRY_USERNAME/$STRATA_REGISTRY_PASSWORD values in the JSON object of a
    hand-off file (the Pants shell's: a process's argv and environment are logged, a file's
    contents are not), which is deleted as soon as it is open. Like ssh with a private key, it
    refuses a file that is not a regular file of this user's, readable by nobody else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise ValueError(
                f"{path} must be a regular file of this user's that nobody else can read (0600)"
            )
        os.unlink(path)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_CREDENTIALS_FILE + 1)
    finally:
        os.close(fd)
    try:
        values = json.loads(data) if len(data) <= MAX_CREDENTIALS_FILE else None
    except ValueError:  # never the document in the message
        values = None
    names = (ENV_USERNAME, ENV_PASSWORD)
    if not isinstance(values, dict) or not all(
        key in names and isinstance(value, str) for key, value in values.items()
    ):
        raise ValueError(f"{path} is not a JSON object of {' and '.join(names)}")
    return values


def no_credentials_hint(
    environ: Mapping[str, str] = os.environ, *, from_environment: bool = True
) -> str:
    """What to do when credentials_for(..., from_environment=...) found none."""
    if from_environment:
        return (
            f"no credentials were found: set {ENV_USERNAME} and {ENV_PASSWORD}, or log in so "
            "that the docker config.json has them"
        )
    return (
        f"no credentials were found in {docker_config_path(environ)}: pulls read only the "
        "docker config.json ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), never "
        f"${ENV_USERNAME}/${ENV_PASSWORD}, which would become part of the cached pull's key; "
        "log in (docker login) so that the config.json has them"
    )


def _config_host(key: str) -> str:
    """docker login writes keys as "host", "https://host" or "https://host/v1/". A registry
    is looked up, and handed to a helper, by the host[:port] its image references name (docker
    files one public registry under a legacy v1 index URL instead; Strata names no registry
    host, so name that one's host in `credHelpers` or `auths`)."""
    key = re.sub(r"^[a-z]+://", "", key.strip().lower())
    return key.split("/", 1)[0]


def _entry_for(section: object, registry: str) -> Optional[Tuple[str, object]]:
    """The (key, value) of a config.json section (`auths`, `credHelpers`) for `registry`."""
    if not isinstance(section, dict):
        return None
    host = _config_host(registry)
    return next(((k, v) for k, v in section.items() if _config_host(k) == host), None)


def _from_docker_config(
    path: str, registry: str, environ: Mapping[str, str]
) -> Optional[Credentials]:
    try:
        with open(path, "rb") as f:
            config = json.load(f)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:  # e.msg and the position only: never the document
        raise ValueError(f"{path} is not valid JSON: {e.msg} (line {e.lineno})") from None
    if not isinstance(config, dict):
        return None
    helper = _entry_for(config.get("credHelpers"), registry)
    if helper and helper[1]:
        return run_helper(helper[1], registry, f"{path} (credHelpers.{helper[0]})", environ)
    if config.get("credsStore"):
        return run_helper(config["credsStore"], registry, f"{path} (credsStore)", environ)
    found = _entry_for(config.get("auths"), registry)
    if not found or not isinstance(found[1], dict):
        return None
    key, entry = found
    source = f"{path} (auths.{key})"
    if entry.get("identitytoken"):
        return Credentials("", "", source, identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            pair = base64.b64decode(entry["auth"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, TypeError):
            pair = ""
        username, sep, password = pair.partition(":")
        if not (sep and username):
            raise ValueError(f"{source}: `auth` is not base64 of username:password")
        return Credentials(username, password, source)
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"], source)
    return None


def run_helper(
    name: object, registry: str, source: str, environ: Mapping[str, str]
) -> Optional[Credentials]:
    """`docker-credential-<name> get`, told the server URL on stdin, as docker-credential-helpers'
    client does: its JSON answer on stdout as Credentials, or None when it has none for the
    registry. Its stdout is never shown, since it holds the secret."""
    program = f"{HELPER_PREFIX}{name}"
    what = f"the credential helper {program} (from {source}) for {registry}"
    if not isinstance(name, str) or not _HELPER_NAME.match(name):
        raise AuthenticationError(f"{what}: the helper's name must be a plain file name suffix")
    search_path = environ.get("PATH", os.defpath)
    executable = shutil.which(program, path=search_path)
    if executable is None:
        raise AuthenticationError(
            f"{what}: {program} is in no directory of $PATH ({search_path or 'empty'}); "
            "install it, or in Pants name its directory in "
            "[strata].credential_helper_search_paths"
        )
    try:
        done = subprocess.run(
            [executable, "get"],
            input=registry.encode("utf-8"),
            capture_output=True,
            env=dict(environ),
            timeout=HELPER_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise AuthenticationError(f"{what} gave no answer in {HELPER_TIMEOUT:g}s") from None
    except OSError as e:
        raise AuthenticationError(f"{what} could not be run: {e.strerror}") from None
    if done.returncode != 0:
        message = _helper_message(done.stderr) or _helper_message(done.stdout)
        if message == HELPER_NOT_FOUND:
            return None
        raise AuthenticationError(
            f"{what} failed (exit status {done.returncode}){': ' + message if message else ''}"
        )
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = None
    if not (
        isinstance(answer, dict)
        and isinstance(answer.get("Username"), str)
        and isinstance(answer.get("Secret"), str)
        and answer["Username"]
        and answer["Secret"]
    ):
        raise AuthenticationError(
            f"{what} did not answer a JSON object with a Username and a Secret"
        )
    source = f"{program}, from {source}"
    if answer["Username"] == IDENTITY_TOKEN_USERNAME:
        return Credentials("", "", source, identity_token=answer["Secret"])
    return Credentials(answer["Username"], answer["Secret"], source)


def _helper_message(output: bytes) -> str:
    """The first line of a failed helper's output, unless it looks like its JSON answer."""
    lines = output.decode("utf-8", "replace").strip().splitlines()
    line = "".join(c for c in (lines[0] if lines else "") if c.isprintable()).strip()
    return "" if line.startswith("{") else line[:200]


def parse_challenge(header: str) -> Tuple[str, Dict[str, str]]:
    """`WWW-Authenticate: Bearer realm="...",service="...",scope="..."` -> ("bearer", params)."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        key, quoted, bare = match.groups()
        params[key.lower()] = _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
    return scheme.lower(), params
