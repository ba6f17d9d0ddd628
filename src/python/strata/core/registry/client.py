"""The OCI distribution API (registry v2), after go-containerregistry's `remote`: resolve a tag
or digest, pull manifests and blobs verified against their digests, check, mount and upload
blobs (streamed from disk), push manifests. HTTP, retries and auth are the transport's
(strata.core.registry.transport); which blobs a push sends is strata.core.registry.push_policy.

One client is not thread-safe: it keeps one keep-alive connection per host. Error messages
name the registry, repository and object, never credentials or tokens.
"""

import json
import logging
import os
from typing import Any, List, Optional, Tuple, Union

from strata.core.atomic import write_file_atomically
from strata.core.build.hashing import HashingWriter
from strata.core.oci import descriptors, image, media_types, platforms
from strata.core.registry.errors import (
    DigestMismatchError,
    RegistryError,
    UnsupportedMediaTypeError,
)
from strata.core.registry.transport import (
    IO_CHUNK,
    MAX_SMALL_BODY,
    FileSlice,
    Response,
    Transient,
    Transport,
    with_query,
)

ALL_MANIFEST_MEDIA_TYPES = media_types.MANIFESTS + media_types.INDEXES

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
# Manifests are read into memory, and a registry must not make that GiBs.
MAX_MANIFEST_SIZE = image.MAX_JSON_SIZE
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)

_log = logging.getLogger(__name__)


def is_digest(reference: str) -> bool:
    return reference.startswith("sha256:")


def _validate_reference(reference: str) -> None:
    if is_digest(reference):
        image.digest_hex(reference)
    else:
        image.validate_tag(reference)


def _media_type(content_type: Optional[str], body: bytes) -> Optional[str]:
    """The Content-Type when it is a manifest type, else the document's own `mediaType`."""
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if header in ALL_MANIFEST_MEDIA_TYPES:
        return header
    try:
        declared = descriptors.parse_json(body, "the manifest").get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared if declared in ALL_MANIFEST_MEDIA_TYPES else (header or declared)


class RegistryClient:
    """A client for one registry, `host[:port]`; the other keyword arguments are the
    Transport's (scheme, credentials, retries, timeout). Blobs of `chunk_size` bytes or more
    are uploaded in PATCHes of that size, smaller ones in one PUT.
    """

    def __init__(
        self, registry: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE, **transport: Any
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._transport = Transport(registry, **transport)
        self.registry, self.base_url = registry, self._transport.base_url
        self._chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    def close(self) -> None:
        self._transport.close()

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
        return self._transport.retrying(
            what, lambda: self._get_manifest(repository, reference, what)
        )

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
        what = f"the index {name}"
        manifests = descriptors.index(descriptors.parse_json(data, what), what)
        offered = [(i, m.get("platform")) for i, m in enumerate(manifests)]
        children = [manifests[i]["digest"] for i in platforms.select(platform, offered, name)]
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
        return self._transport.retrying(
            what, lambda: self._fetch_blob(repository, digest, out_path, size, what)
        )

    # --- push -------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str, *, pushing: bool = False) -> bool:
        """Whether the repository has the blob (HEAD). `pushing` asks with the push scope, so
        that a push takes one token for its checks and its uploads."""
        image.validate_repository(repository)
        image.digest_hex(digest)
        scopes = self._push_scope(repository) if pushing else self._pull_scope(repository)
        what = f"checking for blob {digest} in {self.registry}/{repository}"
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"

        def head() -> bool:
            response = self._transport.call("HEAD", url, what, scopes)
            # A redirect (to storage) also says the registry has the blob.
            found = response.status == 200 or response.status in _REDIRECTS
            if not found and response.status != 404:
                self._transport.expect(response, (), what, f"repository {repository}")
            response.release()
            return found

        return self._transport.retrying(what, head)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> Optional[str]:
        """A cross-repository mount: None when done, else the upload session the registry
        opened instead (e.g. the blob is not in `from_repository`), for upload_blob or
        cancel_upload."""
        image.validate_repository(repository)
        image.validate_repository(from_repository)
        image.digest_hex(digest)
        what = f"mounting blob {digest} from {from_repository} into {self.registry}/{repository}"
        url = with_query(
            f"{self.base_url}/v2/{repository}/blobs/uploads/",
            [("mount", digest), ("from", from_repository)],
        )
        scopes = self._push_scope(repository) + self._pull_scope(from_repository)

        def post() -> Optional[str]:
            response = self._transport.call("POST", url, what, scopes, body=b"")
            created = self._transport.expect(response, (201, 202), what, f"repository {repository}")
            if created == 201:
                self._check_digest_header(response, digest, what)
                return None
            return self._transport.location(response, url, what)

        return self._transport.retrying(what, post)

    def cancel_upload(self, repository: str, session: str) -> None:
        """Best effort: the registry expires an abandoned session anyway."""
        what = f"cancelling an upload session in {self.registry}/{repository}"
        try:
            response = self._transport.call("DELETE", session, what, self._push_scope(repository))
            response.read_all(MAX_SMALL_BODY, what)
        except (RegistryError, Transient) as e:
            _log.warning("%s: %s", what, e)

    def upload_blob(
        self, repository: str, path: str, digest: str, size: int, session: Optional[str] = None
    ) -> None:
        """Uploads a file as a blob, streamed from disk (one PUT below chunk_size, else PATCHes
        of chunk_size and a closing PUT), in `session` (from mount_blob) or a new one. The
        registry verifies the digest."""
        image.validate_repository(repository)
        image.digest_hex(digest)
        what = f"uploading blob {digest} to {self.registry}/{repository}"
        actual = os.stat(path).st_size
        if actual != size:
            raise ValueError(f"{what}: {path} has {actual} bytes, expected {size}")
        # A retry starts a new session: the state of the failed one is unknown.
        sessions = [session] if session else []
        self._transport.retrying(
            what,
            lambda: self._upload_once(
                repository, path, digest, size, sessions.pop() if sessions else None, what
            ),
        )

    def push_manifest(
        self, repository: str, tag_or_digest: str, media_type: str, manifest_bytes: bytes
    ) -> str:
        """PUTs a manifest or index at a tag or at its own digest; returns its digest."""
        self._put_manifest(repository, tag_or_digest, media_type, manifest_bytes)
        return image.sha256_digest(manifest_bytes)

    def push_referrer(self, repository: str, manifest_bytes: bytes, subject: str) -> bool:
        """PUTs an artifact manifest (an OCI image manifest whose `subject` is the manifest
        `subject`) by its digest; whether the registry indexed it for the referrers API, as
        its OCI-Subject header says (else the client keeps the `sha256-<hex>` tag's index)."""
        digest = image.sha256_digest(manifest_bytes)
        pushed = self._put_manifest(repository, digest, media_types.OCI_MANIFEST, manifest_bytes)
        return pushed == subject

    def referrers(self, repository: str, digest: str) -> Optional[bytes]:
        """The referrers API's index of the manifests whose `subject` is `digest`, or None
        when the registry has no referrers API (404)."""
        image.validate_repository(repository)
        image.digest_hex(digest)
        what = f"listing the referrers of {self._name(repository, digest)}"
        url = f"{self.base_url}/v2/{repository}/referrers/{digest}"

        def get() -> Optional[bytes]:
            headers = {"Accept": media_types.OCI_INDEX}
            response = self._transport.call(
                "GET", url, what, self._pull_scope(repository), headers=headers
            )
            if response.status == 404:
                response.read_all(MAX_SMALL_BODY, what)
                return None
            self._transport.expect(response, (200,), what, f"repository {repository}")
            return response.read_all(MAX_MANIFEST_SIZE, what)

        return self._transport.retrying(what, get)

    def _put_manifest(
        self, repository: str, tag_or_digest: str, media_type: str, manifest_bytes: bytes
    ) -> Optional[str]:
        """The PUT of push_manifest; returns the registry's OCI-Subject header, if any."""
        image.validate_repository(repository)
        _validate_reference(tag_or_digest)
        if media_type not in ALL_MANIFEST_MEDIA_TYPES:
            raise UnsupportedMediaTypeError(
                f"cannot push a manifest of media type {media_type!r}; "
                f"supported: {', '.join(ALL_MANIFEST_MEDIA_TYPES)}"
            )
        digest = image.sha256_digest(manifest_bytes)
        name = self._name(repository, tag_or_digest)
        if is_digest(tag_or_digest) and tag_or_digest != digest:
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

        def put() -> Optional[str]:
            response = self._transport.call(
                "PUT",
                url,
                what,
                self._push_scope(repository),
                headers={"Content-Type": media_type},
                body=manifest_bytes,
            )
            self._transport.expect(response, (200, 201), what, f"repository {repository}")
            subject = response.header("OCI-Subject")
            self._check_digest_header(response, digest, what)
            return subject

        return self._transport.retrying(what, put)

    # --- operations (each attempt of one; the transport retries them) ---------------------

    def _name(self, repository: str, reference: str) -> str:
        return f"{self.registry}/{repository}{'@' if is_digest(reference) else ':'}{reference}"

    @staticmethod
    def _pull_scope(repository: str) -> List[str]:
        return [f"repository:{repository}:pull"]

    @staticmethod
    def _push_scope(repository: str) -> List[str]:
        return [f"repository:{repository}:pull,push"]

    def _get_manifest(self, repository: str, reference: str, what: str) -> Tuple[str, bytes, str]:
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"
        accept = {"Accept": ", ".join(ALL_MANIFEST_MEDIA_TYPES)}
        scopes = self._pull_scope(repository)
        response = self._transport.call("GET", url, what, scopes, headers=accept)
        self._transport.expect(response, (200,), what, f"manifest {reference}")
        content_type = response.header("Content-Type")
        data = response.read_all(MAX_MANIFEST_SIZE, what)
        digest = image.sha256_digest(data)
        if is_digest(reference) and digest != reference:
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
        response = self._open_blob(repository, digest, what)
        try:
            length = response.header("Content-Length")
            if size is not None and length and length.isdigit() and int(length) != size:
                raise DigestMismatchError(
                    f"{what}: the registry sends {length} bytes, expected {size}"
                )

            def write(f) -> None:
                writer = HashingWriter(f)
                buffer = memoryview(bytearray(IO_CHUNK))
                while True:
                    n = response.readinto(buffer)
                    if not n:
                        break
                    writer.write(buffer[:n])
                    if size is not None and writer.size > size:
                        raise DigestMismatchError(f"{what}: the registry sent over {size} bytes")
                # The length before the digest: a short body (without a Content-Length to tell
                # a dropped connection by) may be cut short, and is worth another try; wrong
                # bytes are not.
                if size is not None and writer.size < size:
                    raise Transient(f"the body ended after {writer.size} of {size} bytes")
                if writer.digest_str() != digest:
                    raise DigestMismatchError(
                        f"{what}: the registry sent {writer.size} bytes whose digest is "
                        f"{writer.digest_str()}"
                    )

            write_file_atomically(out_path, write)
        except BaseException:
            response.release()
            raise
        return os.path.getsize(out_path)  # as verified: the size and digest were checked

    def _open_blob(self, repository: str, digest: str, what: str) -> Response:
        """The blob's response, after redirects (to storage that gets no Authorization)."""
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        response = self._transport.call("GET", url, what, self._pull_scope(repository))
        for _ in range(_MAX_REDIRECTS):
            if response.status not in _REDIRECTS:
                break
            url = self._transport.location(response, url, what)
            response = self._transport.call("GET", url, what, self._pull_scope(repository))
        self._transport.expect(response, (200,), what, f"blob {digest}")
        return response

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
            response = self._transport.call("POST", url, what, scopes, body=b"")
            self._transport.expect(response, (202,), what, f"repository {repository}")
            location = self._transport.location(response, url, what)
        body: Union[bytes, FileSlice] = FileSlice(path, 0, size)
        if size >= self._chunk_size:
            for offset in range(0, size, self._chunk_size):
                length = min(self._chunk_size, size - offset)
                headers = {**octets, "Content-Range": f"{offset}-{offset + length - 1}"}
                chunk = FileSlice(path, offset, length)
                response = self._transport.call(
                    "PATCH", location, what, scopes, headers=headers, body=chunk
                )
                self._transport.expect(response, (202,), what, "upload session")
                location = self._transport.location(response, location, what)
            body = b""
        url = with_query(location, [("digest", digest)])
        response = self._transport.call("PUT", url, what, scopes, headers=octets, body=body)
        self._transport.expect(response, (201,), what, "upload session")
        self._check_digest_header(response, digest, what)

    def _check_digest_header(self, response: Response, digest: str, what: str) -> None:
        header = response.header("Docker-Content-Digest")
        response.release()
        if header and is_digest(header) and header != digest:
            raise DigestMismatchError(f"{what}: the registry reports digest {header}, not {digest}")

