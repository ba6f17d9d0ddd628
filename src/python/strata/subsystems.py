"""The `[strata]` options."""

from __future__ import annotations

import math
from typing import Tuple

from pants.option.errors import OptionsError
from pants.option.option_types import (
    BoolOption,
    FloatOption,
    IntOption,
    ShellStrListOption,
    StrListOption,
    StrOption,
)
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

from strata.core.registry.stall import StallRule


class StrataSubsystem(Subsystem):
    options_scope = "strata"
    help = "Options for Strata, the layered OCI/Docker image builder."

    python_search_paths = StrListOption(
        default=["/usr/bin", "/bin", "/usr/local/bin"],
        help=help_text(
            """
            Where to look for the CPython (3.9 or newer, `python3`) that runs Strata's image tool
            inside build sandboxes. The tool needs only the standard library, and its output does
            not depend on the interpreter's version. Keep this a fixed system path: the
            interpreter's path and its `sys.version` are part of every layer process's cache
            key, so a per-user path stops machines from sharing cached layers. Under remote
            execution it is looked up on the workers.
            """
        ),
        advanced=True,
    )

    zstd_search_paths = StrListOption(
        default=["/usr/bin", "/bin", "/usr/local/bin"],
        help="Where to look for the `zstd` binary, used for `compression='zstd'`.",
        advanced=True,
    )

    command_search_paths = StrListOption(
        default=["/usr/bin", "/bin", "/usr/sbin", "/sbin"],
        help=help_text(
            """
            Where to look for the programs an `oci_image`'s `extra_commands` and
            `fake_root_commands` run (its `command_tools`) and those that run them (`bwrap`,
            `env`, `sh`; `fakeroot`, `getopt`, `sed`, `cut`, `sleep`).
            """
        ),
        advanced=True,
    )

    remote_cache_speculation_delay = IntOption(
        default=1000,
        help=help_text(
            """
            Milliseconds a layer or image process waits for a remote cache lookup before also
            starting locally. Layers are often large and slow to write, so waiting for a remote
            hit is usually cheaper than racing it. The processes that read this machine's Nix
            store (a `nix_closure`'s) wait too: on a machine without its store paths they can
            only fail.
            """
        ),
        advanced=True,
    )

    registry_stall_bytes = IntOption(
        default=StallRule().min_bytes,
        help=help_text(
            """
            With `registry_stall_seconds`, when a registry has stalled: a pull (`oci_pull`) or
            a push (`pants publish`) that receives fewer than this many bytes of a response
            while waiting `registry_stall_seconds` for them (counted afresh after each such
            amount) gives up on that request and retries it with backoff, as after a dropped
            connection, then fails naming the registry, the blob or manifest and this rule.
            A rate, not a total time: a big blob may take hours if it keeps coming.
            """
        ),
        advanced=True,
    )

    registry_stall_seconds = FloatOption(
        default=StallRule().seconds,
        help="How long a pull or push waits for `registry_stall_bytes` bytes of a response.",
        advanced=True,
    )

    def registry_stall_args(self) -> Tuple[str, ...]:
        """The stall rule as the core's `pull` and `push` take it."""
        if self.registry_stall_bytes < 1:
            raise OptionsError(
                f"[strata].registry_stall_bytes must be positive: {self.registry_stall_bytes}"
            )
        if not (0 < self.registry_stall_seconds and math.isfinite(self.registry_stall_seconds)):
            raise OptionsError(
                "[strata].registry_stall_seconds must be a positive number of seconds: "
                f"{self.registry_stall_seconds}"
            )
        return (
            *("--stall-bytes", str(self.registry_stall_bytes)),
            *("--stall-seconds", repr(float(self.registry_stall_seconds))),
        )

    credential_helper_search_paths = StrListOption(
        default=["<PATH>"],
        help=help_text(
            """
            The `PATH` of a pull (`oci_pull`) and a push (`pants publish`), where they find the
            docker credential helpers (`docker-credential-<name>`) that the docker config.json
            names in `credHelpers` or `credsStore`, and where those find what they run. `<PATH>`
            is the `PATH` `pants` was started with. A pull is a cached process, so this path is
            part of its cache key (a path, never a secret); set a fixed list, e.g.
            `["/usr/local/bin", "/usr/bin", "/bin"]`, to share cached pulls between machines
            and users whose `PATH` differs.
            """
        ),
        advanced=True,
    )

    blob_store = StrOption(
        default="",
        help=help_text(
            """
            The directory of Strata's blob store, where layer tars and image archives are kept
            outside Pants' store (which copies and fsyncs every Process output): content
            addressed (`sha256/<hex>`), never modified, shared safely by any number of
            checkouts and runs. Empty (the default): the Pants named cache `strata_blobs`, in
            `[GLOBAL].named_caches_dir`. Set, it gets a named cache of its own, linked to this
            directory. Pants caches each blob's descriptor; a blob missing or wrong here (a
            cleaned directory, a descriptor from a remote cache) is put back in the next run
            that needs it, from Pants' caches or by writing it again. Safe to delete.
            """
        ),
        advanced=True,
    )

    dist = StrOption(
        default="link",
        help=help_text(
            """
            How `pants package` writes an `oci_image` to dist/: `link`, an OCI layout's
            index.json, manifest and config as files and its layers as symlinks into the blob
            store, and an archive as a symlink to its blob there (written once, in one pass);
            or `copy`, real files, for outputs that leave the machine (`cp -r` of a linked
            layout copies the blobs too, `cp -a`/`rsync -l` keep the links, which dangle
            elsewhere). Both give the same bytes and digests.
            """
        ),
    )

    def links_dist(self) -> bool:
        """Whether `dist` is `link` (else `copy`)."""
        if self.dist not in ("link", "copy"):
            raise OptionsError(f"[strata].dist must be `link` or `copy`: {self.dist!r}")
        return self.dist == "link"

    loader = StrOption(
        default="auto",
        help=help_text(
            """
            Where `pants run` on an `oci_image` loads the image, and which runtime then runs it:
            `podman` (its storage, through `skopeo copy` of an OCI layout, which skips the
            layers storage already holds; through `podman load` of the whole archive when
            skopeo is not installed), `docker` (`docker load` of the archive, streamed), `auto`
            (podman if installed, else docker, else standard output), or `stdout` (the
            docker-archive bytes, for piping anywhere; nothing runs).
            """
        ),
    )

    load_only = BoolOption(
        default=False,
        help=help_text(
            """
            `pants run` on an `oci_image` only loads the image (as `[strata].loader` says) and
            prints its name, without running a container.
            """
        ),
    )

    run_args = ShellStrListOption(
        default=[],
        help=help_text(
            """
            Options for the `podman run` or `docker run` of `pants run` on an `oci_image`, as
            `[docker].run_args`: e.g. `--network=none` or `-p 127.0.0.1:8080:8080`. The container
            always runs with `--rm`, and with `--interactive --tty` when standard input and
            output are a terminal; the arguments after `--` go to the container.
            """
        ),
    )
