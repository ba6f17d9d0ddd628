"""A client for the OCI distribution API (registry v2): pulls manifests and blobs verified
against their digests, pushes blobs (skipped when present, mounted when known elsewhere,
streamed from disk otherwise) and then manifests.

One client is not thread-safe: it keeps one keep-alive connection per host. Error messages
name the registry, repository and object, never credentials or tokens.
"""

import http.client
import json
import logging
import os
import re
import ssl
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union

from strata.core.oci import image, platforms
from strata.core.auth import (
    Credentials,
    credentials_for,
    no_credentials_hint,
    parse_challenge,
)
from strata.core.build.hashing import HashingWriter
from strata.core.oci import media_types

ALL_MANIFEST_MEDIA_TYPES = media_types.MANIFESTS + media_types.INDEXES

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
IO_CHUNK = 1024 * 1024
# containerd's limit: manifests are read into memory, and a registry must not make that GiBs.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
USER_AGENT = "strata"
_MAX_SMALL_BODY = 64 * 1024  # error bodies and token answers
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
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


class RegistryError(Exception):
    """A registry operation failed."""


class AuthenticationError(RegistryError):
    """HTTP 401: no credentials, or the registry (or its token server) rejected them."""


class AuthorizationError(RegistryError):
    """HTTP 403: authenticated, but not allowed."""


class NotFoundError(RegistryError):
    pass


class DigestMismatchError(RegistryError):
    pass


class UnsupportedMediaTypeError(RegistryError):
    pass


class _Transient(Exception):
    """A 5xx/429 answer or a connection failure: the whole operation is tried again."""


@dataclass(frozen=True)
class PushReport:
    digest: str
    tags: Tuple[str, ...]
    blobs_skipped: int
    blobs_mounted: int
    blobs_uploaded: int
    bytes_uploaded: int


@dataclass
class PushProgress:
    """What push_image has done so far, kept up to date as it goes so that a caller can say
    what reached the registry when the push is interrupted."""

    blobs: int = 0  # in the image
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    manifest_pushed: bool = False
    tags_pushed: int = 0


class _FileSlice(NamedTuple):
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


def _with_query(url: str, params: Sequence[Tuple[str, str]]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params)) if q)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _is_digest(reference: str) -> bool:
    return reference.startswith("sha256:")


def _validate_reference(reference: str) -> None:
    if _is_digest(reference):
        image.digest_hex(reference)
    else:
        image.validate_tag(reference)


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


def _media_type(content_type: Optional[str], body: bytes) -> Optional[str]:
    """The Content-Type when it is a manifest type, else the document's own `mediaType`."""
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if header in ALL_MANIFEST_MEDIA_TYPES:
        return header
    try:
        declared = json.loads(body).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared if declared in ALL_MANIFEST_MEDIA_TYPES else (header or declared)


def _manifest_blobs(manifest_bytes: bytes) -> Dict[str, int]:
    """{digest: size} of an image manifest's config and layers, in that order."""
    try:
        manifest = json.loads(manifest_bytes)
        blobs = {}
        for descriptor in [manifest["config"], *manifest["layers"]]:
            image.digest_hex(descriptor["digest"])
            if not isinstance(descriptor["size"], int):
                raise TypeError(f"size of {descriptor['digest']} is not an integer")
            blobs[descriptor["digest"]] = descriptor["size"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"manifest_bytes is not an image manifest: {e!r}") from None
    return blobs


class _Response:
    """A response on a pooled connection, which is closed if the body is left unread.

    A body that ends before its Content-Length (http.client just returns fewer bytes) or
    whose connection fails is a dropped connection, so _Transient: never taken for the
    registry's answer, which would then fail its digest check as if it were corrupt.
    """

    def __init__(self, client: "RegistryClient", origin: Tuple[str, str], raw) -> None:
        self._client, self._origin, self._raw = client, origin, raw
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
        except (OSError, http.client.HTTPException) as e:
            self.release()
            raise _Transient(f"{self._dropped()} ({type(e).__name__}: {e})") from None
        got = count(result)
        self._received += got
        if got < asked and self._length is not None and self._received < self._length:
            self.release()
            raise _Transient(self._dropped())
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
            self._client._drop(self._origin)


class RegistryClient:
    """A client for one registry, `host[:port]`.

    Plain http is used for localhost, 127.0.0.1 and [::1] (unless insecure=False) and for any
    registry with insecure=True; otherwise https with certificate verification. Credentials
    default to strata.core.auth.credentials_for(registry), from the environment too unless
    environment_credentials=False. Each operation is tried again up to
    `retries` times, with exponential backoff from `backoff` seconds, after 5xx/429 answers
    and connection errors. Blobs of `chunk_size` bytes or more are uploaded in PATCHes of
    that size, smaller ones in one PUT.
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: Optional[bool] = None,
        credentials: Optional[Credentials] = None,
        environment_credentials: bool = True,
        retries: int = 4,
        backoff: float = 0.5,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = 60.0,
    ) -> None:
        if not isinstance(registry, str) or not _REGISTRY.match(registry):
            raise ValueError(f"registry must be host[:port], without scheme or path: {registry!r}")
        if chunk_size < 1 or retries < 0:
            raise ValueError("chunk_size must be positive and retries non-negative")
        self.registry = registry
        hostname = registry if registry.endswith("]") else registry.rsplit(":", 1)[0]
        if insecure is None:
            insecure = hostname.lower() in _LOOPBACK
        self.base_url = f"{'http' if insecure else 'https'}://{registry}"
        self._origin = _origin(self.base_url)
        self._environment_credentials = environment_credentials
        if credentials is None:
            credentials = credentials_for(registry, from_environment=environment_credentials)
        self._credentials = credentials
        self._retries, self._backoff = retries, backoff
        self._chunk_size, self._timeout = chunk_size, timeout
        self._conns: Dict[Tuple[str, str], http.client.HTTPConnection] = {}
        self._ssl: Optional[ssl.SSLContext] = None
        self._pinged = False
        self._scheme: Optional[str] = None  # "basic" or "bearer", once the registry says so
        self._realm = self._service = ""
        self._tokens: Dict[Tuple[str, ...], Tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    def close(self) -> None:
        for origin in list(self._conns):
            self._drop(origin)

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- pull -------------------------------------------------------------------------------

    def resolve(self, repository: str, reference: str) -> Tuple[str, bytes, str]:
        """(media type, bytes, digest) of the manifest or index at a tag or digest. A digest
        reference, and the registry's Docker-Content-Digest, must match the bytes."""
        image.validate_repository(repository)
        _validate_reference(reference)
        what = f"resolving {self._name(repository, reference)}"
        return self._retrying(what, lambda: self._get_manifest(repository, reference, what))

    def pull_manifest(
        self, repository: str, digest: str, platform: str = "linux/amd64"
    ) -> Tuple[str, bytes, str]:
        """(media type, bytes, digest) of the image manifest at `digest` or, when that is an
        index, of its manifest for `platform` ("os/arch[/variant]", matched by
        strata.core.oci.platforms, which raises PlatformError for none or several). Every
        manifest fetched is verified against its digest."""
        image.digest_hex(digest)
        platforms.parse(platform)
        media_type, data, _ = self.resolve(repository, digest)
        if media_type in media_types.MANIFESTS:
            return media_type, data, digest
        name = self._name(repository, digest)
        try:
            manifests = [m for m in json.loads(data)["manifests"] if isinstance(m, dict)]
        except (ValueError, KeyError, TypeError) as e:
            raise RegistryError(f"{name} is not a valid index: {e!r}") from None
        offered = [(i, m.get("platform")) for i, m in enumerate(manifests)]
        children = [manifests[i].get("digest") for i in platforms.select(platform, offered, name)]
        if not all(isinstance(c, str) and _is_digest(c) for c in children):
            raise RegistryError(f"{name} lists an invalid digest for {platform}")
        if len(children) > 1:
            raise RegistryError(
                f"{name} lists {len(children)} manifests for {platform}: {', '.join(children)}"
            )
        child = children[0]
        child_type, child_data, _ = self.resolve(repository, child)
        if child_type not in media_types.MANIFESTS:
            raise UnsupportedMediaTypeError(
                f"{self._name(repository, child)} ({platform} in {name}) is a "
                f"{child_type}, not an image manifest"
            )
        return child_type, child_data, child

    def fetch_blob(
        self, repository: str, digest: str, out_path: str, size: Optional[int] = None
    ) -> int:
        """Streams a blob to `out_path`, following redirects to storage; returns its size.

        It goes to a temporary file beside `out_path` while being hashed, and is renamed into
        place only when its sha256 (and `size`, when given) match: otherwise nothing is left.
        """
        image.validate_repository(repository)
        image.digest_hex(digest)
        what = f"fetching blob {digest} from {self.registry}/{repository}"
        return self._retrying(
            what, lambda: self._fetch_blob(repository, digest, out_path, size, what)
        )

    # --- push -------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        image.validate_repository(repository)
        image.digest_hex(digest)
        return self._blob_exists(repository, digest, self._pull_scope(repository))

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """A cross-repository mount. False when the registry declines (e.g. the blob is not in
        `from_repository`) and opens an upload session instead, which is then cancelled."""
        location = self._mount(repository, digest, from_repository)
        if location is None:
            return True
        self._cancel_upload(repository, location)
        return False

    def upload_blob(self, repository: str, path: str, digest: str, size: int) -> None:
        """Uploads a file as a blob, streamed from disk (one PUT below chunk_size, else PATCHes
        of chunk_size and a closing PUT). The registry verifies the digest."""
        image.validate_repository(repository)
        image.digest_hex(digest)
        self._upload(repository, path, digest, size, session=None)

    def push_manifest(
        self, repository: str, tag_or_digest: str, media_type: str, manifest_bytes: bytes
    ) -> str:
        """PUTs a manifest or index at a tag or at its own digest; returns its digest."""
        image.validate_repository(repository)
        _validate_reference(tag_or_digest)
        if media_type not in ALL_MANIFEST_MEDIA_TYPES:
            raise UnsupportedMediaTypeError(
                f"cannot push a manifest of media type {media_type!r}; "
                f"supported: {', '.join(ALL_MANIFEST_MEDIA_TYPES)}"
            )
        digest = image.sha256_digest(manifest_bytes)
        name = self._name(repository, tag_or_digest)
        if _is_digest(tag_or_digest) and tag_or_digest != digest:
            raise DigestMismatchError(f"pushing {name}: the manifest's digest is {digest}")
        try:
            declared = json.loads(manifest_bytes).get("mediaType", media_type)
        except (ValueError, AttributeError):
            raise ValueError(f"pushing {name}: the manifest is not a JSON object") from None
        if declared != media_type:
            raise ValueError(
                f"pushing {name}: the manifest's mediaType is {declared!r}, not {media_type!r}"
            )
        what = f"pushing manifest {name}"
        url = f"{self.base_url}/v2/{repository}/manifests/{tag_or_digest}"

        def put() -> None:
            response = self._call(
                "PUT",
                url,
                what,
                self._push_scope(repository),
                headers={"Content-Type": media_type},
                body=manifest_bytes,
            )
            self._expect(response, (200, 201), what, f"repository {repository}")
            self._check_digest_header(response, digest, what)

        self._retrying(what, put)
        return digest

    def push_image(
        self,
        repository: str,
        tags: Sequence[str],
        manifest_bytes: bytes,
        media_type: str,
        blobs: Sequence[Tuple[str, int, str]],
        known_in: Optional[str] = None,
        progress: Optional[PushProgress] = None,
    ) -> PushReport:
        """Pushes an image. Each blob, (digest, size, path), is skipped when the repository has
        it, mounted from `known_in` when that has it, else uploaded. Then the manifest goes up
        by digest and only after that each tag, so no tag ever names a partial image. Each step
        is counted in `progress` as soon as it is done."""
        image.validate_repository(repository)
        if isinstance(tags, str):
            raise ValueError(f"tags must be a sequence of tags, not the string {tags!r}")
        tags = tuple(image.validate_tag(t) for t in tags)
        if known_in is not None:
            image.validate_repository(known_in)
        if media_type not in media_types.MANIFESTS:
            raise UnsupportedMediaTypeError(
                f"push_image pushes image manifests ({', '.join(media_types.MANIFESTS)}), "
                f"not {media_type!r}"
            )
        wanted = _manifest_blobs(manifest_bytes)
        given = {digest: (size, path) for digest, size, path in blobs}
        missing, extra = sorted(set(wanted) - set(given)), sorted(set(given) - set(wanted))
        if missing or extra:
            raise ValueError(
                "blobs must be exactly the manifest's config and layers; "
                f"missing: {missing or 'none'}; not in the manifest: {extra or 'none'}"
            )
        for digest, size in wanted.items():
            if given[digest][0] != size:
                raise ValueError(
                    f"blob {digest} has size {given[digest][0]}; the manifest says {size}"
                )

        done = PushProgress() if progress is None else progress
        done.blobs = len(wanted)
        for digest, size in wanted.items():
            if self._blob_exists(repository, digest, self._push_scope(repository)):
                done.blobs_skipped += 1
                continue
            session = None
            if known_in is not None and known_in != repository:
                session = self._mount(repository, digest, known_in)
                if session is None:
                    done.blobs_mounted += 1
                    continue
            self._upload(repository, given[digest][1], digest, size, session)
            done.blobs_uploaded += 1
            done.bytes_uploaded += size
        digest = image.sha256_digest(manifest_bytes)
        self.push_manifest(repository, digest, media_type, manifest_bytes)
        done.manifest_pushed = True
        for tag in tags:
            self.push_manifest(repository, tag, media_type, manifest_bytes)
            done.tags_pushed += 1
        return PushReport(
            digest,
            tags,
            done.blobs_skipped,
            done.blobs_mounted,
            done.blobs_uploaded,
            done.bytes_uploaded,
        )

    # --- operations (each attempt of one; _retrying repeats them) -----------------------------

    def _name(self, repository: str, reference: str) -> str:
        return f"{self.registry}/{repository}{'@' if _is_digest(reference) else ':'}{reference}"

    @staticmethod
    def _pull_scope(repository: str) -> List[str]:
        return [f"repository:{repository}:pull"]

    @staticmethod
    def _push_scope(repository: str) -> List[str]:
        return [f"repository:{repository}:pull,push"]

    def _get_manifest(self, repository: str, reference: str, what: str) -> Tuple[str, bytes, str]:
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"
        accept = {"Accept": ", ".join(ALL_MANIFEST_MEDIA_TYPES)}
        response = self._call("GET", url, what, self._pull_scope(repository), headers=accept)
        self._expect(response, (200,), what, f"manifest {reference}")
        content_type = response.header("Content-Type")
        data = response.read_all(MAX_MANIFEST_SIZE, what)
        digest = image.sha256_digest(data)
        if _is_digest(reference) and digest != reference:
            raise DigestMismatchError(f"{what}: the registry sent a manifest with digest {digest}")
        self._check_digest_header(response, digest, what)
        media_type = _media_type(content_type, data)
        if media_type not in ALL_MANIFEST_MEDIA_TYPES:
            raise UnsupportedMediaTypeError(
                f"{what}: unsupported manifest media type {media_type!r}; "
                f"supported: {', '.join(ALL_MANIFEST_MEDIA_TYPES)}"
            )
        return media_type, data, digest

    def _fetch_blob(
        self, repository: str, digest: str, out_path: str, size: Optional[int], what: str
    ) -> int:
        out_path = os.path.abspath(out_path)
        fd, tmp = tempfile.mkstemp(
            dir=os.path.dirname(out_path), prefix=f".{os.path.basename(out_path)}.", suffix=".part"
        )
        response = None
        try:
            with open(fd, "wb") as f:
                response = self._open_blob(repository, digest, what)
                length = response.header("Content-Length")
                if size is not None and length and length.isdigit() and int(length) != size:
                    raise DigestMismatchError(
                        f"{what}: the registry sends {length} bytes, expected {size}"
                    )
                writer = HashingWriter(f)
                buffer = memoryview(bytearray(IO_CHUNK))
                while True:
                    n = response.readinto(buffer)
                    if not n:
                        break
                    writer.write(buffer[:n])
                    if size is not None and writer.size > size:
                        raise DigestMismatchError(f"{what}: the registry sent over {size} bytes")
            # The length before the digest: a short body (without a Content-Length to tell a
            # dropped connection by) may be cut short, and is worth another try; wrong bytes
            # are not.
            if size is not None and writer.size < size:
                raise _Transient(f"the body ended after {writer.size} of {size} bytes")
            if writer.digest_str() != digest:
                raise DigestMismatchError(
                    f"{what}: the registry sent {writer.size} bytes whose digest is "
                    f"{writer.digest_str()}"
                )
            os.replace(tmp, out_path)
        except BaseException:
            if response is not None:
                response.release()
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return writer.size

    def _open_blob(self, repository: str, digest: str, what: str) -> _Response:
        """The blob's response, after redirects (to storage that gets no Authorization)."""
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        response = self._call("GET", url, what, self._pull_scope(repository))
        for _ in range(_MAX_REDIRECTS):
            if response.status not in _REDIRECTS:
                break
            url = self._location(response, url, what)
            response = self._call("GET", url, what, self._pull_scope(repository))
        self._expect(response, (200,), what, f"blob {digest}")
        return response

    def _blob_exists(self, repository: str, digest: str, scopes: List[str]) -> bool:
        what = f"checking for blob {digest} in {self.registry}/{repository}"
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"

        def head() -> bool:
            response = self._call("HEAD", url, what, scopes)
            # A redirect (to storage) also says the registry has the blob.
            found = response.status == 200 or response.status in _REDIRECTS
            if not found and response.status != 404:
                self._expect(response, (), what, f"repository {repository}")
            response.release()
            return found

        return self._retrying(what, head)

    def _mount(self, repository: str, digest: str, from_repository: str) -> Optional[str]:
        """None when mounted, else the location of the upload session the registry opened."""
        image.validate_repository(repository)
        image.validate_repository(from_repository)
        image.digest_hex(digest)
        what = f"mounting blob {digest} from {from_repository} into {self.registry}/{repository}"
        url = _with_query(
            f"{self.base_url}/v2/{repository}/blobs/uploads/",
            [("mount", digest), ("from", from_repository)],
        )
        scopes = self._push_scope(repository) + self._pull_scope(from_repository)

        def post() -> Optional[str]:
            response = self._call("POST", url, what, scopes, body=b"")
            if self._expect(response, (201, 202), what, f"repository {repository}") == 201:
                self._check_digest_header(response, digest, what)
                return None
            return self._location(response, url, what)

        return self._retrying(what, post)

    def _cancel_upload(self, repository: str, location: str) -> None:
        """Best effort: the registry expires an abandoned session anyway."""
        what = f"cancelling an upload session in {self.registry}/{repository}"
        try:
            response = self._call("DELETE", location, what, self._push_scope(repository))
            response.read_all(_MAX_SMALL_BODY, what)
        except (RegistryError, _Transient) as e:
            _log.warning("%s: %s", what, e)

    def _upload(
        self, repository: str, path: str, digest: str, size: int, session: Optional[str]
    ) -> None:
        what = f"uploading blob {digest} to {self.registry}/{repository}"
        actual = os.stat(path).st_size
        if actual != size:
            raise ValueError(f"{what}: {path} has {actual} bytes, expected {size}")
        # A retry starts a new session: the state of the failed one is unknown.
        sessions = [session] if session else []
        self._retrying(
            what,
            lambda: self._upload_once(
                repository, path, digest, size, sessions.pop() if sessions else None, what
            ),
        )

    def _upload_once(
        self,
        repository: str,
        path: str,
        digest: str,
        size: int,
        location: Optional[str],
        what: str,
    ) -> None:
        scopes = self._push_scope(repository)
        octets = {"Content-Type": "application/octet-stream"}
        if location is None:
            url = f"{self.base_url}/v2/{repository}/blobs/uploads/"
            response = self._call("POST", url, what, scopes, body=b"")
            self._expect(response, (202,), what, f"repository {repository}")
            location = self._location(response, url, what)
        body: Union[bytes, _FileSlice] = _FileSlice(path, 0, size)
        if size >= self._chunk_size:
            for offset in range(0, size, self._chunk_size):
                length = min(self._chunk_size, size - offset)
                headers = {**octets, "Content-Range": f"{offset}-{offset + length - 1}"}
                chunk = _FileSlice(path, offset, length)
                response = self._call("PATCH", location, what, scopes, headers=headers, body=chunk)
                self._expect(response, (202,), what, "upload session")
                location = self._location(response, location, what)
            body = b""
        url = _with_query(location, [("digest", digest)])
        response = self._call("PUT", url, what, scopes, headers=octets, body=body)
        self._expect(response, (201,), what, "upload session")
        self._check_digest_header(response, digest, what)

    # --- HTTP -------------------------------------------------------------------------------

    def _retrying(self, what: str, attempt: Callable[[], _T]) -> _T:
        delay = self._backoff
        tries = 1
        while True:
            try:
                return attempt()
            except _Transient as e:
                if tries > self._retries:
                    raise RegistryError(f"{what}: failed after {tries} attempts: {e}") from None
                _log.warning("%s: %s; trying again in %.2fs", what, e, delay)
            time.sleep(delay)
            delay *= 2
            tries += 1

    def _location(self, response: _Response, url: str, what: str) -> str:
        location = response.header("Location")
        response.read_all(_MAX_SMALL_BODY, what)
        if not location:
            raise RegistryError(f"{what}: HTTP {response.status} without a Location header")
        return urllib.parse.urljoin(url, location)

    def _check_digest_header(self, response: _Response, digest: str, what: str) -> None:
        header = response.header("Docker-Content-Digest")
        response.release()
        if header and _is_digest(header) and header != digest:
            raise DigestMismatchError(f"{what}: the registry reports digest {header}, not {digest}")

    def _expect(self, response: _Response, ok: Sequence[int], what: str, missing: str) -> int:
        """The status when it is in `ok`; otherwise raises an error saying what went wrong."""
        if response.status in ok:
            return response.status
        body = response.read_all(_MAX_SMALL_BODY, what)
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

    def _call(
        self,
        method: str,
        url: str,
        what: str,
        scopes: List[str],
        *,
        headers: Optional[Dict[str, str]] = None,
        body: Union[bytes, _FileSlice, None] = None,
    ) -> _Response:
        """One request, authenticated when it goes to the registry itself (never to storage it
        redirects to). A 401 updates the auth state from its challenge and is tried once more;
        401/403 then raise, 5xx/429 raise _Transient."""
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
            detail = _error_detail(response.read_all(_MAX_SMALL_BODY, what))
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
                hint = no_credentials_hint(from_environment=self._environment_credentials)
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
        raise _Transient(summary)

    def _ping(self) -> None:
        """GET /v2/ once, to learn whether and how the registry authenticates before sending
        it anything it would refuse."""
        if self._pinged:
            return
        url = f"{self.base_url}/v2/"
        response = self._send("GET", url, {}, None)
        challenge = response.header("WWW-Authenticate")
        response.read_all(_MAX_SMALL_BODY, f"GET {url}")
        if response.status >= 500:
            raise _Transient(f"GET {url}: HTTP {response.status} {response.reason}")
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
            retry = self._scheme != "basic" and self._credentials is not None
            self._scheme = "basic"
            return retry
        return False

    def _authorization(self, scopes: List[str], what: str) -> Optional[str]:
        if self._scheme == "basic" and self._credentials is not None:
            return self._credentials.basic_authorization()
        if self._scheme == "bearer":
            return "Bearer " + self._token(scopes, what)
        return None

    def _token(self, scopes: List[str], what: str) -> str:
        """A bearer token for exactly these scopes from the challenge's realm (sent the basic
        credentials when there are any), cached until shortly before it expires."""
        key = tuple(sorted(set(scopes)))
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        query = [("service", self._service)] if self._service else []
        url = _with_query(self._realm, query + [("scope", s) for s in key])
        headers = {}
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.basic_authorization()
        response = self._send("GET", url, headers, None)
        body = response.read_all(_MAX_SMALL_BODY, what)
        realm = _without_query(self._realm)
        if response.status >= 500 or response.status == 429:
            raise _Transient(f"token server {realm}: HTTP {response.status} {response.reason}")
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
        body: Union[bytes, _FileSlice, None],
    ) -> _Response:
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
                return _Response(self, origin, conn.getresponse())
            except ssl.SSLCertVerificationError as e:
                self._drop(origin)
                raise RegistryError(
                    f"{failure}: TLS certificate verification failed: {e}"
                ) from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self._drop(origin)
                if not reused or method not in _RESENDABLE:
                    raise _Transient(f"{failure}: {type(e).__name__}: {e}") from None
            except (OSError, http.client.HTTPException) as e:
                self._drop(origin)
                raise _Transient(f"{failure}: {type(e).__name__}: {e}") from None
            except BaseException:
                self._drop(origin)
                raise

    def _connect(
        self, origin: Tuple[str, str], parts: urllib.parse.SplitResult
    ) -> http.client.HTTPConnection:
        if parts.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self._timeout, context=self._ssl
            )
        elif parts.scheme == "http":
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self._timeout)
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
