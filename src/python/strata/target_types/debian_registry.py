"""`debian_registry`: a registry server that builds images of Debian packages as they are pulled,
packaged as a PEX."""

from __future__ import annotations

from pants.core.goals.package import OutputPathField
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    DictStringToStringSequenceField,
    InvalidFieldException,
    StringField,
    Target,
)
from pants.util.strutil import help_text

from strata.core.debian.index import DEFAULT_KEYRING
from strata.core.debian_registry.config import COMPRESSIONS, RegistryConfig
from strata.target_types.debian import DebianArchitecturesField, DebianSuiteField
from strata.target_types.image import OciCreatedField, OciMaxLayersField


class DebianRegistryMetaPackagesField(DictStringToStringSequenceField):
    alias = "meta_packages"
    help = help_text(
        """
        Names that stand for several Debian packages in an image name, as in
        `{"shell": ["bash", "coreutils"]}`: pulling `shell/curl` gives bash, coreutils and curl.
        A name is lowercase letters and digits, and may not be one of `architectures`; the
        packages are Debian package names.
        """
    )


class DebianRegistryMaxLayersField(OciMaxLayersField):
    help = help_text(
        """
        The most layers an image the registry serves may have, the top one (merged-/usr
        symlinks) included: as for an `oci_image` of one `debian_packages` target, the packages
        most depended on within the image get a layer each, and when there are more packages
        than layers, the least popular share the last one. `max_layers=1` puts everything in
        one layer.
        """
    )


class DebianRegistryCompressionField(StringField):
    alias = "compression"
    default = "gzip"
    valid_choices = COMPRESSIONS
    help = help_text(
        """
        How the served layers are compressed: `gzip` (what every client reads) or `none`. Always
        deterministic, so the same packages give the same layer digests on every pull.
        """
    )


class DebianRegistryCreatedField(OciCreatedField):
    help = help_text(
        """
        The served images' creation time in their configs and history, and their files' mtime
        (RFC 3339, from 1970 to 2242-03-16T12:56:31Z). Not `"now"`: the registry serves the
        same image under a name after every restart.
        """
    )


class DebianRegistryOutputPathField(OutputPathField):
    pass


class DebianRegistryTarget(Target):
    alias = "debian_registry"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        DebianSuiteField,
        DebianArchitecturesField,
        DebianRegistryMetaPackagesField,
        DebianRegistryMaxLayersField,
        DebianRegistryCompressionField,
        DebianRegistryCreatedField,
        DebianRegistryOutputPathField,
    )
    help = help_text(
        """
        A container registry, in the manner of Nixery, whose images are built from Debian
        packages when they are pulled: the image name lists the packages (and
        `meta_packages`), and the registry resolves them in `suite` for each of
        `architectures`, then serves a layered, reproducible image (an image index when there
        are several architectures).

        `pants package` writes the server as one executable PEX (`dist/<path>/<name>.pex`,
        which runs with the machine's `python3`, CPython 3.9 or newer, and needs no Pants),
        holding Strata's core and this target's settings, with `[debian].mirror` and
        `[debian].keyring` as they are when it is packaged. Start it with
        `dist/<path>/<name>.pex --listen HOST:PORT --cache-dir DIR [--mirror URL] [--jobs N]
        [--refresh]`; it serves in the foreground until SIGINT or SIGTERM.

        `pants run` starts it too, but only without pantsd (`pants --concurrent run ...`):
        pantsd serves one command at a time, so a server run through it would block every
        other `pants` command in the repository while it serves.
        """
    )

    def registry_config(self, keyring: str = DEFAULT_KEYRING, mirror: str = "") -> RegistryConfig:
        """What the packaged server reads: this target's settings, and `[debian]`'s."""
        return RegistryConfig(
            target=str(self.address),
            suite=self[DebianSuiteField].value,
            architectures=self[DebianArchitecturesField].value,
            meta_packages=dict(self[DebianRegistryMetaPackagesField].value or {}),
            max_layers=self[DebianRegistryMaxLayersField].value,
            compression=self[DebianRegistryCompressionField].value,
            created=self[DebianRegistryCreatedField].value,
            keyring=keyring,
            mirror=mirror,
        )

    def validate(self) -> None:
        """The settings checked as the server checks them (`RegistryConfig.check`, whose every
        refusal starts with the setting, the field's alias): what the fields cannot check one
        by one (meta-package names that are architectures, a repeated architecture) and what
        only a registry refuses (`created="now"`), as the BUILD file is read."""
        try:
            self.registry_config().check()
        except ValueError as e:
            raise InvalidFieldException(
                f"The debian_registry {self.address} is invalid: {e}"
            ) from e


def target_types():
    return [DebianRegistryTarget]
