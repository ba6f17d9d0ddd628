"""`python -m strata.core pull`: one image, pinned by digest, into an OCI image layout, and
(`--sbom-out`) the SBOMs attached to it as referrers.

Every manifest and blob is verified against its digest by the registry client; the layout is
written beside OUT and renamed into place only when complete.
"""

from pathlib import Path
from typing import Optional

from strata.core.atomic import write_dir_atomically
from strata.core.oci import descriptors, platforms
from strata.core.oci.image import canonical_json, digest_hex, platform_of
from strata.core.errors import InvalidInput, StrataError
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import RegistryError
from strata.core.registry.referrers import fetch_sboms
from strata.core.registry.stall import StallRule


def pull_layout(
    registry: str,
    repository: str,
    digest: str,
    platform: str,
    out: Path,
    insecure=None,
    sbom_out: Optional[Path] = None,
    stall: StallRule = StallRule(),
) -> str:
    """Writes the image for `platform` at `digest` (a manifest or an index) as an OCI layout;
    returns the image manifest's digest. An image of another platform is a PlatformError.
    With `sbom_out`, the SBOMs attached to `digest` or to the image manifest are written
    there (strata.core.registry.referrers.fetch_sboms: failures are warnings)."""
    # Only the docker config.json and its helpers: credentials in the environment would be
    # part of the pull process's cache key (rules/tool.py's RegistryAccessEnv gives it only
    # DOCKER_CONFIG, HOME and PATH).
    client = RegistryClient(
        registry, insecure=insecure, environment_credentials=False, stall=stall
    )
    media_type, manifest_bytes, manifest_digest = client.pull_manifest(repository, digest, platform)
    where = f"{registry}/{repository}@{digest}"
    if manifest_digest != digest:
        where = f"{where} (its {platform} image {manifest_digest})"
    manifest = descriptors.manifest(
        descriptors.parse_json(manifest_bytes, f"the manifest of {where}"),
        f"the manifest of {where}",
    )

    def write(tmp: str) -> None:
        blobs = Path(tmp, "blobs", "sha256")
        blobs.mkdir(parents=True)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            target = blobs / digest_hex(descriptor["digest"])
            if not target.exists():
                client.fetch_blob(repository, descriptor["digest"], str(target), descriptor["size"])
            if descriptor is manifest["config"] and manifest_digest == digest:
                # A single image, not picked from an index: it must be of `platform` all the
                # same, as an archive's single image must.
                config = descriptors.parse_json(target.read_bytes(), f"the config of {where}")
                if not isinstance(config, dict):
                    raise InvalidInput(f"the config of {where} must be a JSON object")
                platforms.select(platform, [(digest, platform_of(config))], where)
        (blobs / digest_hex(manifest_digest)).write_bytes(manifest_bytes)
        Path(tmp, "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        index = {
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": media_type, "digest": manifest_digest, "size": len(manifest_bytes)}
            ],
        }
        Path(tmp, "index.json").write_bytes(canonical_json(index))

    write_dir_atomically(out, write)
    if sbom_out is not None:
        fetch_sboms(client, repository, [digest, manifest_digest], sbom_out)
    return manifest_digest


def pull_command(options) -> None:
    try:
        pull_layout(
            options.registry,
            options.repository,
            options.digest,
            options.platform,
            Path(options.out),
            options.insecure or None,
            None if options.sbom_out is None else Path(options.sbom_out),
            StallRule.parse(options.stall_bytes, options.stall_seconds),
        )
    except (RegistryError, OSError) as e:
        where = f"{options.registry}/{options.repository}@{options.digest}"
        raise StrataError(f"{where}: {e}") from e
