"""`python -m strata.core push`: the manifest decided by `manifest` (strata.core.oci.push_manifest),
or an image index with its images, with the blobs from an OCI image layout, to one or more
registries."""

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Mapping, Optional, Sequence

from strata.core.errors import Interrupted, StrataError
from strata.core.oci import media_types
from strata.core.oci.push_manifest import index_manifests, manifest_blobs
from strata.core.registry.auth import take_credentials_file
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import RegistryError
from strata.core.registry.referrers import Attachment, attach_all, attachment
from strata.core.registry.stall import StallRule
from strata.core.registry.push_policy import (
    PushedBlobs,
    PushProgress,
    PushReport,
    default_record_path,
    push_image,
    push_index,
)


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
    attach: Sequence[Attachment] = (),
    environ: Mapping[str, str] = os.environ,
    stall: StallRule = StallRule(),
) -> PushReport:
    """Pushes `manifest_bytes` (from manifest_to_push, or an image index with each of its
    images) with its blobs from the layout; blobs missing from `repository` are mounted from
    `known_in`, else from the repository `record` says holds most of them, else uploaded.
    Then each of `attach` goes up as a referrer of the pushed manifest (a refusal is a
    warning, and missing from the report's `referrers`). Credentials are read from `environ`
    (strata.core.registry.auth.credentials_for)."""
    media_type = json.loads(manifest_bytes).get("mediaType")
    is_index = media_types.is_index(media_type)
    if is_index:
        images = [
            (manifest, manifest_blobs(layout, manifest))
            for manifest in index_manifests(layout, manifest_bytes)
        ]
    else:
        images = [(manifest_bytes, manifest_blobs(layout, manifest_bytes))]
    digests = list(dict.fromkeys(digest for _, blobs in images for digest, _, _ in blobs))
    if known_in is None and record is not None:
        known_in = record.best_source(registry, repository, digests)
    client = RegistryClient(registry, insecure=insecure, environ=environ, stall=stall)
    if is_index:
        report = push_index(client, repository, tags, manifest_bytes, images, known_in, progress)
    else:
        report = push_image(
            client, repository, tags, manifest_bytes, media_type, images[0][1], known_in, progress
        )
    if record is not None:
        record.record(registry, repository, digests)
    if not attach:
        return report
    subject = {"mediaType": media_type, "digest": report.digest, "size": len(manifest_bytes)}
    referrers = attach_all(client, repository, subject, attach)
    return dataclasses.replace(report, referrers=tuple(referrers))


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
    environ: Mapping[str, str] = os.environ
    if options.credentials_file is not None:  # first: nothing that follows may leave it behind
        environ = {**os.environ, **take_credentials_file(options.credentials_file)}
    stall = StallRule.parse(options.stall_bytes, options.stall_seconds)
    record = PushedBlobs(default_record_path())
    manifest_bytes = Path(options.manifest).read_bytes()
    attachments = [attachment(path) for path in options.attach]
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
                attach=attachments,
                environ=environ,
                stall=stall,
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
        for artifact_type, digest in report.referrers:
            print(f"  referrer: {artifact_type} {digest}")
