"""The `[nix]` options: how `nix_closure` targets run Nix."""

from __future__ import annotations

from pants.option.option_types import StrListOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text


class NixSubsystem(Subsystem):
    options_scope = "nix"
    help = "How Strata runs Nix for `nix_closure` targets."

    search_paths = StrListOption(
        default=["/usr/bin", "/bin", "/usr/local/bin", "/nix/var/nix/profiles/default/bin"],
        help=help_text(
            """
            Where to look for Nix's `nix-build`; `nix` and `nix-store` are taken from the same
            directory. Its path and version are part of the cache key of every `nix-build`.
            """
        ),
        advanced=True,
    )

    settings = StrListOption(
        default=[],
        help=help_text(
            """
            Nix settings for `nix-build` and `nix path-info`, as `name=value`, each passed as
            `--option name value`: e.g. `["sandbox=false", "substituters="]` to build offline
            without build users. They are part of the `nix-build` Process's cache key.
            """
        ),
    )
