"""`debian_packages`: locked Debian packages as store nodes."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from strata.core.debian.architectures import (
    ARCHITECTURES as DEBIAN_ARCHITECTURES,
    check_architecture,
)
from strata.target_types.fields import check_field, field_error


class DebianPackagesField(StringSequenceField):
    alias = "packages"
    required = True
    help = help_text(
        """
        Debian binary packages to install, by name (optionally with a version relation, as in
        `python3.11 (>= 3.11.2)`). Their Depends/Pre-Depends closure is resolved like apt does
        and pinned in `lockfile`; each package becomes a store node referencing its
        dependencies, so the most shared (libc6 and friends) sink to the lowest layers.
        """
    )


class DebianSuiteField(StringField):
    alias = "suite"
    default = "bookworm"
    help = "The Debian suite (codename) to resolve against."


class DebianArchitecturesField(StringSequenceField):
    alias = "architectures"
    default = ("amd64",)
    help = help_text(
        f"""
        The Debian architectures to resolve the packages for, by Debian's names:
        {", ".join(f"`{a}`" for a in DEBIAN_ARCHITECTURES)}. Each is resolved on its own
        (its `all` packages included) from the same snapshot of the mirror.

        `debian_packages`: the lockfile holds each one's packages, and an `oci_image` takes
        the packages of its own `architecture` (Go's names: `arm64` is `arm64`, `386` is
        `i386`, `ppc64le` is `ppc64el`, `mips64le` is `mips64el`, `arm` is `armhf`), which must
        be listed here. `debian_registry`: the architectures it serves images for.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if not value:
            raise field_error(cls, address, "needs at least one architecture.")
        for arch in value:
            check_field(cls, address, check_architecture, arch)
        return value


class DebianLockfileField(StringField):
    alias = "lockfile"
    default = "debian.lock.json"
    help = help_text(
        """
        The lockfile, relative to the BUILD file's directory: for each of `architectures`, the
        mirror's snapshot and per package its version, architecture, sha256, size, archive path
        (`pool/...`) and resolved dependencies, and no host names (the mirror is
        `[debian].mirror`). `pants debian-lock <target>` writes it.
        """
    )


class DebianPackagesTarget(Target):
    alias = "debian_packages"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        DebianPackagesField,
        DebianSuiteField,
        DebianArchitecturesField,
        DebianLockfileField,
    )
    help = help_text(
        """
        Debian packages as store nodes of an `oci_image`: each locked package's `data.tar` becomes
        layer content with modes preserved (setuid and all), ownership and mtimes normalised,
        paths moved under `/usr` (merged-/usr: the image gets `/bin`, `/sbin`, `/lib*` as
        symlinks into `/usr`), and its control fields in `/var/lib/dpkg/status.d/<package>` so
        SBOM and vulnerability scanners see it.

        Maintainer scripts are never run: no `postinst` (so no alternatives symlinks, no
        `ldconfig` cache, no generated config such as `/etc/passwd` — use `fake_nss` — or
        `/etc/ssl/certs/ca-certificates.crt` — use `ca_certificates`), and Essential packages
        are not pulled in implicitly.
        Each `.deb` is downloaded once by URL and sha256 and kept in the Pants cache.
        """
    )


def target_types():
    return [DebianPackagesTarget]
