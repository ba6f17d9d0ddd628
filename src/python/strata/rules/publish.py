"""`pants publish` for `oci_image` and `oci_image_index`: push to each of their registries with
Strata's own client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Tuple

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
from pants.engine.process import InteractiveProcess, Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from strata.core.oci.image import digest_hex, sha256_digest
from strata.core.oci.media_types import OCI_INDEX
from strata.rules.image import (
    AssembledImage,
    AssembleRequest,
    ImageInputs,
    OciImageFieldSet,
    assembled_with_facts,
    split_repo_tag,
)
from strata.rules.index import IndexLayout, IndexLayoutRequest
from strata.rules.sbom import Sbom, SbomRequest
from strata.rules.tool import ImageTool
from strata.target_types import (
    OciImageDependenciesField,
    OciImageTagsField,
    OciIndexImagesField,
    OciIndexTagField,
    OciPublishFormatField,
    OciPullRepositoryField,
    OciPullTarget,
    OciRegistriesField,
    OciRepositoryField,
    OutputFormat,
)

# Read by the push process itself, so credentials never enter a cache key or a log line.
_CREDENTIAL_ENV = ("STRATA_REGISTRY_USERNAME", "STRATA_REGISTRY_PASSWORD", "DOCKER_CONFIG", "HOME")
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


@dataclass(frozen=True)
class _PushManifest:
    """The manifest the push sends: the file (for the push's sandbox), its digest and type."""

    file: Digest
    digest: str
    media_type: str


async def _manifest_to_push(
    image: AssembledImage, *, docker: bool, tool: ImageTool, address: Address
) -> _PushManifest:
    """Decided once, by the core's `manifest`, so that what is printed and returned to Pants
    is the digest of the very bytes pushed (a Docker v2s2 manifest has another digest than
    the layout's OCI one)."""
    # The process reads only the index, the manifest and the config, never the layers.
    wanted = [f"{_LAYOUT}/index.json"] + [
        f"{_LAYOUT}/blobs/sha256/{digest_hex(image.metadata[key])}"
        for key in ("manifest_digest", "config_digest")
    ]
    layout_head = await Get(Digest, DigestSubset(image.output, PathGlobs(wanted)))
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


async def _push_processes(
    fs: _PushFieldSet,
    tool: ImageTool,
    layout: Digest,
    manifest: _PushManifest,
    tags: Tuple[str, ...],
    mount_from: Optional[str] = None,
    sbom: Optional[Sbom] = None,
) -> PublishProcesses:
    """One `push` of the layout at _LAYOUT per registry, so each registry's outcome is
    reported on its own; the SBOM's documents go up as referrers of the manifest."""
    repository = fs.repository.value_or_default(fs.address)
    env, input_digest = await MultiGet(
        Get(EnvironmentVars, EnvironmentVarsRequest(_CREDENTIAL_ENV)),
        Get(Digest, MergeDigests(
            [tool.digest, layout, manifest.file, *([sbom.digest] if sbom else [])]
        )),
    )
    argv = [
        *tool.argv("push", "--layout", _LAYOUT, "--manifest", _MANIFEST),
        *("--repository", repository),
        *(arg for tag in tags for arg in ("--tag", tag)),
        *(("--mount-from", mount_from) if mount_from else ()),
        *(arg for path in (sbom.files if sbom else ()) for arg in ("--attach", path)),
    ]
    return PublishProcesses(
        PublishPackages(
            names=tuple(f"{registry}/{repository}:{tag}" for tag in tags),
            process=InteractiveProcess(
                argv=(*argv, "--registry", registry), env=dict(env), input_digest=input_digest
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
        for registry in fs.registries.value or ()
    )


@rule(desc="Preparing to push an OCI image", level=LogLevel.DEBUG)
async def publish_oci_image(request: PublishOciImageRequest, tool: ImageTool) -> PublishProcesses:
    fs = request.field_set
    if not fs.registries.value:
        return _NO_REGISTRIES
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(fs.address, description_of_origin="pants publish")
    )
    image_fs = OciImageFieldSet.create(wrapped.target)
    assemble = AssembleRequest(
        image_fs, OutputFormat.OCI.value, _LAYOUT, image_fs.publish_compression()
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
    return await _push_processes(fs, tool, image.output, manifest, tags, mount_from, sbom)


@rule(desc="Preparing to push an OCI image index", level=LogLevel.DEBUG)
async def publish_oci_image_index(
    request: PublishOciImageIndexRequest, tool: ImageTool
) -> PublishProcesses:
    """Each image's layers go up as they would alone (gzip when `compression` is `none`); the
    push sends the index the core decided, after its images."""
    fs = request.field_set
    if not fs.registries.value:
        return _NO_REGISTRIES
    layout = await Get(
        IndexLayout, IndexLayoutRequest(fs.images, fs.tag.value, _LAYOUT, publish=True)
    )
    manifest = _PushManifest(
        await Get(Digest, CreateDigest([FileContent(_MANIFEST, layout.index_bytes)])),
        layout.index_digest,
        OCI_INDEX,
    )
    tags = fs.image_tags.value or (layout.tag,)
    return await _push_processes(fs, tool, layout.digest, manifest, tags)


def rules():
    return [
        *collect_rules(),
        *PublishOciImageFieldSet.rules(),
        *PublishOciImageIndexFieldSet.rules(),
    ]
