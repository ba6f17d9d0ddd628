"""What a push sends, and in which order: each blob is skipped when the repository has it,
mounted when another repository of the registry holds it (as this machine's record of pushed
blobs says), else uploaded; the manifest goes up by digest, and only then the tags. An image
index goes up after each of its images (blobs, then manifest by digest), then its tags."""

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from strata.core.atomic import write_bytes_atomically
from strata.core.oci import descriptors, image, media_types
from strata.core.oci.image import canonical_json
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import UnsupportedMediaTypeError


@dataclass(frozen=True)
class PushReport:
    digest: str
    tags: Tuple[str, ...]
    blobs_skipped: int
    blobs_mounted: int
    blobs_uploaded: int
    bytes_uploaded: int
    referrers: Tuple[Tuple[str, str], ...] = ()  # (artifact type, digest) of each attached file


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


class PushedBlobs:
    """Which repository of each registry this machine last pushed each blob to, so that a later
    push to another repository can mount the blob instead of uploading it again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: Dict[str, Dict[str, str]] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            self.data = {}

    def best_source(self, registry: str, repository: str, digests: Sequence[str]) -> Optional[str]:
        """The other repository holding most of `digests`, if any."""
        known = self.data.get(registry, {})
        counts = Counter(known[d] for d in digests if known.get(d, repository) != repository)
        return min(counts, key=lambda r: (-counts[r], r)) if counts else None

    def record(self, registry: str, repository: str, digests: Sequence[str]) -> None:
        self.data.setdefault(registry, {}).update((d, repository) for d in digests)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(self.path, canonical_json(self.data))


def default_record_path() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "strata" / "pushed-blobs.json"


def _manifest_blobs(manifest_bytes: bytes) -> Dict[str, int]:
    """{digest: size} of an image manifest's config and layers, in that order."""
    what = "the manifest to push"
    manifest = descriptors.manifest(descriptors.parse_json(manifest_bytes, what), what)
    return {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}


def push_image(
    client: RegistryClient,
    repository: str,
    tags: Sequence[str],
    manifest_bytes: bytes,
    media_type: str,
    blobs: Sequence[Tuple[str, int, str]],
    known_in: Optional[str] = None,
    progress: Optional[PushProgress] = None,
) -> PushReport:
    """Pushes an image with `client`. Each blob, (digest, size, path), is skipped when the
    repository has it, mounted from `known_in` when that has it, else uploaded. Then the
    manifest goes up by digest and only after that each tag, so no tag ever names a partial
    image. Each step is counted in `progress` as soon as it is done."""
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
    done = PushProgress() if progress is None else progress
    push_blobs(client, repository, manifest_bytes, blobs, known_in, done)
    digest = image.sha256_digest(manifest_bytes)
    client.push_manifest(repository, digest, media_type, manifest_bytes)
    done.manifest_pushed = True
    return _push_tags(client, repository, tags, manifest_bytes, media_type, done)


def push_blobs(
    client: RegistryClient,
    repository: str,
    manifest_bytes: bytes,
    blobs: Sequence[Tuple[str, int, str]],
    known_in: Optional[str],
    done: PushProgress,
) -> None:
    """The blobs of push_image (or of an artifact manifest), each counted in `done`."""
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

    done.blobs += len(wanted)
    for digest, size in wanted.items():
        if client.blob_exists(repository, digest, pushing=True):
            done.blobs_skipped += 1
            continue
        session = None
        if known_in is not None and known_in != repository:
            session = client.mount_blob(repository, digest, known_in)
            if session is None:
                done.blobs_mounted += 1
                continue
        client.upload_blob(repository, given[digest][1], digest, size, session)
        done.blobs_uploaded += 1
        done.bytes_uploaded += size


def _push_tags(
    client: RegistryClient,
    repository: str,
    tags: Tuple[str, ...],
    manifest_bytes: bytes,
    media_type: str,
    done: PushProgress,
) -> PushReport:
    """Tags a manifest or index already pushed by digest."""
    for tag in tags:
        client.push_manifest(repository, tag, media_type, manifest_bytes)
        done.tags_pushed += 1
    return PushReport(
        image.sha256_digest(manifest_bytes),
        tags,
        done.blobs_skipped,
        done.blobs_mounted,
        done.blobs_uploaded,
        done.bytes_uploaded,
    )


def push_index(
    client: RegistryClient,
    repository: str,
    tags: Sequence[str],
    index_bytes: bytes,
    images: Sequence[Tuple[bytes, Sequence[Tuple[str, int, str]]]],
    known_in: Optional[str] = None,
    progress: Optional[PushProgress] = None,
) -> PushReport:
    """Pushes an OCI image index or a Docker manifest list: each of its `images`, (manifest
    bytes, blobs as push_image takes them), as push_image does but untagged, then the index
    by digest, then each tag. The images must be exactly the index's manifests."""
    tags = tuple(image.validate_tag(t) for t in tags)
    try:
        index = json.loads(index_bytes)
        listed = [d["digest"] for d in index["manifests"]]
        media_type = index["mediaType"]
        if not media_types.is_index(media_type):
            raise ValueError(f"media type {media_type!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"index_bytes is not an image index: {e!r}") from None
    given = [image.sha256_digest(manifest) for manifest, _ in images]
    if given != listed:
        raise ValueError(f"the images {given} are not the index's manifests {listed}")
    done = PushProgress() if progress is None else progress
    for manifest_bytes, blobs in images:
        manifest_type = json.loads(manifest_bytes).get("mediaType")
        push_image(client, repository, (), manifest_bytes, manifest_type, blobs, known_in, done)
        done.manifest_pushed = False  # the index's, below, is the one a tag needs
    client.push_manifest(repository, image.sha256_digest(index_bytes), media_type, index_bytes)
    done.manifest_pushed = True
    return _push_tags(client, repository, tags, index_bytes, media_type, done)

