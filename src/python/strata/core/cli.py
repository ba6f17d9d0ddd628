"""`python -m strata.core SUBCOMMAND [--option value ...]`: the one command line of the core.

One table names each subcommand's function and its options, as its usage line writes them;
strata.core.build.program parses them and reports failures, one line each, with the exit codes
of `strata.core.errors`. A subcommand's module is imported only when it runs. A layer Process
runs `python -m strata.core.build` instead, the `layer` row's very command, without this
module: its sandbox holds only the layer's code.
"""

from __future__ import annotations  # no `typing` import: start-up time is per Process

import sys

from strata.core.build.program import LAYER, Command, run
from strata.core.errors import UsageError

COMMANDS = {
    "layer": LAYER,
    "assemble": Command(
        "strata.core.oci.formats:assemble_command",
        "--spec FILE [--out PATH] [--metadata FILE] [--config-out FILE]",
    ),
    "stream": Command(
        "strata.core.oci.formats:stream_command", "--spec FILE [--blob-store DIR]"
    ),
    "blob-put": Command(
        "strata.core.build.blobstore:put_command",
        "--blob-store DIR --file FILE --digest DIGEST --size N",
    ),
    "layout-archive": Command(
        "strata.core.oci.oci_archive:layout_archive_command", "--layout DIR --out FILE"
    ),
    "bundle": Command("strata.core.oci.bundle:bundle_command", "--out FILE [--spec FILE]..."),
    "import-base": Command(
        "strata.core.oci.baseimage:import_base_command",
        "--archive PATH --out DIR [--ref REF] [--platform OS/ARCH] [--zstd PATH]",
    ),
    "ca-bundle": Command(
        "strata.core.debian.rootfs:ca_bundle_command", "--deb FILE --out FILE [--zstd PATH]"
    ),
    "debian-lock": Command(
        "strata.core.debian.lock:debian_lock_command",
        "--mirror URL --suite SUITE --out FILE [--arch ARCH]... [--package NAME]... "
        "[--keyring FILE] [--gpgv PATH]",
        logs=True,
    ),
    "pull": Command(
        "strata.core.registry.pull:pull_command",
        "--registry HOST --repository REPO --digest DIGEST --platform OS/ARCH --out DIR "
        "[--sbom-out DIR] [--insecure] [--stall-bytes N] [--stall-seconds SECONDS]",
        logs=True,
    ),
    "manifest": Command(
        "strata.core.oci.push_manifest:manifest_command", "--layout DIR --out FILE [--docker]"
    ),
    "push": Command(
        "strata.core.registry.push:push_command",
        "--layout DIR --manifest FILE --repository REPO [--registry HOST]... [--tag TAG]... "
        "[--mount-from REPO] [--attach FILE]... [--insecure] [--credentials-file FILE] "
        "[--stall-bytes N] [--stall-seconds SECONDS]",
        logs=True,
    ),
    "describe": Command(
        "strata.core.sbom.describe:describe_command",
        "--out FILE [--deb FILE] [--wheel FILE] [--tree DIR] [--name NAME] [--dest PATH]",
    ),
    "sbom": Command(
        "strata.core.sbom.documents:sbom_command", "--spec FILE --spdx FILE --cyclonedx FILE"
    ),
    "base-paths": Command(
        "strata.core.oci.rootfs:base_paths_command", "--base DIR --out FILE [--zstd PATH]"
    ),
    "nix-closure": Command(
        "strata.core.nix.closure:nix_closure_command",
        "--nix-bin DIR --out FILE [--option NAME VALUE]... [--file FILE] [--attr ATTR]... "
        "[--store-path PATH]...",
    ),
    "nix-links": Command(
        "strata.core.nix.links:nix_links_command", "--closure FILE --out FILE [--link DIR]..."
    ),
    "nix-db": Command(
        "strata.core.nix.db:nix_db_command",
        "--registration-time SECONDS --out DIR [--closure FILE]...",
    ),
    "debian-registry": Command(
        "strata.core.debian_registry.service:serve_command",
        "--config FILE --listen HOST:PORT --cache-dir DIR [--mirror URL] [--jobs N] [--refresh]",
        logs=True,
    ),
    "command-files": Command(
        "strata.core.command_files:command_files_command",
        "[--program PATH]... [--host-program PATH]... [--fakeroot PATH]",
    ),
}
USAGE = f"usage: python -m strata.core {{{','.join(COMMANDS)}}} [--option value ...]"


def main(argv: list | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    name, rest = (args[0], args[1:]) if args else ("", [])
    command = COMMANDS.get(name)
    if command is None:
        print(USAGE, file=sys.stderr)
        return UsageError.exit_code
    return run(f"strata.core {name}", command, rest)
