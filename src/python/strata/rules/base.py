"""Base images: an archive in the repo or a pinned pull, imported into Strata's base dir form.

(An `oci_image` base is made of its own layers' outputs by rules/image/bases.py, with no Process.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Optional, Tuple

from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestSubset, MergeDigests, PathGlobs, Snapshot
from pants.engine.internals.session import RunId
from pants.engine.process import Process, ProcessResult, ProcessResultMetadata
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, Target
from pants.util.logging import LogLevel

from strata.core.oci.platforms import PlatformError
from strata.rules.processes import run_process
from strata.rules.tool import (
    ImageTool,
    RegistryAccessEnv,
    RegistryAccessEnvRequest,
    ZstdBinary,
    ZstdBinaryRequest,
)
from strata.rules.blobs import StoredBlob
from strata.subsystems import StrataSubsystem
from strata.target_types.base import (
    OciArchiveRefField,
    OciArchiveSourceField,
    OciImageArchiveTarget,
    OciPlatformField,
    OciPullDigestField,
    OciPullInsecureField,
    OciPullRegistryField,
    OciPullRepositoryField,
)

logger = logging.getLogger(__name__)

BASE_DIR = "base"
_PULLED = "pulled"
_PULLED_SBOMS = "pulled-sboms"  # the SBOMs attached to the pulled image in its registry

@dataclass(frozen=True)
class BaseImage:
    """A base dir (docs/architecture.md) under `base/`, and how many layers it has; for the
    image's SBOM, its name and the SBOM documents that describe it (files, any paths); for the
    check of the programs an image starts, its path lists, bottom first (an `oci_image`'s own
    layers' and its base's, or one list the `base-paths` Process merged from a pulled or
    archived image's layers)."""

    digest: Digest
    layer_count: int
    name: str = ""
    sboms: Digest = EMPTY_DIGEST
    paths: Tuple[Digest, ...] = ()
    blobs: Tuple[StoredBlob, ...] = ()  # an `oci_image` base's layers, in the blob store

@dataclass(frozen=True)
class ImportBaseRequest:
    """An image (docker-archive, OCI layout or oci-archive) at `path` inside `digest`."""

    digest: Digest
    path: str
    description: str
    ref: Optional[str] = None
    platform: Optional[str] = None

@dataclass(frozen=True)
class ExternalBaseRequest:
    """An `oci_image_archive` or `oci_pull` as the base of an image of `platform`, which picks
    the base's image when its own `platform` field is not set."""

    target: Target
    platform: str = "linux/amd64"

    def base_platform(self) -> str:
        return self.target[OciPlatformField].value or self.platform

def _platform_error(target: str, platform: str, details: dict) -> InvalidFieldException:
    """The core's PlatformError (its JSON details), as an error about the target's field."""
    field = f"The `{OciPlatformField.alias}` field of {target} is `{platform}`"
    if details["matching"]:
        images = ", ".join(details["matching"])
        return InvalidFieldException(
            f"{field}, which matches several images of {details['in']}: {images}. "
            "Set it to one of them."
        )
    images = ", ".join(details["available"]) or "no image"
    return InvalidFieldException(
        f"{field}, which matches no image of {details['in']}; it holds {images}. "
        "Set it to one of those."
    )


async def _run_choosing_platform(
    process: Process, target: str, platform: str, here: Optional[str] = None
) -> ProcessResult:
    """Runs a core process that picks an image by `platform`: its platform failure (exit code
    PlatformError.exit_code, details as JSON on stdout) is an error naming the target's field.
    `here`: as `run_process`'s."""
    return await run_process(
        process,
        lambda failed: _platform_error(target, platform, json.loads(failed.stdout))
        if failed.exit_code == PlatformError.exit_code else None,
        here=here,
    )


def _show_warnings(result: ProcessResult, description: str, run_id: RunId) -> None:
    """A successful core Process's warnings (its stderr: e.g. the registry's retries), shown
    when it ran in this run; a cached result's warnings are not news."""
    warnings = result.stderr.decode("utf-8", "replace").strip()
    if warnings and result.metadata.source(run_id) == ProcessResultMetadata.Source.RAN:
        logger.warning(f"{description}:\n{warnings}")


@rule(desc="Importing a base image", level=LogLevel.DEBUG)
async def import_base(
    request: ImportBaseRequest, tool: ImageTool, strata: StrataSubsystem
) -> BaseImage:
    argv = ["import-base", "--archive", request.path, "--out", BASE_DIR]
    if request.ref:
        argv += ["--ref", request.ref]
    if request.platform:
        argv += ["--platform", request.platform]
    zstd = await Get(ZstdBinary, ZstdBinaryRequest())
    if zstd.path:
        # zstd layers get their diff_ids checked and their sizes known, which a docker-archive
        # (where they go decompressed) needs.
        argv += ["--zstd", zstd.path]
    input_digest = await Get(Digest, MergeDigests([tool.digest, request.digest]))
    process = Process(
        argv=tool.argv(*argv),
        input_digest=input_digest,
        output_directories=(BASE_DIR,),
        description=f"Importing base image {request.description}",
        level=LogLevel.INFO,
        remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
    )
    result = await _run_choosing_platform(process, request.description, request.platform or "")
    snapshot = await Get(Snapshot, Digest, result.output_digest)
    layers = sum(1 for f in snapshot.files if f.endswith("/layer.json"))
    return BaseImage(result.output_digest, layers)

_BASE_PATHS = "base-paths.json"


async def _with_paths(base: BaseImage, description: str, tool: ImageTool) -> BaseImage:
    """The base with its merged path list, for the check of the programs an image on it starts:
    one cached Process reads the layers it did not build."""
    zstd = await Get(ZstdBinary, ZstdBinaryRequest())
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv("base-paths", "--base", BASE_DIR, "--out", _BASE_PATHS,
                           *(("--zstd", zstd.path) if zstd.path else ())),
            input_digest=await Get(Digest, MergeDigests([tool.digest, base.digest])),
            output_files=(_BASE_PATHS,),
            description=f"Listing the paths of base image {description}",
            level=LogLevel.DEBUG,
        ),
    )
    return dataclasses.replace(base, paths=(result.output_digest,))


@rule(desc="Resolving a base image", level=LogLevel.DEBUG)
async def external_base(
    request: ExternalBaseRequest, tool: ImageTool, strata: StrataSubsystem, run_id: RunId
) -> BaseImage:
    tgt = request.target
    if isinstance(tgt, OciImageArchiveTarget):
        sources = await Get(SourceFiles, SourceFilesRequest([tgt[OciArchiveSourceField]]))
        (path,) = sources.snapshot.files
        base = await Get(
            BaseImage,
            ImportBaseRequest(
                sources.snapshot.digest,
                path,
                str(tgt.address),
                ref=tgt[OciArchiveRefField].value,
                platform=request.base_platform(),
            ),
        )
        base = await _with_paths(base, str(tgt.address), tool)
        return dataclasses.replace(base, name=str(tgt.address))
    registry = tgt[OciPullRegistryField].value
    repository = tgt[OciPullRepositoryField].value
    digest = tgt[OciPullDigestField].value
    argv = [
        "pull",
        "--registry", registry,
        "--repository", repository,
        "--digest", digest,
        "--platform", request.base_platform(),
        "--out", _PULLED,
        "--sbom-out", _PULLED_SBOMS,
    ]  # fmt: skip
    if tgt[OciPullInsecureField].value:
        argv.append("--insecure")
    argv.extend(strata.registry_stall_args())
    access = await Get(RegistryAccessEnv, RegistryAccessEnvRequest())
    process = Process(
        argv=tool.argv(*argv),
        input_digest=tool.digest,
        env=dict(access.env),
        output_directories=(_PULLED, _PULLED_SBOMS),
        description=f"Pulling {registry}/{repository}@{digest} for {tgt.address}",
        level=LogLevel.INFO,
        remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
    )
    # On this machine, whatever the environment: its registry credentials (docker config,
    # helpers) and its network.
    pulled = await _run_choosing_platform(
        process, str(tgt.address), request.base_platform(),
        here="this machine's registry credentials and network",
    )
    _show_warnings(pulled, process.description, run_id)
    layout, sboms = await MultiGet(
        Get(Digest, DigestSubset(pulled.output_digest, PathGlobs([f"{_PULLED}/**"]))),
        Get(Digest, DigestSubset(pulled.output_digest, PathGlobs([f"{_PULLED_SBOMS}/**"]))),
    )
    base = await Get(BaseImage, ImportBaseRequest(layout, _PULLED, str(tgt.address)))
    base = await _with_paths(base, str(tgt.address), tool)
    return dataclasses.replace(base, name=f"{registry}/{repository}", sboms=sboms)

def rules():
    return collect_rules()
