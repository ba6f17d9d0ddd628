"""Registry credentials (explicit, environment, docker config.json) and auth challenges.

Nothing here puts a password, or anything derived from one, into a message or a repr.
"""

import base64
import binascii
import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

ENV_USERNAME = "STRATA_REGISTRY_USERNAME"
ENV_PASSWORD = "STRATA_REGISTRY_PASSWORD"
MAX_CREDENTIALS_FILE = 64 * 1024

# One `key=value` or `key="quoted \" value"` parameter of an RFC 7235 challenge.
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?\s*')
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Credentials:
    """A username and password; `source` says where they came from, for error messages."""

    username: str
    password: str = field(repr=False)
    source: str = "given explicitly"

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
    $STRATA_REGISTRY_PASSWORD when set (and `from_environment`), else `auths.<registry>` of
    the docker config.json. Credential helpers (credsStore, credHelpers) are not run."""
    username, password = environ.get(ENV_USERNAME), environ.get(ENV_PASSWORD)
    if from_environment and (username or password):
        if not (username and password):
            raise ValueError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
        return Credentials(username, password, f"${ENV_USERNAME}/${ENV_PASSWORD}")
    return _from_docker_config(docker_config_path(environ), registry)


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
    """docker login writes keys as "host", "https://host" or "https://host/v1/"."""
    key = re.sub(r"^[a-z]+://", "", key.strip().lower())
    return key.split("/", 1)[0]


def _from_docker_config(path: str, registry: str) -> Optional[Credentials]:
    try:
        with open(path, "rb") as f:
            config = json.load(f)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:  # e.msg and the position only: never the document
        raise ValueError(f"{path} is not valid JSON: {e.msg} (line {e.lineno})") from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _config_host(key) != registry.lower() or not isinstance(entry, dict):
            continue
        source = f"{path} (auths.{key})"
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


def parse_challenge(header: str) -> Tuple[str, Dict[str, str]]:
    """`WWW-Authenticate: Bearer realm="...",service="...",scope="..."` -> ("bearer", params)."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        key, quoted, bare = match.groups()
        params[key.lower()] = _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
    return scheme.lower(), params
