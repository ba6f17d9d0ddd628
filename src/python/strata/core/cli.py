"""`python -m strata.core SUBCOMMAND [--option value ...]`: the one command line of the core.

One table names each subcommand's function and its options, as its usage line writes them. Arguments are parsed here, by
hand: importing argparse (re, enum, gettext) takes longer than writing a small layer, and every
layer is a Process. A subcommand's module is imported only when it runs, so a layer Process
loads (and its sandbox needs) only `strata.core.build`. Failures are reported here, one line
each, with the exit codes of `strata.core.errors`.
"""

from __future__ import annotations  # no `typing` import: start-up time is per Process

import importlib
import sys

from strata.core.errors import Interrupted, StrataError, UsageError


class Command:
    """A subcommand: `module:function` runs it, `usage` is its options as its usage line writes
    them (`--name VALUE` required, `[--name VALUE]` optional, `[--name VALUE]...` repeated, a
    list, `[--name]` a flag); `logs` sends its warnings (a registry's retries) to stderr."""

    __slots__ = ("target", "usage", "logs")

    def __init__(self, target: str, usage: str, logs: bool = False) -> None:
        self.target, self.usage, self.logs = target, usage, logs

    def options(self) -> dict:
        """{name: "required" | "optional" | "repeated" | "flag"}, read from `usage`."""
        return {name: kind for name, (kind, _) in self.arities().items()}

    def arities(self) -> dict:
        """{name: (kind, how many values it takes)}: an option of several values is written
        with them all, `[--option NAME VALUE]...`, and is given as many arguments each time."""
        arities, words = {}, iter(self.usage.split())
        for word in words:
            name = word.strip("[]")[2:]
            if word.startswith("[") and word.endswith("]"):
                arities[name] = ("flag", 0)
                continue
            values = [next(words)]
            while word.startswith("[") and not values[-1].endswith(("]", "]...")):
                values.append(next(words))
            arities[name] = (
                "repeated" if values[-1].endswith("]...")
                else "optional" if word.startswith("[")
                else "required",
                len(values),
            )
        return arities


COMMANDS = {
    "layer": Command(
        "strata.core.build.layer:layer_command", "--spec FILE --out DIR [--paths FILE]"
    ),
    "assemble": Command(
        "strata.core.oci.formats:assemble_command",
        "--spec FILE --out PATH [--metadata FILE] [--config-out FILE]",
    ),
    "stream": Command("strata.core.oci.formats:stream_command", "--spec FILE"),
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
    "command-files": Command(
        "strata.core.command_files:command_files_command",
        "[--program PATH]... [--host-program PATH]... [--fakeroot PATH]",
    ),
}
USAGE = f"usage: python -m strata.core {{{','.join(COMMANDS)}}} [--option value ...]"


class Options:
    """Parsed options as attributes: `--mount-from` is `options.mount_from`."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update({name.replace("-", "_"): value for name, value in values.items()})


def parse(command: Command, argv: list) -> Options:
    """`--name value` or `--name=value` for each option; a flag takes no value, an option of
    several values (`--option NAME VALUE`) takes them as the next arguments."""
    arities = command.arities()
    values: dict = {
        name: [] if kind == "repeated" else False if kind == "flag" else None
        for name, (kind, _) in arities.items()
    }
    args = iter(argv)
    for arg in args:
        name, equals, value = arg[2:].partition("=")
        if not arg.startswith("--") or name not in values:
            raise UsageError(f"unrecognized argument: {arg}")
        kind, count = arities[name]
        if kind == "flag":
            if equals:
                raise UsageError(f"argument --{name}: takes no value")
            values[name] = True
            continue
        if count > 1:
            value = tuple(next(args, None) for _ in range(count))
            if equals or None in value:
                raise UsageError(f"argument --{name}: expected {count} arguments")
        elif not equals:
            value = next(args, None)
            if value is None:
                raise UsageError(f"argument --{name}: expected one argument")
        if kind == "repeated":
            values[name].append(value)
        elif values[name] is not None:
            raise UsageError(f"argument --{name}: given twice")
        else:
            values[name] = value
    missing = [f"--{name}" for name, (kind, _) in arities.items()
               if kind == "required" and values[name] is None]
    if missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)}")
    return Options(values)


def main(argv: list | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    name, rest = (args[0], args[1:]) if args else ("", [])
    command = COMMANDS.get(name)
    if command is None:
        print(USAGE, file=sys.stderr)
        return UsageError.exit_code
    prog = f"strata.core {name}"
    try:
        options = parse(command, rest)
        if command.logs:
            import logging

            logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=f"{prog}: %(message)s")
        module, function = command.target.split(":")
        run = getattr(importlib.import_module(module), function)
        try:
            run(options)
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
    except (StrataError, ValueError, OSError) as error:
        return report(prog, error)
    return 0


def report(prog: str, error: BaseException) -> int:
    """One line on stderr (and a StrataError's details as JSON on stdout); the exit code."""
    import json

    details = error.details() if isinstance(error, StrataError) else None
    if details is not None:
        sys.stdout.write(json.dumps(details, sort_keys=True) + "\n")
    kind = "interrupted" if isinstance(error, Interrupted) else "error"
    message = " ".join(str(error).split())
    sys.stderr.write(f"{prog}: {kind}: {message}\n")
    return error.exit_code if isinstance(error, StrataError) else 1
