"""`oci_image`: what an image holds and is called, how it is layered and owned, its platform,
what `package` writes and what `publish` pushes. Its runtime config fields and its
customisation layer fields have modules of their own (`image_runtime_config`,
`image_customisation`)."""

from __future__ import annotations

from enum import Enum
from functools import partial
from typing import Dict, Optional

from pants.core.goals.package import OutputPathField
from pants.core.util_rules.environments import EnvironmentField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    InvalidFieldException,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from strata.core.build.compression import SUFFIXES
from strata.core.build.tarstream import check_id, check_owner_name
from strata.core.oci.image import (
    INHERITANCE,
    ConfigTooLarge,
    Inheritance,
    config_bytes,
    epoch_seconds,
    normal_variant,
    validate_architecture,
    validate_os,
    validate_repository,
    validate_tag,
)
from strata.core.oci.formats import FORMATS
from strata.target_types.fields import (
    CheckedIntField,
    CheckedStringField,
    CheckedStringSequenceField,
    PositiveIntField,
    check_field,
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
from strata.target_types.image_runtime_config import RUNTIME_CONFIG_FIELDS, runtime_config
from strata.target_types.layer import OciPermissionsField


class OciImageDependenciesField(Dependencies):
    help = help_text(
        """
        What the image contains: its dependency closure, projected onto store nodes.

        Each node becomes layer content at a fixed destination:

        - `file`/`files` targets: each file at `/<path from the build root>`.
        - `resource`/`resources` targets: each file at `/<path with its source root stripped>`,
          where Python's import machinery would find it.
        - A `file` or `resource` whose `source` is an `http_source` is downloaded (and checked
          against its `sha256` and `len`) by Pants, then placed as if it were on disk under its
          `filename`.
        - Any target that can be packaged (`pex_binary`, `archive`, ...): its built package at
          `/<its output_path>`, i.e. where `package` would put it under `dist/`. A package is a
          leaf: everything it needs is inside it. A `pex_binary` with `layout="packed"` is split
          into one node per third-party wheel (`.deps/*.whl`), one for `.bootstrap/` and one for
          the rest, so that shared wheels get shared layers.
        - `python_venv` targets: an installed virtualenv, one node per third-party
          distribution, one for the first-party sources and one for the venv's skeleton (see
          `pants help python_venv`). Like a package, a venv holds its closure.
        - `oci_layer` targets: one node holding everything in their closure (always one layer).
        - Other targets (`python_source`, `python_requirement`, `target`, ...) add no content of
          their own; the walk continues through them to the targets they depend on.

        A node references the nodes its target depends on; popular nodes sink into lower layers.
        """
    )


class OciRepositoryField(CheckedStringField):
    alias = "repository"
    core_check = staticmethod(validate_repository)
    help = help_text(
        """
        The image repository, e.g. `acme/app`: lowercase components of `[a-z0-9]` separated by
        `.`, `_`, `__` or `-`, joined by `/`. Defaults to the target name, lowercased.
        """
    )

    def value_or_default(self, address: Address) -> str:
        value = self.value or address.target_name.lower()
        check_field(type(self), address, validate_repository, value)
        return value


class OciTagField(CheckedStringField):
    alias = "tag"
    core_check = staticmethod(validate_tag)
    help = help_text(
        """
        The image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`). Defaults to a tag derived from the
        image's content (its config digest), so the same content always gets the same tag.
        """
    )


class OciMaxLayersField(PositiveIntField):
    alias = "max_layers"
    default = 100
    help = help_text(
        """
        The most layers the image may have, counting base-image layers and the customisation layer
        on top. The most popular nodes get a layer each; when there are more nodes than layers,
        the least popular share the last one. A `docker-archive` (or an `oci_image_bundle`, or
        `pants run` through `docker load`) of more than 125 layers is an error: `docker load`
        fails on it with "max depth exceeded".

        When only one layer is left for the image's own content (`max_layers=1`, or one more
        than its base's layers), everything goes into that one layer, the customisation
        content included, as nixpkgs' `buildImage` does: the smallest image, but any change
        rebuilds and re-ships all of it.
        """
    )


class OciCreatedField(CheckedStringField):
    alias = "created"
    default = "1970-01-01T00:00:01Z"
    core_check = staticmethod(epoch_seconds)  # the default `mtime`: a tar header must hold it
    help = help_text(
        """
        The image's creation time in the config and history (RFC 3339, from 1970 to
        2242-03-16T12:56:31Z, what a tar header's mtime holds: it is the default `mtime`). The
        default, one second past the epoch, keeps the image reproducible; `"now"` trades that
        for a meaningful date in `docker images`.
        """
    )


class OciMtimeField(CheckedStringField):
    alias = "mtime"
    core_check = staticmethod(epoch_seconds)
    help = help_text(
        """
        The modification time of every file in the layers (RFC 3339 or `"now"`, from 1970 to
        2242-03-16T12:56:31Z). Defaults to `created`. Kept separate so that `created = "now"`
        can tell registries the real date while the layers stay bit-for-bit reproducible and
        shared.
        """
    )


class _OwnerIdField(CheckedIntField):
    default = 0


class OciUidField(_OwnerIdField):
    alias = "uid"
    core_check = staticmethod(partial(check_id, what="uid"))
    help = "The numeric owner of every file in the layers (0 to 2097151, what a tar header holds)."


class OciGidField(_OwnerIdField):
    alias = "gid"
    core_check = staticmethod(partial(check_id, what="gid"))
    help = "The numeric group of every file in the layers (0 to 2097151, what a tar header holds)."


class _OwnerNameField(CheckedStringField):
    default = "root"


class OciUnameField(_OwnerNameField):
    alias = "uname"
    core_check = staticmethod(partial(check_owner_name, what="uname"))
    help = "The owner name recorded for every file in the layers (1 to 31 ASCII characters)."


class OciGnameField(_OwnerNameField):
    alias = "gname"
    core_check = staticmethod(partial(check_owner_name, what="gname"))
    help = "The group name recorded for every file in the layers (1 to 31 ASCII characters)."


class OciArchitectureField(CheckedStringField):
    alias = "architecture"
    core_check = staticmethod(validate_architecture)
    default = "amd64"
    help = help_text(
        """
        The image's CPU architecture (config `architecture`), as Go's GOARCH names it:
        `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`, `mips64le`, `loong64`,
        ... (`aarch64` is `arm64`, `x86_64` is `amd64`). With a `base`, it must be the base's.
        """
    )


class OciOsField(CheckedStringField):
    alias = "os"
    default = "linux"
    core_check = staticmethod(validate_os)
    help = "The image's operating system (config `os`), as Go's GOOS names it (`linux`, ...)."


class OciVariantField(StringField):
    alias = "variant"
    help = help_text(
        """
        The CPU variant (config `variant`), which an `oci_image_index` lists with the
        architecture so that clients pick the image their CPU runs: `v5` to `v8` for `arm`
        (`linux/arm/v7` is 32-bit ARMv7), `v8`, `v8.1`..., `v9`... for `arm64`, `v1` to `v4`
        for `amd64` (GOAMD64 levels). Normalised as containerd does (`7` is `v7`). Unset by
        default, and then absent from the config: clients read `arm64` as `arm64/v8`.
        """
    )


def image_platform(architecture: str, os: str, variant: Optional[str]) -> Dict[str, str]:
    """An `oci_image`'s config platform keys: `variant` only when set, normalised."""
    platform = {"architecture": architecture, "os": os}
    if variant is not None:
        platform["variant"] = normal_variant(architecture, variant)
    return platform


# The core's output formats and layer compressions, as enums: OutputFormat.OCI_ARCHIVE is
# "oci-archive". A format or compression the core adds is a choice here with no edit.
OutputFormat = Enum("OutputFormat", {name.upper().replace("-", "_"): name for name in FORMATS})


Compression = Enum("Compression", {name.upper(): name for name in SUFFIXES})


class OciOutputFormatField(StringField):
    alias = "output_format"
    default = OutputFormat.DOCKER_ARCHIVE.value
    valid_choices = OutputFormat
    help = help_text(
        """
        What `package` writes: `docker-archive` (a tarball for `podman load`/`docker load`,
        `dist/<path>/<name>.tar`), `oci` (an OCI image layout directory, `dist/<path>/<name>`),
        `oci-archive` (that layout as a tarball, `dist/<path>/<name>.tar`) or `rootfs` (no image
        but its filesystem, as dockerTools' `exportImage` writes it: one tar,
        `dist/<path>/<name>.tar`, of the base's layers and the image's own merged, files deleted
        by a layer's whiteouts left out, each entry as the layer it comes from has it), or
        `descriptor` (`dist/<path>/<name>.json`: the image as one small JSON document, its exact
        manifest and config and each layer's descriptor, whose blob is in Strata's blob store;
        no blob is copied). `pants run` and `pants publish` are unaffected: they load or push
        the image itself.
        """
    )


class OciCompressionField(StringField):
    alias = "compression"
    default = Compression.NONE.value
    valid_choices = Compression
    help = help_text(
        """
        How layer blobs are compressed in `oci` and `oci-archive` output: `none`, `gzip` or
        `zstd`, always deterministically (no names or timestamps in headers). In
        `docker-archive` output the image's own layers are always uncompressed tars; a base
        image's layers go in as they are when uncompressed or gzip (`docker load`, `podman load`
        and skopeo read those), and decompressed (with the `zstd` binary) when zstd, which
        Docker cannot read.
        """
    )


class OciImageOutputPathField(OutputPathField):
    pass


# Where `embed_sbom` puts an image's SBOM documents.
EMBEDDED_SBOM_DIR = "/usr/share/sbom"


class OciSbomField(BoolField):
    alias = "sbom"
    default = True
    help = help_text(
        """
        Write the image's software bill of materials beside it, as SPDX 2.3 JSON
        (`<output>.spdx.json`) and CycloneDX 1.5 JSON (`<output>.cdx.json`), and attach both to
        the manifest `pants publish` pushes, as OCI 1.1 referrers (artifact manifests whose
        `subject` is the image; on a registry without the referrers API, under the
        `sha256-<hex>` tag of the referrers tag schema).

        The SBOM comes from the closure Strata resolved, not from scanning the image: each
        Debian package (name, version, architecture, source package, licence from a
        machine-readable `copyright` file, `pkg:deb` purl), each Python distribution (name,
        version, licence from its metadata, `pkg:pypi` purl), each first-party target (its
        address and every file's checksums), the base image (`pkg:oci` purl, and the packages
        of the SBOM attached to it in its registry), and the layer that holds each. The same
        inputs give the same bytes: its times are the image's `created`, its namespace and
        serial number derive from the image's digest.
        """
    )


class OciEmbedSbomField(BoolField):
    alias = "embed_sbom"
    default = False
    help = help_text(
        f"""
        Also put the SBOM in the image, as `{EMBEDDED_SBOM_DIR}/image.spdx.json` and
        `{EMBEDDED_SBOM_DIR}/image.cdx.json`, in a layer of its own on top (it takes one of
        `max_layers`). That SBOM describes the layers below it; since it cannot name the digest
        of the image that holds it, its namespace and serial number derive from those layers'
        diff_ids.
        """
    )


def _inherited_config_help() -> str:
    """The inheritance paragraph of `base`'s help, from the core's table and the fields."""
    aliases = {field.config_key: field.alias for field in RUNTIME_CONFIG_FIELDS}

    def key(name: str) -> str:
        return f"`{name}` (`{aliases[name]}`)" if name in aliases else f"`{name}`"

    items = [
        f"* {', '.join(key(name) for name, r in INHERITANCE.items() if r is rule)}: {rule.value}."
        for rule in Inheritance
    ]
    return "\n".join(
        [
            "Its runtime config is inherited key by key (with the field that sets each key):",
            *items,
            "",
            "Other keys of the base's (`OnBuild`, `Hostname`, ...) describe how it was built and "
            "are dropped. The architecture and OS must match the base's.",
        ]
    )


class OciBaseField(StringField):
    alias = "base"
    help = help_text(
        """
        The image to build on top of: the address of another `oci_image`, an `oci_image_archive`
        or an `oci_pull` target. Its layers are reused verbatim (never unpacked) below this
        image's own and count against `max_layers`; its history is kept.
        """
    ) + "\n\n" + _inherited_config_help()


class OciRegistriesField(StringSequenceField):
    alias = "registries"
    help = help_text(
        """
        Registries `pants publish` pushes this image to, as `host[:port]` (e.g.
        `registry.example.com`, `127.0.0.1:5000`). Plain HTTP is used for localhost and
        127.0.0.1; anything else needs TLS. Credentials come from `STRATA_REGISTRY_USERNAME` /
        `STRATA_REGISTRY_PASSWORD` or the docker `config.json` (`$DOCKER_CONFIG` or `~/.docker`).
        """
    )


class OciPublishFormatField(StringField):
    alias = "publish_format"
    default = "oci"
    valid_choices = ("oci", "docker")
    help = help_text(
        """
        The manifest `pants publish` pushes: `oci` (OCI image manifest; layers as `compression`
        says, gzip when that is `none`) or `docker` (Docker v2 schema 2, for registries and
        tools that predate OCI; gzip layers, so `compression="zstd"` is an error). The blobs are
        the same either way. For an `oci_image_index`: an OCI image index of OCI manifests, or
        a Docker manifest list of Docker v2 schema 2 manifests.
        """
    )


class OciImageTagsField(CheckedStringSequenceField):
    alias = "image_tags"
    core_check = staticmethod(validate_tag)
    help = help_text(
        """
        Tags `pants publish` gives the pushed image in each registry (the `tags` field is
        Pants' own, for selecting targets). Defaults to `[tag]`, i.e. the `tag` field or the
        content-derived tag. The manifest is pushed by digest first, then each tag, so a failed
        push never leaves a tag naming a partial image.
        """
    )


class OciImageTarget(Target):
    alias = "oci_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        EnvironmentField,
        OciImageDependenciesField,
        OciRepositoryField,
        OciTagField,
        OciMaxLayersField,
        OciCreatedField,
        OciMtimeField,
        OciUidField,
        OciGidField,
        OciUnameField,
        OciGnameField,
        OciArchitectureField,
        OciOsField,
        OciVariantField,
        *RUNTIME_CONFIG_FIELDS,
        OciSymlinksField,
        OciDirectoriesField,
        OciOutputFormatField,
        OciCompressionField,
        OciImageOutputPathField,
        OciBaseField,
        OciRegistriesField,
        OciImageTagsField,
        OciPublishFormatField,
        OciFakeNssField,
        OciCaCertificatesField,
        OciSbomField,
        OciEmbedSbomField,
        OciPermissionsField,
        OciExtraCommandsField,
        OciFakeRootCommandsField,
        OciCommandToolsField,
        OciCommandTimeoutField,
        OciIncludeNixDbField,
    )
    help = help_text(
        """
        A layered, reproducible OCI/Docker image built from this target's dependency closure,
        with no Docker daemon.

        Each dependency that has content is a store node; nodes are assigned to layers by
        popularity (nixpkgs' `buildLayeredImage` algorithm), each layer is built by its own
        cached Process, and the same inputs always give the same image digest.

        `pants package` writes the image to `dist/`; `pants run` loads it into podman (or
        docker, `[strata].loader`) without writing it to disk, then runs it with the arguments
        after `--` (`--strata-load-only`: load only).
        """
    )

    def validate(self) -> None:
        """What fields decide together (they are checked one by one): the `variant` must be one
        of the `architecture`'s, and the runtime config fields must leave a config that readers
        take (a base's keys, which only a build knows, are checked when the config is made)."""
        variant = self[OciVariantField].value
        if variant is not None:
            architecture = self[OciArchitectureField].value
            check_variant = partial(normal_variant, architecture)
            check_field(OciVariantField, self.address, check_variant, variant)
        try:
            config_bytes({"config": runtime_config(self)})
        except ConfigTooLarge as e:
            aliases = {f"config.{f.config_key}": f.alias for f in RUNTIME_CONFIG_FIELDS}
            fields = ", ".join(f"`{aliases[key]}`" for key, _ in e.largest)
            raise InvalidFieldException(
                f"The runtime config fields of {self.address} (largest first: {fields}) make "
                f"its config too large: {e}."
            ) from e


def target_types():
    return [OciImageTarget]
