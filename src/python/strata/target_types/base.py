"""Base images: `oci_image_archive` (an archive in the repository) and `oci_pull` (an image in a
registry, pinned by digest)."""

from __future__ import annotations

from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    SingleSourceField,
    StringField,
    Target,
)
from pants.util.strutil import help_text

from strata.core.oci.image import validate_repository
from strata.target_types.fields import CheckedStringField, PatternStringField


class OciArchiveSourceField(SingleSourceField):
    help = help_text(
        """
        An image archive in the repository: a docker-archive (`docker save`, `podman save`) or an
        oci-archive tarball.
        """
    )


class OciArchiveRefField(StringField):
    alias = "ref"
    help = help_text(
        """
        Which image of the archive to use, when it holds several: its
        `org.opencontainers.image.ref.name` or one of its `RepoTags`.
        """
    )


class OciPlatformField(PatternStringField):
    alias = "platform"
    pattern = r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?"
    mismatch = "must look like `linux/amd64` or `linux/arm/v7`, not {value!r}."
    help = help_text(
        """
        `os/arch[/variant]`: the platform of the image to use. Defaults to the platform of the
        `oci_image` built on it (its `os`, `architecture` and `variant`), so that each image of
        an `oci_image_index` gets the base's image for its own platform. It picks the image from a
        multi-platform index (or an archive of several images) by the OCI image-index rules with
        containerd's normalisation (`linux/arm64` is `linux/arm64/v8`, `linux/amd64` is
        `linux/amd64/v1`); a single image must be of it too. Without a variant it takes the
        image without one, else the only variant there: `linux/arm` before arm/v6 and arm/v7 is
        ambiguous. When it matches no image, or images of several platforms, the error lists
        the platforms on offer.
        """
    )


class OciImageArchiveTarget(Target):
    alias = "oci_image_archive"
    core_fields = (*COMMON_TARGET_FIELDS, OciArchiveSourceField, OciArchiveRefField, OciPlatformField)
    help = help_text(
        """
        An image kept in the repository as an archive, for use as an `oci_image`'s `base`.
        Its blobs are checked against their digests when it is imported.
        """
    )


class OciPullRegistryField(StringField):
    alias = "registry"
    required = True
    help = "The registry, as `host[:port]`. Plain HTTP is used for localhost and 127.0.0.1."


class OciPullRepositoryField(CheckedStringField):
    alias = "repository"
    core_check = staticmethod(validate_repository)
    required = True
    help = "The repository in the registry, e.g. `library/debian`."


class OciPullDigestField(PatternStringField):
    alias = "digest"
    required = True
    pattern = r"sha256:[0-9a-f]{64}"
    mismatch = (
        "must be a `sha256:<64 hex>` digest, not {value!r}: pulls are pinned by digest so builds "
        "stay reproducible. To find it: `skopeo inspect --raw docker://REGISTRY/REPO:TAG | "
        "sha256sum`, or the `Digest` of `skopeo inspect`."
    )
    help = help_text(
        """
        The `sha256:...` digest of the image manifest or of a multi-platform index. Pulls are
        pinned by digest so builds are reproducible: a tag can move, a digest cannot.
        """
    )


class OciPullTagField(StringField):
    alias = "tag"
    help = "The tag the digest was taken from: informational only, never used to pull."


class OciPullInsecureField(BoolField):
    alias = "insecure"
    default = False
    help = "Use plain HTTP for this registry even though it is not localhost."


class OciPullTarget(Target):
    alias = "oci_pull"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciPullRegistryField,
        OciPullRepositoryField,
        OciPullDigestField,
        OciPullTagField,
        OciPlatformField,
        OciPullInsecureField,
    )
    help = help_text(
        """
        An image in a registry, pinned by digest, for use as an `oci_image`'s `base` (like
        nixpkgs' `pullImage`). It is fetched by Strata's own registry client in a cached process,
        every manifest and blob verified against its digest, so each blob is fetched once.
        Credentials come from the docker `config.json` (`$DOCKER_CONFIG` or `~/.docker`).
        """
    )


def target_types():
    return [OciImageArchiveTarget, OciPullTarget]
