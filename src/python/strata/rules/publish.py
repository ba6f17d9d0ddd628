"""`pants publish` for `oci_image`: push to each of its registries with Strata's own client."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.addresses import Address, AddressInput
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, MergeDigests
from pants.engine.process import InteractiveProcess
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from strata.rules.image import AssembledImage, AssembleRequest, OciImageFieldSet
from strata.rules.tool import ImageTool
from strata.target_types import (
    Compression,
    OciImageTagsField,
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


class PublishOciImageRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class PublishOciImageFieldSet(PublishFieldSet):
    publish_request_type = PublishOciImageRequest
    required_fields = (OciRegistriesField,)

    registries: OciRegistriesField
    image_tags: OciImageTagsField
    repository: OciRepositoryField
    publish_format: OciPublishFormatField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData(
            {
                "publisher": "strata",
                "registries": self.registries.value or (),
                **super().get_output_data(),
            }
        )


@rule(desc="Preparing to push an OCI image", level=LogLevel.DEBUG)
async def publish_oci_image(request: PublishOciImageRequest, tool: ImageTool) -> PublishProcesses:
    fs = request.field_set
    registries = fs.registries.value or ()
    if not registries:
        return PublishProcesses([PublishPackages(names=(), description="(no `registries`)")])
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(fs.address, description_of_origin="pants publish")
    )
    image_fs = OciImageFieldSet.create(wrapped.target)
    # Registries get compressed layers: uncompressed ones would be pushed byte for byte.
    compression = image_fs.compression.value
    if compression == Compression.NONE.value:
        compression = Compression.GZIP.value
    image = await Get(
        AssembledImage, AssembleRequest(image_fs, OutputFormat.OCI.value, _LAYOUT, compression)
    )
    tags = fs.image_tags.value or (image.metadata["repo_tag"].rsplit(":", 1)[1],)
    repository = fs.repository.value_or_default(fs.address)
    env, input_digest = await MultiGet(
        Get(EnvironmentVars, EnvironmentVarsRequest(_CREDENTIAL_ENV)),
        Get(Digest, MergeDigests([tool.digest, image.output])),
    )
    argv = [*tool.argv("push", "--layout", _LAYOUT, "--repository", repository)]
    if fs.publish_format.value == "docker":
        argv.append("--docker")
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
            argv += ["--mount-from", base.target[OciPullRepositoryField].value]
    for registry in registries:
        argv += ["--registry", registry]
    for tag in tags:
        argv += ["--tag", tag]
    return PublishProcesses(
        [
            PublishPackages(
                names=tuple(f"{r}/{repository}:{t}" for r in registries for t in tags),
                process=InteractiveProcess(
                    argv=tuple(argv), env=dict(env), input_digest=input_digest
                ),
                description=f"({image.metadata['manifest_digest']})",
                data=fs.get_output_data(),
            )
        ]
    )


def rules():
    return [*collect_rules(), *PublishOciImageFieldSet.rules()]
