"""`python -m strata.core manifest` decides the exact manifest a push sends (so its digest is
known before the push), and `push` pushes it with its blobs from an OCI image layout to one or
more registries."""

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from strata.core.atomic import write_bytes_atomically
from strata.core.errors import Interrupted, InvalidInput, StrataError
from strata.core.oci.image import canonical_json, digest_hex, make_manifest
from strata.core.oci import media_types
from strata.core.registry import PushProgress, PushReport, RegistryClient, RegistryError


def layout_manifest(layout: Path) -> bytes:
    """The manifest of a single-image OCI layout, its exact bytes."""
    manifests = json.loads((layout / "index.json").read_bytes()).get("manifests", [])
    if len(manifests) != 1:
        raise ValueError(f"{layout} holds {len(manifests)} images; expected exactly one")
    return _blob(layout, manifests[0]["digest"]).read_bytes()



def as_docker_manifest(manifest_bytes: bytes, config_bytes: bytes) -> bytes:
    """The same image as a Docker v2 schema 2 manifest (for registries and tools that predate
    OCI): same config and layer blobs, Docker media types, so only the manifest digest differs.
    zstd layers have no Docker media type, which is an error."""
    manifest = json.loads(manifest_bytes)
    layers = [
        {"compression": media_types.compression_of(d["mediaType"]), "digest": d["digest"], "blob_size": d["size"]}
        for d in manifest["layers"]
    ]
    return canonical_json(make_manifest(config_bytes, layers, oci=False))


def manifest_to_push(layout: Path, docker: bool) -> bytes:
    """The one place that decides the bytes a push sends, so the digest reported before the
    push is the digest of what the registry gets: the layout's own manifest, or (`docker`) its
    Docker v2s2 form."""
    manifest_bytes = layout_manifest(layout)
    if not docker:
        return manifest_bytes
    config_digest = json.loads(manifest_bytes)["config"]["digest"]
    return as_docker_manifest(manifest_bytes, _blob(layout, config_digest).read_bytes())


def manifest_blobs(layout: Path, manifest_bytes: bytes) -> List[Tuple[str, int, str]]:
    """(digest, size, path in the layout) of the manifest's config and layers, without repeats."""
    manifest = json.loads(manifest_bytes)
    blobs = [
        (d["digest"], d["size"], str(_blob(layout, d["digest"])))
        for d in [manifest["config"], *manifest["layers"]]
    ]
    return list(dict.fromkeys(blobs))


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest_hex(digest)


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


def push_layout(
    layout: Path,
    manifest_bytes: bytes,
    registry: str,
    repository: str,
    tags: Sequence[str],
    *,
    known_in: Optional[str] = None,
    insecure: Optional[bool] = None,
    record: Optional[PushedBlobs] = None,
    progress: Optional[PushProgress] = None,
) -> PushReport:
    """Pushes `manifest_bytes` (from manifest_to_push) with its blobs from the layout; blobs
    missing from `repository` are mounted from `known_in`, else from the repository `record`
    says holds most of them, else uploaded."""
    media_type = json.loads(manifest_bytes).get("mediaType")
    blobs = manifest_blobs(layout, manifest_bytes)
    digests = [digest for digest, _, _ in blobs]
    if known_in is None and record is not None:
        known_in = record.best_source(registry, repository, digests)
    client = RegistryClient(registry, insecure=insecure)
    report = client.push_image(
        repository, tags, manifest_bytes, media_type, blobs, known_in, progress
    )
    if record is not None:
        record.record(registry, repository, digests)
    return report


def manifest_command(options) -> None:
    layout = Path(options.layout)
    try:
        manifest_bytes = manifest_to_push(layout, options.docker)
    except KeyError as e:
        raise InvalidInput(f"{layout}: a manifest or index without {e}") from None
    Path(options.out).write_bytes(manifest_bytes)


def interrupted_message(name: str, progress: PushProgress) -> str:
    """One line for an interrupted push: what reached the registry, and that re-running
    resumes (present blobs are found by HEAD and skipped)."""
    present = progress.blobs_skipped + progress.blobs_mounted + progress.blobs_uploaded
    manifest = (
        f"manifest pushed, {progress.tags_pushed} tag(s) set"
        if progress.manifest_pushed
        else "manifest not pushed"
    )
    return (
        f"{name}: {present} of {progress.blobs} blobs in place: "
        f"{progress.blobs_uploaded} uploaded ({progress.bytes_uploaded} bytes), "
        f"{progress.blobs_mounted} mounted, {progress.blobs_skipped} already present; "
        f"{manifest}; run `pants publish` again to resume: blobs already pushed are skipped"
    )


def push_command(options) -> None:
    record = PushedBlobs(default_record_path())
    manifest_bytes = Path(options.manifest).read_bytes()
    for registry in options.registry:
        name = f"{registry}/{options.repository}"
        progress = PushProgress()
        try:
            report = push_layout(
                Path(options.layout),
                manifest_bytes,
                registry,
                options.repository,
                options.tag,
                known_in=options.mount_from,
                insecure=options.insecure or None,
                record=record,
                progress=progress,
            )
        except (RegistryError, ValueError, OSError) as e:
            raise StrataError(f"{name}: {e}") from e
        except KeyboardInterrupt:
            # Ctrl-C, or Pants cancelling the run: one line, and no second interruption of it.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            raise Interrupted(interrupted_message(name, progress)) from None
        for tag in report.tags or ("(no tag)",):
            print(f"{name}:{tag}@{report.digest}")
        print(
            f"  blobs: {report.blobs_uploaded} uploaded ({report.bytes_uploaded} bytes), "
            f"{report.blobs_mounted} mounted, {report.blobs_skipped} already present"
        )
