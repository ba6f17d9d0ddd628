"""`python -m strata.core push`: an OCI image layout, pushed to one or more registries."""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from strata.core.image import digest_hex
from strata.core.registry import PushReport, RegistryClient, RegistryError


def layout_image(layout: Path) -> Tuple[bytes, str, List[Tuple[str, int, str]]]:
    """(manifest bytes, media type, blobs as (digest, size, path)) of a single-image layout."""
    index = json.loads((layout / "index.json").read_bytes())
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        raise ValueError(f"{layout} holds {len(manifests)} images; expected exactly one")
    descriptor = manifests[0]
    manifest_bytes = _blob(layout, descriptor["digest"]).read_bytes()
    manifest = json.loads(manifest_bytes)
    blobs = [
        (d["digest"], d["size"], str(_blob(layout, d["digest"])))
        for d in [manifest["config"], *manifest["layers"]]
    ]
    return manifest_bytes, descriptor["mediaType"], list(dict.fromkeys(blobs))


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest_hex(digest)


def push_layout(
    layout: Path,
    registry: str,
    repository: str,
    tags: Sequence[str],
    *,
    known_in: Optional[str] = None,
    insecure: Optional[bool] = None,
) -> PushReport:
    manifest_bytes, media_type, blobs = layout_image(layout)
    client = RegistryClient(registry, insecure=insecure)
    return client.push_image(repository, tags, manifest_bytes, media_type, blobs, known_in)


def push_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="strata.core push", add_help=False)
    parser.add_argument("--layout", required=True, type=Path)
    parser.add_argument("--registry", action="append", required=True)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--tag", action="append", default=[])
    parser.add_argument("--mount-from")
    parser.add_argument("--insecure", action="store_true", default=None)
    args = parser.parse_args(argv)
    for registry in args.registry:
        try:
            report = push_layout(
                args.layout,
                registry,
                args.repository,
                args.tag,
                known_in=args.mount_from,
                insecure=args.insecure,
            )
        except (RegistryError, ValueError, OSError) as e:
            print(f"strata.core push: error: {registry}/{args.repository}: {e}", file=sys.stderr)
            return 1
        for tag in report.tags or ("(no tag)",):
            print(f"{registry}/{args.repository}:{tag}@{report.digest}")
        print(
            f"  blobs: {report.blobs_uploaded} uploaded ({report.bytes_uploaded} bytes), "
            f"{report.blobs_mounted} mounted, {report.blobs_skipped} already present"
        )
    return 0
