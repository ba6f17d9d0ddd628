"""`nix_closure`: Nix store paths and their closure as store nodes."""

from __future__ import annotations

import re
from functools import partial
from typing import Iterable, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    InvalidFieldException,
    SingleSourceField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from strata.core.build.spec import nix_store_path
from strata.target_types.fields import CheckedStringSequenceField, field_error


class NixSourceField(SingleSourceField):
    alias = "source"
    required = False
    expected_file_extensions = (".nix",)
    help = help_text(
        """
        A Nix expression file whose `attributes` are built with `nix-build`. The files of the
        `dependencies` (`file` targets: the `.nix` files it imports, builder scripts) are
        beside it at build time, at their paths in the repository.
        """
    )


class NixAttributesField(StringSequenceField):
    alias = "attributes"
    help = help_text(
        """
        The attribute paths of `source` to build (`nix-build <source> -A <attribute>`), e.g.
        `['hello', 'pkgs.curl']`. Their outputs are the closure's top-level paths.
        """
    )


class NixStorePathsField(CheckedStringSequenceField):
    alias = "store_paths"
    core_check = staticmethod(partial(nix_store_path, what="store path"))
    help = help_text(
        """
        Store paths already in this machine's Nix store, `/nix/store/<hash>-<name>`, instead of
        `source` and `attributes`: e.g. the output of a Nix build run outside Pants. They are
        the closure's top-level paths.
        """
    )


class NixClosureDependenciesField(Dependencies):
    help = help_text(
        """
        `file` targets that `source` reads (imported `.nix` files, builder scripts): they are
        put beside it when Nix evaluates it, so a change to any of them rebuilds the closure.
        Their own content is not in the image.
        """
    )


class NixCopyToRootField(BoolField):
    alias = "copy_to_root"
    default = False
    help = help_text(
        """
        Link the top-level paths' `paths_to_link` directories into the image's root, as
        dockerTools' `copyToRoot` does with a `buildEnv`/`symlinkJoin`: every file under
        `/nix/store/<hash>-hello/bin/` gets a symlink at `/bin/<file>` pointing at it, in real
        directories, so `entrypoint=['/bin/hello']` works without naming a hash. The links are
        in the image's customisation layer (under `/usr` when the image has Debian packages,
        whose `/bin`, `/sbin` and `/lib*` are symlinks into `/usr`). Two top-level paths with a
        file at the same place are an error.
        """
    )


class NixPathsToLinkField(StringSequenceField):
    alias = "paths_to_link"
    default = ("bin", "lib", "etc", "share")
    help = help_text(
        """
        The top-level directories of the closure's top-level paths that `copy_to_root` links
        into the image's root (buildEnv's `pathsToLink`).
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for name in value or ():
            if not re.fullmatch(r"[^/]+", name) or name in (".", ".."):
                raise field_error(cls, address, f"holds {name!r}: each must be a directory "
                                   "name, such as 'bin'.")
        return value


class NixClosureTarget(Target):
    alias = "nix_closure"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        NixSourceField,
        NixAttributesField,
        NixStorePathsField,
        NixClosureDependenciesField,
        NixCopyToRootField,
        NixPathsToLinkField,
    )
    help = help_text(
        """
        Nix store paths and their closure as store nodes of an `oci_image`: each store path is
        one node, at its own `/nix/store/<hash>-<name>` in the image, referencing the paths Nix
        says it references (`nix path-info`), so popularity layering works over the Nix graph
        and the Pants graph together. An image of Nix paths alone is layered as nixpkgs'
        `buildLayeredImage` layers it for the same `max_layers`.

        Either build `attributes` of a `source` file with `nix-build`, or take existing
        `store_paths`.

        What is read from outside the sandbox, and why it is sound:
        building runs this machine's `nix-build` (see `[nix].search_paths`), which writes to
        `/nix/store` through the Nix daemon or as root, and may read whatever the expression
        reads (`<nixpkgs>`, fetchers): that Process is cached on the `.nix` sources, the
        attributes, `[nix].settings` and Nix's version, so an expression must name everything
        else by hash (as pinned nixpkgs and fixed-output fetchers do). Each store path's
        content is then copied (`nix-store --dump`, the NAR, checked against Nix's NAR hash)
        by a Process keyed on the store path alone: a store path is immutable and its name
        carries the hash of how it was built, so the copy is cached and shared through a
        remote cache like any layer. A machine whose caches hold those Processes builds the
        image with an empty `/nix/store`.
        """
    )

    def validate(self) -> None:
        source = self[NixSourceField].value
        attributes = self[NixAttributesField].value
        store_paths = self[NixStorePathsField].value
        if bool(source) == bool(store_paths):
            raise InvalidFieldException(
                f"The nix_closure {self.address} needs either `source` and `attributes` "
                "(what nix-build builds) or `store_paths` (existing store paths), not "
                f"{'both' if source else 'neither'}."
            )
        if bool(source) != bool(attributes):
            raise InvalidFieldException(
                f"The `attributes` field of nix_closure {self.address} is needed with "
                "`source`, and only there: the attribute paths to build."
            )


def target_types():
    return [NixClosureTarget]
