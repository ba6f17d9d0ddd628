"""HTTP to one registry, after go-containerregistry's `remote/transport`: keep-alive
connections, dropped connections told from answers, retries with backoff of transient faults,
the ping that learns how the registry authenticates, basic auth and bearer tokens, and the
registry's errors as exceptions. A registry that sends too slowly (strata.core.registry.stall) is a
transient fault too, so that a trickle cannot hold a pull or push open forever. What is sent is
strata.core.registry.client's business.

One transport is not thread-safe: it keeps one keep-alive connection per host. Messages never
hold credentials or tokens.
"""

import http.client
import json
import logging
import os
import re
import ssl
import time
import urllib.parse
from typing import (
    Callable,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from strata.core.registry.auth import (
    Credentials,
    credentials_for,
    no_credentials_hint,
    parse_challenge,
)
from strata.core.registry.errors import (
    AuthenticationError,
    AuthorizationError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    UnsupportedMediaTypeError,
)
from strata.core.registry.stall import (
    GuardedHTTPConnection,
    GuardedHTTPSConnection,
    StallRule,
    Stalled,
)

IO_CHUNK = 1024 * 1024
MAX_SMALL_BODY = 64 * 1024  # error bodies and token answers
USER_AGENT = "strata"
_RESENDABLE = ("GET", "HEAD")  # requests that change nothing on the registry
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_REGISTRY = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?\Z"
)
# Printable ASCII only: a token goes into a header, and http.client echoes invalid header
# values in its exceptions.
_TOKEN = re.compile(r"[!-~]+\Z")

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_U = TypeVar("_U")


class Transient(Exception):
    """A 5xx/429 answer or a connection failure: the whole operation is tried again."""


class FileSlice(NamedTuple):
    """A request body streamed from disk, so re-sendable on retry."""

    path: str
    offset: int
    length: int


def _origin(url: str) -> Tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _without_query(url: str) -> str:
    """For messages: upload-session state and storage signatures live in query strings."""
    return url.split("?", 1)[0]


def with_query(url: str, params: Sequence[Tuple[str, str]]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params)) if q)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _registry_errors(body: bytes) -> List[dict]:
    try:
        errors = json.loads(body).get("errors")
        return [e for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, TypeError):
        return []


def _error_detail(body: bytes) -> str:
    """The registry's `errors` as "CODE: message", or the start of a body that is not JSON."""
    errors = _registry_errors(body)
    if errors:
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    else:
        text = " ".join(body[:200].decode("utf-8", "replace").split())
    text = "".join(c for c in text if c.isprintable())[:300]
    return f" ({text})" if text else ""


class Response:
    """A response on a pooled connection, which is closed if the body is left unread.

    A body that ends before its Content-Length (http.client just returns fewer bytes) or
    whose connection fails is a dropped connection, so Transient: never taken for the
    registry's answer, which would then fail its digest check as if it were corrupt.
    """

    def __init__(self, transport: "Transport", origin: Tuple[str, str], raw) -> None:
        self._transport, self._origin, self._raw = transport, origin, raw
        self.status, self.reason = raw.status, raw.reason
        # http.client's framing: the body's length (0 for HEAD, 204, 304), or None when it
        # is chunked (a cut raises IncompleteRead) or runs until the connection closes.
        self._length: Optional[int] = raw.length
        self._received = 0

    def header(self, name: str) -> Optional[str]:
        return self._raw.getheader(name)

    def read(self, amount: int) -> bytes:
        return self._reading(self._raw.read, amount, amount, len)

    def readinto(self, buffer: memoryview) -> int:
        return self._reading(self._raw.readinto, buffer, len(buffer), int)

    def _reading(
        self, read: Callable[[_T], _U], argument: _T, asked: int, count: Callable[[_U], int]
    ) -> _U:
        """read(argument), which returns fewer than `asked` bytes only at the end of the
        body or of the connection (http.client reads through a BufferedReader)."""
        try:
            result = read(argument)
        except Stalled as e:
            self.release()
            raise Transient(f"the registry stalled: {e}") from None
        except (OSError, http.client.HTTPException) as e:
            self.release()
            raise Transient(f"{self._dropped()} ({type(e).__name__}: {e})") from None
        got = count(result)
        self._received += got
        if got < asked and self._length is not None and self._received < self._length:
            self.release()
            raise Transient(self._dropped())
        return result

    def _dropped(self) -> str:
        of = "" if self._length is None else f" of {self._length}"
        return f"the connection dropped after {self._received}{of} bytes"

    def read_all(self, limit: int, what: str) -> bytes:
        data = self.read(limit + 1)
        self.release()
        if len(data) > limit:
            raise RegistryError(f"{what}: the response is larger than {limit} bytes")
        return data

    def release(self) -> None:
        if not self._raw.isclosed():
            self._transport._drop(self._origin)


class Transport:
    """HTTP to one registry, `host[:port]`.

    Plain http is used for localhost, 127.0.0.1 and [::1] (unless insecure=False) and for any
    registry with insecure=True; otherwise https with certificate verification. Credentials
    default to strata.core.registry.auth.credentials_for(registry, environ), from the
    environment too unless environment_credentials=False. An operation given to `retrying` is
    tried again up to `retries` times, with exponential backoff from `backoff` seconds, after
    5xx/429 answers, connection errors and responses that stall (`stall`); `timeout` bounds
    connecting and sending.
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: Optional[bool] = None,
        credentials: Optional[Credentials] = None,
        environment_credentials: bool = True,
        environ: Mapping[str, str] = os.environ,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
        stall: StallRule = StallRule(),
    ) -> None:
        if not isinstance(registry, str) or not _REGISTRY.match(registry):
            raise ValueError(f"registry must be host[:port], without scheme or path: {registry!r}")
        if retries < 0:
            raise ValueError("retries must be non-negative")
        self.registry = registry
        hostname = registry if registry.endswith("]") else registry.rsplit(":", 1)[0]
        if insecure is None:
            insecure = hostname.lower() in _LOOPBACK
        self.base_url = f"{'http' if insecure else 'https'}://{registry}"
        self._origin = _origin(self.base_url)
        self._environment_credentials, self._environ = environment_credentials, environ
        if credentials is None:
            credentials = credentials_for(
                registry, environ, from_environment=environment_credentials
            )
        self._credentials = credentials
        self._retries, self._backoff, self._timeout = retries, backoff, timeout
        self._stall = stall
        self._conns: Dict[Tuple[str, str], http.client.HTTPConnection] = {}
        self._ssl: Optional[ssl.SSLContext] = None
        self._pinged = False
        self._scheme: Optional[str] = None  # "basic" or "bearer", once the registry says so
        self._realm = self._service = ""
        self._tokens: Dict[Tuple[str, ...], Tuple[str, float]] = {}

    def close(self) -> None:
        for origin in list(self._conns):
            self._drop(origin)

    def retrying(self, what: str, attempt: Callable[[], _T]) -> _T:
        """attempt(), tried again with backoff while it raises Transient; each retry is a
        warning (the pull and push subcommands show them)."""
        delay = self._backoff
        tries = 1
        while True:
            try:
                return attempt()
            except Transient as e:
                if tries > self._retries:
                    raise RegistryError(f"{what}: failed after {tries} attempts: {e}") from None
                _log.warning("%s: %s; trying again in %.2fs", what, e, delay)
            time.sleep(delay)
            delay *= 2
            tries += 1

    def location(self, response: Response, url: str, what: str) -> str:
        location = response.header("Location")
        response.read_all(MAX_SMALL_BODY, what)
        if not location:
            raise RegistryError(f"{what}: HTTP {response.status} without a Location header")
        return urllib.parse.urljoin(url, location)

    def expect(self, response: Response, ok: Sequence[int], what: str, missing: str) -> int:
        """The status when it is in `ok`; otherwise raises an error saying what went wrong."""
        if response.status in ok:
            return response.status
        body = response.read_all(MAX_SMALL_BODY, what)
        detail = _error_detail(body)
        if response.status == 404:
            raise NotFoundError(f"{what}: {missing} not found{detail}")
        if response.status == 400 and any(
            e.get("code") == "DIGEST_INVALID" for e in _registry_errors(body)
        ):
            raise DigestMismatchError(f"{what}: the registry computed another digest{detail}")
        if response.status == 415:
            raise UnsupportedMediaTypeError(f"{what}: the registry refused the media type{detail}")
        raise RegistryError(f"{what}: HTTP {response.status} {response.reason}{detail}")

    def call(
        self,
        method: str,
        url: str,
        what: str,
        scopes: List[str],
        *,
        headers: Optional[Dict[str, str]] = None,
        body: Union[bytes, FileSlice, None] = None,
    ) -> Response:
        """One request, authenticated when it goes to the registry itself (never to storage it
        redirects to). A 401 updates the auth state from its challenge and is tried once more;
        401/403 then raise, 5xx/429 raise Transient."""
        own = _origin(url) == self._origin
        if own:
            self._ping()
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            authorization = self._authorization(scopes, what) if own else None
            if authorization:
                request_headers["Authorization"] = authorization
            response = self._send(method, url, request_headers, body)
            if response.status not in (401, 403, 429) and response.status < 500:
                return response
            challenge = response.header("WWW-Authenticate")
            detail = _error_detail(response.read_all(MAX_SMALL_BODY, what))
            if response.status != 401 or not own or attempt == 2:
                break
            scheme, params = parse_challenge(challenge or "")
            if not self._learn(scheme, params, scopes):
                break
            scopes = sorted(set(scopes) | set(params.get("scope", "").split()))
        if response.status in (401, 403) and own:
            if response.status == 403:
                raise AuthorizationError(f"{what}: {self.registry} denied access{detail}")
            if self._credentials is None:
                hint = no_credentials_hint(
                    self._environ, from_environment=self._environment_credentials
                )
            elif self._scheme == "basic" and not self._credentials.has_basic:
                hint = (
                    f"the credentials ({self._credentials.source}) are an identity token, "
                    "which only a registry with a bearer token server takes"
                )
            else:
                hint = f"it rejected the credentials ({self._credentials.source})"
            raise AuthenticationError(
                f"{what}: {self.registry} requires authentication{detail}; {hint}"
            )
        summary = (
            f"{method} {_without_query(url)}: HTTP {response.status} {response.reason}{detail}"
        )
        if response.status in (401, 403):
            raise RegistryError(f"{what}: {summary}")
        raise Transient(summary)

    def _ping(self) -> None:
        """GET /v2/ once, to learn whether and how the registry authenticates before sending
        it anything it would refuse."""
        if self._pinged:
            return
        url = f"{self.base_url}/v2/"
        response = self._send("GET", url, {}, None)
        challenge = response.header("WWW-Authenticate")
        response.read_all(MAX_SMALL_BODY, f"GET {url}")
        if response.status >= 500:
            raise Transient(f"GET {url}: HTTP {response.status} {response.reason}")
        if response.status == 401:
            self._learn(*parse_challenge(challenge or ""), [])
        self._pinged = True

    def _learn(self, scheme: str, params: Dict[str, str], scopes: List[str]) -> bool:
        """Takes in a 401 challenge; True when trying again may now succeed."""
        if scheme == "bearer" and params.get("realm", "").startswith(("http://", "https://")):
            self._scheme, self._realm = "bearer", params["realm"]
            self._service = params.get("service", "")
            self._tokens.pop(tuple(sorted(set(scopes))), None)
            return True
        if scheme == "basic":
            has_basic = self._credentials is not None and self._credentials.has_basic
            retry = self._scheme != "basic" and has_basic
            self._scheme = "basic"
            return retry
        return False

    def _authorization(self, scopes: List[str], what: str) -> Optional[str]:
        if self._scheme == "basic" and self._credentials and self._credentials.has_basic:
            return self._credentials.basic_authorization()
        if self._scheme == "bearer":
            return "Bearer " + self._token(scopes, what)
        return None

    def _token(self, scopes: List[str], what: str) -> str:
        """A bearer token for exactly these scopes from the challenge's realm, cached until
        shortly before it expires: for an identity token, docker's OAuth2 refresh-token grant
        (a POST, the token in its form body); otherwise a GET, sent the basic credentials when
        there are any."""
        key = tuple(sorted(set(scopes)))
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        credentials = self._credentials
        if credentials is not None and credentials.identity_token:
            form = urllib.parse.urlencode(
                [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", credentials.identity_token),
                    ("service", self._service),
                    ("scope", " ".join(key)),
                    ("client_id", USER_AGENT),
                ]
            ).encode("ascii")
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            response = self._send("POST", self._realm, headers, form)
        else:
            query = [("service", self._service)] if self._service else []
            url = with_query(self._realm, query + [("scope", s) for s in key])
            headers = {}
            if credentials is not None and credentials.has_basic:
                headers["Authorization"] = credentials.basic_authorization()
            response = self._send("GET", url, headers, None)
        body = response.read_all(MAX_SMALL_BODY, what)
        realm = _without_query(self._realm)
        if response.status >= 500 or response.status == 429:
            raise Transient(f"token server {realm}: HTTP {response.status} {response.reason}")
        if response.status in (401, 403):
            source = self._credentials.source if self._credentials else "none, anonymous"
            raise AuthenticationError(
                f"{what}: the token server {realm} of {self.registry} refused a token for "
                f"{' '.join(key) or 'the registry'} (credentials: {source}){_error_detail(body)}"
            )
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
            lifetime = int(answer.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token, lifetime = None, 0
        if response.status != 200 or not isinstance(token, str) or not _TOKEN.match(token):
            raise RegistryError(
                f"{what}: the token server {realm} of {self.registry} answered "
                f"HTTP {response.status} without a usable token"
            )
        self._tokens[key] = (token, time.monotonic() + max(lifetime - 10, lifetime / 2))
        return token

    def _send(
        self,
        method: str,
        url: str,
        headers: Dict[str, str],
        body: Union[bytes, FileSlice, None],
    ) -> Response:
        """Sends on the origin's keep-alive connection. A reused connection that the server had
        closed meanwhile is replaced once, outside the retry budget, for GET and HEAD only: the
        failure may as well be the answer to a request the server carried out (an upload
        session's PATCH or PUT cannot be sent twice), which only the operation's retry, from
        its start, can repeat."""
        parts = urllib.parse.urlsplit(url)
        origin = (parts.scheme, parts.netloc.lower())
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        failure = f"{method} {_without_query(url)}"
        while True:
            reused = origin in self._conns
            conn = self._conns.get(origin) or self._connect(origin, parts)
            try:
                self._write(conn, method, target, headers, body)
                return Response(self, origin, conn.getresponse())
            except ssl.SSLCertVerificationError as e:
                self._drop(origin)
                raise RegistryError(
                    f"{failure}: TLS certificate verification failed: {e}"
                ) from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self._drop(origin)
                if not reused or method not in _RESENDABLE:
                    raise Transient(f"{failure}: {type(e).__name__}: {e}") from None
            except Stalled as e:
                self._drop(origin)
                raise Transient(f"{failure}: the registry stalled: {e}") from None
            except (OSError, http.client.HTTPException) as e:
                self._drop(origin)
                raise Transient(f"{failure}: {type(e).__name__}: {e}") from None
            except BaseException:
                self._drop(origin)
                raise

    def _connect(
        self, origin: Tuple[str, str], parts: urllib.parse.SplitResult
    ) -> http.client.HTTPConnection:
        if parts.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            conn: http.client.HTTPConnection = GuardedHTTPSConnection(
                parts.hostname, parts.port, timeout=self._timeout, context=self._ssl,
                stall=self._stall,
            )
        elif parts.scheme == "http":
            conn = GuardedHTTPConnection(
                parts.hostname, parts.port, timeout=self._timeout, stall=self._stall
            )
        else:
            raise RegistryError(f"unsupported URL scheme {parts.scheme!r} (from {parts.netloc})")
        self._conns[origin] = conn
        return conn

    @staticmethod
    def _write(conn, method: str, target: str, headers: Dict[str, str], body) -> None:
        conn.putrequest(method, target)
        conn.putheader("User-Agent", USER_AGENT)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            length = len(body) if isinstance(body, bytes) else body.length
            conn.putheader("Content-Length", str(length))
        conn.endheaders()
        if isinstance(body, bytes):
            conn.send(body)
        elif body is not None:
            buffer = memoryview(bytearray(min(IO_CHUNK, body.length)))
            with open(body.path, "rb") as f:
                f.seek(body.offset)
                remaining = body.length
                while remaining:
                    n = f.readinto(buffer[: min(len(buffer), remaining)])
                    if not n:
                        raise RegistryError(f"{body.path} shrank while it was being uploaded")
                    conn.send(buffer[:n])
                    remaining -= n

    def _drop(self, origin: Tuple[str, str]) -> None:
        conn = self._conns.pop(origin, None)
        if conn is not None:
            conn.close()
