"""Several `oci_image` targets as one artifact: `oci_image_index` (one image per platform) and
`oci_image_bundle` (one docker-archive of several images)."""

from __future__ import annotations

from typing import Optional

from pants.core.util_rules.environments import EnvironmentField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    SpecialCasedDependencies,
    StringField,
    Target,
)
from pants.util.strutil import help_text

from strata.target_types.fields import field_error
from strata.target_types.image import (
    OciImageOutputPathField,
    OciImageTagsField,
    OciPublishFormatField,
    OciRegistriesField,
    OciRepositoryField,
    OciTagField,
    OutputFormat,
)


class OciIndexImagesField(SpecialCasedDependencies):
    alias = "images"
    required = True
    help = help_text(
        """
        The `oci_image` targets of the index, one per platform (their `os`, `architecture`
        and `variant`), e.g. `[':app-amd64', ':app-arm64']`. Each is built as `pants package`
        would build it as an `oci` layout; the index lists their manifests in this order, each
        with its platform. Two images of one platform (`linux/arm64` and `linux/arm64/v8` are
        one) are an error: a client could not tell which to take.
        """
    )


class OciIndexTagField(OciTagField):
    help = help_text(
        """
        The index's tag in its layout and, unless `image_tags` says otherwise, in registries
        (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`). Defaults to a tag derived from the index's
        digest, so the same images always get the same tag.
        """
    )


class OciIndexOutputFormatField(StringField):
    alias = "output_format"
    default = OutputFormat.OCI.value
    valid_choices = OutputFormat
    help = help_text(
        """
        What `package` writes: `oci` (an OCI image layout directory, `dist/<path>/<name>`) or
        `oci-archive` (that layout as a tarball, `dist/<path>/<name>.tar`). Its `index.json`
        names the image index by `tag`; each blob is stored once, however many images share it.
        `docker-archive` is refused: `docker load` takes images of one platform only, and so is
        `rootfs`, one filesystem.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        if value == OutputFormat.ROOTFS.value:
            raise field_error(
                cls, address, "is `rootfs`, one image's filesystem: use `oci` or `oci-archive` "
                "for the index, or package one of its `images` with `output_format=\"rootfs\"`."
            )
        if value == OutputFormat.DOCKER_ARCHIVE.value:
            raise field_error(
                cls, address, "is `docker-archive`, which holds images of one platform only "
                "(`docker load` has no image index): use `oci` or `oci-archive` for the index, or "
                "package one of its `images` as a `docker-archive`."
            )
        return value


class OciImageIndexTarget(Target):
    alias = "oci_image_index"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        EnvironmentField,
        OciIndexImagesField,
        OciRepositoryField,
        OciIndexTagField,
        OciIndexOutputFormatField,
        OciImageOutputPathField,
        OciRegistriesField,
        OciImageTagsField,
        OciPublishFormatField,
    )
    help = help_text(
        """
        A multi-platform image: an OCI image index over `oci_image` targets of different
        platforms (e.g. `linux/amd64` and `linux/arm64`), from which each client takes the image
        of its own platform.

        `pants package` writes an OCI layout (or `oci-archive`) whose `index.json` names the
        index by its tag; the index lists each image's manifest with its `platform` (`os`,
        `architecture` and `variant` where set). The images' blobs are composed without a copy
        and stored once. `pants publish` pushes each image's blobs and manifest (by digest, no
        tag; layers gzip-compressed when an image's `compression` is `none`), then the index
        by digest, then its tags; blobs the registry has are skipped.
        """
    )


class OciBundleImagesField(SpecialCasedDependencies):
    alias = "images"
    required = True
    help = help_text(
        """
        The `oci_image` targets the archive holds, e.g. `[':api', ':worker', '//tools:cli']`:
        at least one, each of its own `repository:tag` (as its `repository` and `tag` fields, or
        its content-derived tag, give it), so that every image keeps its name when loaded. Each
        is built as its `docker-archive` (its own layers uncompressed, whatever its
        `output_format` and `compression` say); `manifest.json` lists them in this order.
        """
    )


class OciImageBundleTarget(Target):
    alias = "oci_image_bundle"
    core_fields = (
        *COMMON_TARGET_FIELDS, EnvironmentField, OciBundleImagesField, OciImageOutputPathField
    )
    help = help_text(
        """
        Several `oci_image` targets in one docker-archive (nixpkgs' `dockerTools.mergeImages`),
        e.g. to hand a set of images to an air-gapped machine as one file.

        `pants package` writes `dist/<path>/<name>.tar`: `podman load -i` and `docker load -i`
        load every image under its `repository:tag`, and skopeo reads each by that name
        (`docker-archive:<file>:<repository:tag>`) or by position (`docker-archive:<file>:@0`).
        A layer that several images share (the same content, e.g. a common `files` target or
        base) is stored once, and so is a config. The same images give the same bytes.
        """
    )


def target_types():
    return [OciImageIndexTarget, OciImageBundleTarget]
