"""SBOMs as OCI 1.1 referrers of a pushed manifest, and back.

Attaching pushes an artifact manifest (image manifest media type, `artifactType`, the empty
config, one layer: the file, titled with its base name; `subject`: the pushed manifest) by its
digest. A registry with the referrers API says so with the OCI-Subject header on that PUT;
for one without (docker-registry 2.8), the tag-schema fallback keeps an OCI index of the
referrers at the tag `sha256-<subject hex>` (read, add the descriptor unless there, put back).
Reading lists the referrers API, else that tag. Attaching or reading SBOMs never fails the
push or pull of the image: a refusal is a `warning:` line (logged: the subcommands show it).
"""

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from strata.core.oci import descriptors, image, media_types
from strata.core.oci.image import canonical_json
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import NotFoundError, RegistryError
from strata.core.registry.push_policy import PushProgress, push_blobs

TITLE_ANNOTATION = "org.opencontainers.image.title"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    """A file to attach, read (and its type checked) before anything is pushed."""

    path: str
    artifact_type: str
    digest: str
    size: int


def attachment(path: str) -> Attachment:
    artifact_type = media_types.sbom_artifact_type(path)
    data = Path(path).read_bytes()
    return Attachment(path, artifact_type, image.sha256_digest(data), len(data))


def artifact_manifest(subject: dict, attached: Attachment) -> bytes:
    """The artifact manifest's exact bytes: nothing in them depends on time or machine."""
    layer = {
        "mediaType": attached.artifact_type,
        "digest": attached.digest,
        "size": attached.size,
        "annotations": {TITLE_ANNOTATION: Path(attached.path).name},
    }
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": media_types.OCI_MANIFEST,
            "artifactType": attached.artifact_type,
            "config": media_types.EMPTY_DESCRIPTOR,
            "layers": [layer],
            "subject": subject,
        }
    )


def fallback_tag(digest: str) -> str:
    """The tag-schema tag of a manifest's referrers index."""
    return f"sha256-{image.digest_hex(digest)}"


def attach_all(
    client: RegistryClient, repository: str, subject: dict, attachments: Sequence[Attachment]
) -> List[Tuple[str, str]]:
    """Attaches each file to `subject` (the pushed manifest's descriptor); returns (artifact
    type, artifact manifest digest) of each one the registry took; the others are warnings."""
    done = []
    with tempfile.TemporaryDirectory(prefix="strata-referrer-") as tmp:
        empty = Path(tmp, "empty.json")
        empty.write_bytes(media_types.EMPTY_JSON)
        for attached in attachments:
            try:
                digest = _attach(client, repository, subject, attached, str(empty))
            except RegistryError as e:
                _log.warning(
                    "warning: %s not attached to %s/%s@%s: %s",
                    attached.path, client.registry, repository, subject["digest"], e,
                )  # fmt: skip
                continue
            done.append((attached.artifact_type, digest))
    return done


def _attach(
    client: RegistryClient, repository: str, subject: dict, attached: Attachment, empty: str
) -> str:
    manifest = artifact_manifest(subject, attached)
    blobs = [
        (media_types.EMPTY_DESCRIPTOR["digest"], media_types.EMPTY_DESCRIPTOR["size"], empty),
        (attached.digest, attached.size, attached.path),
    ]
    push_blobs(client, repository, manifest, blobs, None, PushProgress())
    digest = image.sha256_digest(manifest)
    if not client.push_referrer(repository, manifest, subject["digest"]):
        descriptor = {
            "mediaType": media_types.OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "artifactType": attached.artifact_type,
        }
        _add_to_fallback_index(client, repository, subject["digest"], descriptor)
    return digest


def _add_to_fallback_index(
    client: RegistryClient, repository: str, subject: str, descriptor: dict
) -> None:
    """Read-modify-write of the `sha256-<hex>` index: one descriptor per artifact manifest.
    Two clients attaching to one subject at once may lose one's descriptor (the registry has
    no conditional PUT); attaching again restores it."""
    tag = fallback_tag(subject)
    try:
        index = _index(client.resolve(repository, tag)[1], f"{repository}:{tag}")
    except NotFoundError:
        index = {"schemaVersion": 2, "mediaType": media_types.OCI_INDEX, "manifests": []}
    if any(d.get("digest") == descriptor["digest"] for d in index["manifests"]):
        return
    index["manifests"].append(descriptor)
    client.push_manifest(repository, tag, media_types.OCI_INDEX, canonical_json(index))


def _index(data: bytes, name: str) -> dict:
    try:
        index = descriptors.parse_json(data, name)
        if index.get("mediaType", media_types.OCI_INDEX) != media_types.OCI_INDEX:
            raise TypeError(f"its mediaType is {index['mediaType']!r}")
        if not all(isinstance(d, dict) for d in index["manifests"]):
            raise TypeError("a descriptor is not an object")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RegistryError(f"{name} is not a valid image index: {e!r}") from None
    return index


def sbom_referrers(client: RegistryClient, repository: str, digest: str) -> List[dict]:
    """The descriptors of the SBOM artifacts whose subject is `digest`: from the referrers
    API, else the `sha256-<hex>` tag's index; none when neither exists."""
    data = client.referrers(repository, digest)
    if data is None:
        try:
            data = client.resolve(repository, fallback_tag(digest))[1]
        except NotFoundError:
            return []
    listed = _index(data, f"the referrers of {repository}@{digest}")["manifests"]
    types = media_types.SBOM_SUFFIXES.values()
    return [d for d in listed if d.get("artifactType") in types]


def fetch_sboms(
    client: RegistryClient, repository: str, subjects: Sequence[str], out: Path
) -> Dict[str, Path]:
    """Writes each SBOM attached to any of `subjects` as `out/<artifact manifest hex><suffix>`,
    manifest and blob verified by digest; returns {artifact manifest digest: file}. `out`
    exists afterwards; whatever cannot be read is a warning."""
    out.mkdir(parents=True, exist_ok=True)
    written: Dict[str, Path] = {}
    for subject in dict.fromkeys(subjects):
        try:
            found = sbom_referrers(client, repository, subject)
        except RegistryError as e:
            _log.warning("warning: no SBOMs read for %s@%s: %s", repository, subject, e)
            continue
        for descriptor in found:
            digest = descriptor.get("digest")
            if digest in written:
                continue
            try:
                written[digest] = _fetch_sbom(client, repository, subject, descriptor, out)
            except (RegistryError, ValueError, KeyError, TypeError) as e:
                _log.warning(
                    "warning: SBOM %s of %s@%s not read: %s", digest, repository, subject, e
                )
    return written


def _fetch_sbom(
    client: RegistryClient, repository: str, subject: str, descriptor: dict, out: Path
) -> Path:
    digest = descriptor["digest"]
    _, data, _ = client.resolve(repository, digest)  # verified against `digest`
    manifest = descriptors.parse_json(data, "its manifest")
    if not isinstance(manifest, dict):
        raise RegistryError("its manifest is not a JSON object")
    if descriptors.descriptor(manifest.get("subject"), "its subject")["digest"] != subject:
        raise RegistryError(f"its manifest's subject is not {subject}")
    artifact_type = manifest.get("artifactType")
    if artifact_type != descriptor["artifactType"]:
        raise RegistryError(f"its manifest's artifactType is {artifact_type!r}")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        raise RegistryError("an SBOM artifact must have exactly one layer")
    layer = descriptors.descriptor(layers[0], "its layer")
    target = out / (image.digest_hex(digest) + media_types.sbom_suffix(artifact_type))
    client.fetch_blob(repository, layer["digest"], str(target), layer["size"])
    return target
