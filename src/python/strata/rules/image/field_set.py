"""The fields of an `oci_image` that every step of its pipeline reads, and where `package`
writes it."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import PackageFieldSet
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior
from pants.core.util_rules.environments import EnvironmentField

from strata.core.oci.formats import FORMATS
from strata.rules.closure import ImageClosureRequest
from strata.target_types.image import (
    Compression,
    OciArchitectureField,
    OciBaseField,
    OciCompressionField,
    OciCreatedField,
    OciEmbedSbomField,
    OciGidField,
    OciGnameField,
    OciImageDependenciesField,
    OciImageOutputPathField,
    OciMaxLayersField,
    OciMtimeField,
    OciOsField,
    OciOutputFormatField,
    OciRepositoryField,
    OciSbomField,
    OciTagField,
    OciUidField,
    OciUnameField,
    OciVariantField,
    OutputFormat,
    image_platform,
)
from strata.target_types.image_customisation import (
    OciCaCertificatesField,
    OciCommandTimeoutField,
    OciCommandToolsField,
    OciDirectoriesField,
    OciExtraCommandsField,
    OciFakeNssField,
    OciFakeRootCommandsField,
    OciIncludeNixDbField,
    OciSymlinksField,
)
from strata.target_types.image_runtime_config import OciEntrypointField
from strata.target_types.layer import OciPermissionsField

# The formats that read every layer as a tar: a base's zstd layers need the zstd binary.
TAR_LAYER_FORMATS = (OutputFormat.DOCKER_ARCHIVE, OutputFormat.ROOTFS)


@dataclass(frozen=True)
class OciImageFieldSet(PackageFieldSet, RunFieldSet):
    required_fields = (OciImageDependenciesField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    environment: EnvironmentField
    dependencies: OciImageDependenciesField
    repository: OciRepositoryField
    tag: OciTagField
    max_layers: OciMaxLayersField
    created: OciCreatedField
    mtime: OciMtimeField
    uid: OciUidField
    gid: OciGidField
    uname: OciUnameField
    gname: OciGnameField
    architecture: OciArchitectureField
    os: OciOsField
    variant: OciVariantField
    symlinks: OciSymlinksField
    directories: OciDirectoriesField
    output_format: OciOutputFormatField
    compression: OciCompressionField
    output_path: OciImageOutputPathField
    base: OciBaseField
    fake_nss: OciFakeNssField
    ca_certificates: OciCaCertificatesField
    sbom: OciSbomField
    embed_sbom: OciEmbedSbomField
    permissions: OciPermissionsField
    extra_commands: OciExtraCommandsField
    fake_root_commands: OciFakeRootCommandsField
    command_tools: OciCommandToolsField
    command_timeout: OciCommandTimeoutField
    include_nix_db: OciIncludeNixDbField
    entrypoint: OciEntrypointField

    def platform(self) -> dict:
        return image_platform(self.architecture.value, self.os.value, self.variant.value)

    def output_file(self) -> str:
        return output_file(self.output_path, self.output_format.value)

    def layer_mtime(self) -> str:
        """The files' mtime: `mtime`, or else `created`."""
        return self.mtime.value or self.created.value

    def closure_request(self) -> ImageClosureRequest:
        return ImageClosureRequest(self.address, self.dependencies, bool(self.base.value))

    def layer_compression(self) -> str:
        # docker-archive layers are plain tars: their digests are their diff_ids; rootfs reads
        # the layers as tars.
        if OutputFormat(self.output_format.value) in TAR_LAYER_FORMATS:
            return "none"
        return self.compression.value

    def publish_compression(self) -> str:
        """Registries get compressed layers: uncompressed ones would be pushed byte for byte."""
        if self.compression.value == Compression.NONE.value:
            return Compression.GZIP.value
        return self.compression.value


def output_file(output_path: OciImageOutputPathField, fmt: str) -> str:
    """Where `package` writes an image (or index) of format `fmt` under dist/."""
    return output_path.value_or_default(file_ending=FORMATS[fmt].suffix)

