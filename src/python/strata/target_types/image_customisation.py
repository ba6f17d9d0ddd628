"""The `oci_image` fields of its customisation layer, the top layer holding what the image target
itself adds: symlinks, directories, generated files and build-time commands."""

from __future__ import annotations

import re
from typing import Dict, Iterable, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.target import (
    BoolField,
    DictStringToStringField,
    StringField,
    StringSequenceField,
)
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from strata.core.build.commands import OUTPUT_TAIL
from strata.target_types.fields import PositiveIntField, check_image_path, field_error


class OciSymlinksField(DictStringToStringField):
    alias = "symlinks"
    help = help_text(
        """
        Symlinks the image adds in its customisation layer: `{'/bin/sh': '/bin/busybox'}`
        (absolute link path to target). The customisation layer is the top layer, holding what
        the image target itself adds. A symlink may not replace what a dependency places at its
        path, or at a path below it: that is an error naming the path and the dependency.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, str]], address: Address
    ) -> Optional[FrozenDict[str, str]]:
        value = super().compute_value(raw_value, address)
        for path in value or {}:
            check_image_path(cls, address, path)
        return value


class OciDirectoriesField(DictStringToStringField):
    alias = "directories"
    help = help_text(
        """
        Empty directories the image adds in its customisation layer, with octal modes:
        `{'/tmp': '1777', '/var/empty': '0755'}`. A directory a dependency also has gets this
        mode; one where a dependency places a file or symlink is an error.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, str]], address: Address
    ) -> Optional[FrozenDict[str, str]]:
        value = super().compute_value(raw_value, address)
        for path, mode in (value or {}).items():
            check_image_path(cls, address, path)
            if not re.fullmatch(r"[0-7]{3,4}", mode):
                raise field_error(
                    cls, address, f"has an invalid mode {mode!r} for {path!r}: expected 3 or 4 "
                    "octal digits such as '1777'."
                )
        return value


class OciFakeNssField(BoolField):
    alias = "fake_nss"
    default = False
    help = help_text(
        """
        Add `/etc/passwd` and `/etc/group` with root and nobody (65534) and an
        `/etc/nsswitch.conf`, so that `user="nobody"` and name lookups work without base-passwd.
        """
    )


class OciCaCertificatesField(BoolField):
    alias = "ca_certificates"
    default = False
    help = help_text(
        """
        Add `/etc/ssl/certs/ca-certificates.crt`, generated at build time from the certificates
        of the `ca-certificates` Debian package, which must be in the image's `debian_packages`
        (its postinst, which would write the bundle, is never run).
        """
    )


class OciIncludeNixDbField(BoolField):
    alias = "include_nix_db"
    default = False
    help = help_text(
        """
        Register the image's Nix store paths (those of its `nix_closure` dependencies) in a
        Nix database at `/nix/var/nix/db`, as dockerTools' `includeNixDB` does, so that Nix in
        a container knows them: `nix-store --verify --check-contents` passes there, and
        `nix-store -q --references` answers. Each top-level path of each `nix_closure` also
        gets a GC root, `/nix/var/nix/gcroots/docker/<name>`. The database is in the
        customisation layer; its registration times are the image's `mtime`, so the same
        closure gives the same bytes.
        """
    )


_SANDBOX_HELP = """
    The script runs as `sh -eu` (a failing command fails the build) in a directory holding
    the image's customisation layer (its `symlinks`, `directories`, `fake_nss` and
    `ca_certificates` files, the merged-/usr links; not its dependencies' files), in a
    bubblewrap sandbox: its own user (uid 0 without capabilities), processes, network (an
    empty loopback), IPC and host name, and a file system holding only that directory (all it
    may write), its `command_tools` at `/tools` and what they and their runners need (shared
    libraries, interpreters, fakeroot's), read-only and in the layer's cache key, and a
    minimal `/dev`: no other host file, no `/proc`, no `/tmp`. Its environment is only
    `PATH=/tools`, `HOME=/nonexistent`, `LC_ALL=C`, `TZ=UTC` and `SOURCE_DATE_EPOCH` (the
    layers' mtime). It may run for `command_timeout` seconds; what it starts in the
    background ends with it. Use relative paths. What the directory holds afterwards (files,
    directories, symlinks) becomes the customisation layer, with the layers' timestamps.
    """


class OciExtraCommandsField(StringField):
    alias = "extra_commands"
    help = help_text(
        """
        A shell script run at build time over the image's customisation layer, like
        dockerTools' `extraCommands`: `'mkdir -p var/cache/app && ln -s ../run var/run'`. The
        modes it leaves are kept; owners are the image's `uid`/`gid` (see
        `fake_root_commands` to set owners). Runs before `fake_root_commands`.
        """
    ) + "\n\n" + help_text(_SANDBOX_HELP)


class OciFakeRootCommandsField(StringField):
    alias = "fake_root_commands"
    help = help_text(
        """
        A shell script run at build time under `fakeroot` over the image's customisation
        layer, like dockerTools' `fakeRootCommands`: the owners and modes it sets (`chown
        1000:1000 var/log/app`, `chmod 2775 var/log/app`) are written into the layer, with
        the user and group names of the layer's own `etc/passwd` and `etc/group` (root for
        0; numeric only for ids they lack). Everything it does not chown or chmod keeps its
        mode and the image's `uid`/`gid`.
        """
    ) + "\n\n" + help_text(_SANDBOX_HELP)


class OciCommandToolsField(StringSequenceField):
    alias = "command_tools"
    default = (
        "sh", "[", "basename", "cat", "chgrp", "chmod", "chown", "cp", "cut", "dirname",
        "echo", "false", "find", "grep", "head", "id", "install", "ln", "ls", "mkdir", "mv",
        "printf", "readlink", "rm", "rmdir", "sed", "sort", "stat", "tail", "tee", "test",
        "touch", "tr", "true", "uniq", "wc", "xargs",
    )
    help = help_text(
        """
        The host programs `extra_commands` and `fake_root_commands` may run: each name is
        looked up in `[strata].command_search_paths` (missing: an error), and its content and
        its shared libraries' are part of the layer's cache key. Their sandbox holds these
        alone (with the libraries, and the `#!` interpreter of a script), so a script cannot
        depend on anything else the machine has installed; a program that needs data files
        of its own (Python's or Perl's modules) does not run there.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for name in value or ():
            if not name or "/" in name:
                raise field_error(
                    cls, address, f"has {name!r}: expected a program's name such as 'chown', "
                    "without a directory."
                )
        return value


class OciCommandTimeoutField(PositiveIntField):
    alias = "command_timeout"
    default = 600
    help = help_text(
        f"""
        The seconds `extra_commands` and `fake_root_commands` may each run. A script still
        running then is stopped, with everything it started, and the build fails naming this
        field; so does a failing script, with the last {OUTPUT_TAIL >> 10} KiB of its output.
        """
    )
