"""The `[debian]` options: where `debian_packages` targets get their packages."""

from __future__ import annotations

from pants.option.option_types import StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text


class DebianSubsystem(Subsystem):
    options_scope = "debian"
    help = "Where Strata gets Debian packages (`debian_packages` targets)."

    mirror = StrOption(
        default="",
        help=help_text(
            """
            The Debian archive's base URL. Empty: the first Debian source in this machine's apt
            configuration (`/etc/apt/sources.list.d/*.sources`, then `sources.list`). Lockfiles
            hold only archive paths, so a different mirror gives the same packages.
            """
        ),
    )

    keyring = StrOption(
        default="/usr/share/keyrings/debian-archive-keyring.gpg",
        help="The keyring `InRelease` signatures are verified against (with `gpgv`).",
        advanced=True,
    )
