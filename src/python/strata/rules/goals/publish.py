"""`pants publish` for `oci_image` and `oci_image_index`: push to each of their registries with
Strata's own client."""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.addresses import Address, AddressInput
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.internals.session import RunId
from pants.engine.process import InteractiveProcess, Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from strata.core.oci.image import digest_hex, sha256_digest
from strata.core.oci.media_types import OCI_INDEX
from strata.core.registry.auth import ENV_PASSWORD, ENV_USERNAME
from strata.rules.image.assembly import (
    AssembledImage,
    AssembleRequest,
    Blobs,
    ImageInputs,
    assembled_with_facts,
    split_repo_tag,
)
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.index import IndexLayout, IndexLayoutRequest
from strata.rules.sbom import Sbom, SbomRequest
from strata.rules.tool import ImageTool, RegistryAccessEnv, RegistryAccessEnvRequest
from strata.subsystems import StrataSubsystem
from strata.target_types.base import OciPullRepositoryField, OciPullTarget
from strata.target_types.image import (
    OciImageDependenciesField,
    OciImageTagsField,
    OciPublishFormatField,
    OciRegistriesField,
    OciRepositoryField,
    OutputFormat,
)
from strata.target_types.index import OciIndexImagesField, OciIndexTagField

# Pants logs a process's argv and environment (`-ldebug`), so secrets go to the push in a
# hand-off file; its environment is only RegistryAccessEnv's paths.
_HANDOFF_PREFIX = "strata-registry-credentials-"
_LAYOUT = "image"
_MANIFEST = "push-manifest.json"
_SBOM_DIR = "sbom"
_NO_REGISTRIES = PublishProcesses([PublishPackages(names=(), description="(no `registries`)")])


class PublishOciImageRequest(PublishRequest):
    pass


class PublishOciImageIndexRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class _PushFieldSet(PublishFieldSet):
    """What an `oci_image` and an `oci_image_index` are published with."""

    registries: OciRegistriesField
    image_tags: OciImageTagsField
    repository: OciRepositoryField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData(
            {
                "publisher": "strata",
                "registries": self.registries.value or (),
                **super().get_output_data(),
            }
        )


@dataclass(frozen=True)
class PublishOciImageFieldSet(_PushFieldSet):
    publish_request_type = PublishOciImageRequest
    required_fields = (OciRegistriesField, OciImageDependenciesField)

    publish_format: OciPublishFormatField


@dataclass(frozen=True)
class PublishOciImageIndexFieldSet(_PushFieldSet):
    publish_request_type = PublishOciImageIndexRequest
    required_fields = (OciRegistriesField, OciIndexImagesField)

    images: OciIndexImagesField
    tag: OciIndexTagField
    publish_format: OciPublishFormatField


@dataclass(frozen=True)
class _PushManifest:
    """The manifest the push sends: the file (for the push's sandbox), its digest and type."""

    file: Digest
    digest: str
    media_type: str


async def _manifest_to_push(
    image: AssembledImage, *, docker: bool, tool: ImageTool, address: Address
) -> _PushManifest:
    """The manifest of an image's layout: the process reads only the index, the manifest and
    the config, never the layers."""
    wanted = [f"{_LAYOUT}/index.json"] + [
        f"{_LAYOUT}/blobs/sha256/{digest_hex(image.metadata[key])}"
        for key in ("manifest_digest", "config_digest")
    ]
    layout_head = await Get(Digest, DigestSubset(image.output, PathGlobs(wanted)))
    return await _decide_manifest(layout_head, docker=docker, tool=tool, address=address)


async def _manifest_list_to_push(
    layout: IndexLayout, *, tool: ImageTool, address: Address
) -> _PushManifest:
    """An index's layout as a Docker manifest list, from the layout's index, manifests and
    configs (never the layers)."""

    def blob(digest: str) -> str:
        return f"{_LAYOUT}/blobs/sha256/{digest_hex(digest)}"

    manifests = [blob(d["digest"]) for d in json.loads(layout.index_bytes)["manifests"]]
    contents = await Get(DigestContents, DigestSubset(layout.digest, PathGlobs(manifests)))
    configs = [blob(json.loads(c.content)["config"]["digest"]) for c in contents]
    wanted = [f"{_LAYOUT}/index.json", blob(layout.index_digest), *manifests, *configs]
    layout_head = await Get(Digest, DigestSubset(layout.digest, PathGlobs(wanted)))
    return await _decide_manifest(layout_head, docker=True, tool=tool, address=address)


async def _decide_manifest(
    layout_head: Digest, *, docker: bool, tool: ImageTool, address: Address
) -> _PushManifest:
    """Decided once, by the core's `manifest`, so that what is printed and returned to Pants
    is the digest of the very bytes pushed (a Docker v2s2 manifest or manifest list has another
    digest than the layout's OCI one)."""
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv(
                "manifest", "--layout", _LAYOUT, *(["--docker"] if docker else []),
                "--out", _MANIFEST,
            ),  # fmt: skip
            input_digest=await Get(Digest, MergeDigests([tool.digest, layout_head])),
            output_files=(_MANIFEST,),
            description=f"Deciding the manifest to push for {address}",
            level=LogLevel.DEBUG,
        ),
    )
    contents = await Get(DigestContents, Digest, result.output_digest)
    manifest_bytes = contents[0].content
    return _PushManifest(
        result.output_digest, sha256_digest(manifest_bytes), json.loads(manifest_bytes)["mediaType"]
    )


@dataclass(frozen=True)
class _CredentialsHandoffRequest:
    """The hand-off of one push process: each push deletes the file it reads."""

    address: Address
    registry: str


@dataclass(frozen=True)
class _CredentialsHandoff:
    path: Optional[str]  # None: neither STRATA_REGISTRY_USERNAME nor _PASSWORD is set


# The hand-off files this process wrote, with the run that wrote them.
_handoffs: Dict[str, RunId] = {}


def _remove_handoffs(unless_of_run: Optional[RunId] = None) -> None:
    for path, run_id in list(_handoffs.items()):
        if run_id != unless_of_run and _handoffs.pop(path, None) is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:  # read, so deleted, by its push
                pass


atexit.register(_remove_handoffs)


@rule
async def hand_off_credentials(
    request: _CredentialsHandoffRequest, run_id: RunId
) -> _CredentialsHandoff:
    """STRATA_REGISTRY_USERNAME/_PASSWORD, from the environment `pants` was started in, as a
    0600 file (mkstemp) in the system temp directory, never in the repo or Pants' store; its
    push takes it by path (`--credentials-file`) and deletes it before anything else. A file no
    push read (the run failed or was interrupted first) is deleted by the next run's hand-off
    and when the Pants process exits. Depending on the RunId, a hand-off is made anew in each
    run, never a previous run's memoized path; the request makes one per push process."""
    _remove_handoffs(unless_of_run=run_id)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest((ENV_USERNAME, ENV_PASSWORD)))
    if not env:
        return _CredentialsHandoff(None)
    fd, path = tempfile.mkstemp(prefix=_HANDOFF_PREFIX)
    _handoffs[path] = run_id
    with os.fdopen(fd, "w") as f:
        json.dump(dict(env), f)
    return _CredentialsHandoff(path)


async def _push_processes(
    fs: _PushFieldSet,
    tool: ImageTool,
    strata: StrataSubsystem,
    layout: Digest,
    manifest: _PushManifest,
    tags: Tuple[str, ...],
    mount_from: Optional[str] = None,
    sbom: Optional[Sbom] = None,
) -> PublishProcesses:
    """One `push` of the layout at _LAYOUT per registry, so each registry's outcome is
    reported on its own; the SBOM's documents go up as referrers of the manifest."""
    repository = fs.repository.value_or_default(fs.address)
    registries = fs.registries.value or ()
    access, input_digest = await MultiGet(
        Get(RegistryAccessEnv, RegistryAccessEnvRequest()),
        Get(Digest, MergeDigests(
            [tool.digest, layout, manifest.file, *([sbom.digest] if sbom else [])]
        )),
    )
    handoffs = await MultiGet(
        Get(_CredentialsHandoff, _CredentialsHandoffRequest(fs.address, registry))
        for registry in registries
    )
    argv = [
        *tool.argv("push", "--layout", _LAYOUT, "--manifest", _MANIFEST),
        *("--repository", repository),
        *(arg for tag in tags for arg in ("--tag", tag)),
        *(("--mount-from", mount_from) if mount_from else ()),
        *(arg for path in (sbom.files if sbom else ()) for arg in ("--attach", path)),
        *strata.registry_stall_args(),
    ]
    return PublishProcesses(
        PublishPackages(
            names=tuple(f"{registry}/{repository}:{tag}" for tag in tags),
            process=InteractiveProcess(
                argv=(
                    *argv,
                    *("--registry", registry),
                    *(("--credentials-file", handoff.path) if handoff.path else ()),
                ),
                env=dict(access.env),
                input_digest=input_digest,
            ),
            description=f"({manifest.digest})",
            data=PublishOutputData(
                {
                    **fs.get_output_data(),
                    "registry": registry,
                    "digest": manifest.digest,
                    "media_type": manifest.media_type,
                }
            ),
        )
        for registry, handoff in zip(registries, handoffs)
    )


@rule(desc="Preparing to push an OCI image", level=LogLevel.DEBUG)
async def publish_oci_image(
    request: PublishOciImageRequest, tool: ImageTool, strata: StrataSubsystem
) -> PublishProcesses:
    fs = request.field_set
    if not fs.registries.value:
        return _NO_REGISTRIES
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(fs.address, description_of_origin="pants publish")
    )
    image_fs = OciImageFieldSet.create(wrapped.target)
    assemble = AssembleRequest(
        image_fs, OutputFormat.OCI.value, _LAYOUT, image_fs.publish_compression(), Blobs.LINK
    )
    image = await assembled_with_facts(assemble)
    repository, tag = split_repo_tag(image.metadata["repo_tag"])
    tags = fs.image_tags.value or (tag,)
    manifest = await _manifest_to_push(
        image, docker=fs.publish_format.value == "docker", tool=tool, address=fs.address
    )
    sbom = None
    if image_fs.sbom.value:
        inputs = await Get(ImageInputs, AssembleRequest, assemble)
        sbom = await Get(
            Sbom,
            SbomRequest(
                inputs.sbom_sources, repository, tag, manifest.digest,
                f"{_SBOM_DIR}/{fs.address.target_name}", str(fs.address),
            ),
        )
    mount_from = None
    if image_fs.base.value:
        # Layers of a pulled base are already in its repository: mount them, don't upload.
        origin = f"the `base` field of {fs.address}"
        base_address = await Get(
            Address,
            AddressInput,
            AddressInput.parse(
                image_fs.base.value, relative_to=fs.address.spec_path, description_of_origin=origin
            ),
        )
        base = await Get(
            WrappedTarget, WrappedTargetRequest(base_address, description_of_origin=origin)
        )
        if isinstance(base.target, OciPullTarget):
            mount_from = base.target[OciPullRepositoryField].value
    return await _push_processes(fs, tool, strata, image.output, manifest, tags, mount_from, sbom)


@rule(desc="Preparing to push an OCI image index", level=LogLevel.DEBUG)
async def publish_oci_image_index(
    request: PublishOciImageIndexRequest, tool: ImageTool, strata: StrataSubsystem
) -> PublishProcesses:
    """Each image's layers go up as they would alone (gzip when `compression` is `none`); the
    push sends the index the core decided, after its images."""
    fs = request.field_set
    if not fs.registries.value:
        return _NO_REGISTRIES
    layout = await Get(
        IndexLayout,
        IndexLayoutRequest(fs.images, fs.tag.value, _LAYOUT, publish=True, blobs=Blobs.LINK),
    )
    if fs.publish_format.value == "docker":
        manifest = await _manifest_list_to_push(layout, tool=tool, address=fs.address)
    else:
        manifest = _PushManifest(
            await Get(Digest, CreateDigest([FileContent(_MANIFEST, layout.index_bytes)])),
            layout.index_digest,
            OCI_INDEX,
        )
    tags = fs.image_tags.value or (layout.tag,)
    return await _push_processes(fs, tool, strata, layout.digest, manifest, tags)


def rules():
    return [
        *collect_rules(),
        *PublishOciImageFieldSet.rules(),
        *PublishOciImageIndexFieldSet.rules(),
    ]
