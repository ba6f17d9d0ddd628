"""`python -m strata.core SUBCOMMAND [--option value ...]`: the one command line of the core.

One table names each subcommand's module, function and options. Arguments are parsed here, by
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
    """A subcommand: the function that runs it and the `--options` it takes. Options are
    strings; `repeated` ones are lists (empty when absent), `flags` are booleans."""

    __slots__ = ("module", "function", "required", "optional", "repeated", "flags", "logs")

    def __init__(
        self,
        module: str,
        function: str,
        required: tuple = (),
        optional: tuple = (),
        repeated: tuple = (),
        flags: tuple = (),
        logs: bool = False,  # its warnings (e.g. a registry's retries) go to stderr
    ) -> None:
        self.module = module
        self.function = function
        self.required = required
        self.optional = optional
        self.repeated = repeated
        self.flags = flags
        self.logs = logs


COMMANDS = {
    "layer": Command("strata.core.build.layer", "layer_command", required=("spec", "out")),
    "assemble": Command(
        "strata.core.oci.writers",
        "assemble_command",
        required=("spec", "out"),
        optional=("metadata", "config-out"),
    ),
    "stream": Command("strata.core.oci.writers", "stream_command", required=("spec",)),
    "import-base": Command(
        "strata.core.oci.baseimage",
        "import_base_command",
        required=("archive", "out"),
        optional=("ref", "platform", "zstd"),
    ),
    "ca-bundle": Command(
        "strata.core.debian.rootfs",
        "ca_bundle_command",
        required=("deb", "out"),
        optional=("zstd",),
    ),
    "debian-lock": Command(
        "strata.core.debian.lock",
        "debian_lock_command",
        required=("mirror", "suite", "arch", "out"),
        optional=("keyring", "gpgv"),
        repeated=("package",),
        logs=True,
    ),
    "pull": Command(
        "strata.core.registry.pull",
        "pull_command",
        required=("registry", "repository", "digest", "platform", "out"),
        flags=("insecure",),
        logs=True,
    ),
    "manifest": Command(
        "strata.core.oci.push_manifest",
        "manifest_command",
        required=("layout", "out"),
        flags=("docker",),
    ),
    "push": Command(
        "strata.core.registry.push",
        "push_command",
        required=("layout", "manifest", "repository"),
        optional=("mount-from",),
        repeated=("registry", "tag"),
        flags=("insecure",),
        logs=True,
    ),
}
USAGE = f"usage: python -m strata.core {{{','.join(COMMANDS)}}} [--option value ...]"


class Options:
    """Parsed options as attributes: `--mount-from` is `options.mount_from`."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update({name.replace("-", "_"): value for name, value in values.items()})


def parse(command: Command, argv: list) -> Options:
    """`--name value` or `--name=value` for each option; a flag takes no value."""
    values: dict = {name: None for name in (*command.required, *command.optional)}
    values.update({name: [] for name in command.repeated})
    values.update({name: False for name in command.flags})
    args = iter(argv)
    for arg in args:
        name, equals, value = arg[2:].partition("=")
        if not arg.startswith("--") or name not in values:
            raise UsageError(f"unrecognized argument: {arg}")
        if name in command.flags:
            if equals:
                raise UsageError(f"argument --{name}: takes no value")
            values[name] = True
            continue
        if not equals:
            value = next(args, None)
            if value is None:
                raise UsageError(f"argument --{name}: expected one argument")
        if name in command.repeated:
            values[name].append(value)
        elif values[name] is not None:
            raise UsageError(f"argument --{name}: given twice")
        else:
            values[name] = value
    missing = [f"--{name}" for name in command.required if values[name] is None]
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
        run = getattr(importlib.import_module(command.module), command.function)
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
