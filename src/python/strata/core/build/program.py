"""How a core program runs: its options, parsed from its usage line, and its failures, reported
as one line each with the exit codes of `strata.core.errors`.

Both the layer Process's program (`python -m strata.core.build`) and the one command line of
the core (strata.core.cli) run this way, so this module is in every layer Process's sandbox.
Arguments are parsed here, by hand: importing argparse (re, enum, gettext) takes longer than
writing a small layer, and every layer is a Process.
"""

from __future__ import annotations  # no `typing` import: start-up time is per Process

import importlib
import sys

from strata.core.errors import Interrupted, StrataError, UsageError

# The `-X` option the Pants rules give every core Process: the `sys.version` of the
# interpreter they found at its path, where the Process runs. It is in the cache key.
INTERPRETER_OPTION = "strata_python"


class WrongInterpreter(StrataError):
    """The interpreter running the Process is not the build it was keyed on."""


def check_interpreter() -> None:
    """Refuses to run under another CPython build than the one the caller keyed the Process on
    (`-X strata_python=`): a remote worker with another interpreter at the same path would
    otherwise store its output under a key that names the first."""
    expected = sys._xoptions.get(INTERPRETER_OPTION)
    if expected is not None and expected != sys.version:
        raise WrongInterpreter(
            f"this Process was keyed on the CPython {expected!r} that Strata found at "
            f"{sys.executable}, but the one there is {sys.version!r}: every machine that runs "
            "Strata's Processes (each remote execution worker too) needs the same CPython "
            "build at the same path (README.md, \"Building with remote execution\")"
        )


class Command:
    """A subcommand: `module:function` runs it, `usage` is its options as its usage line writes
    them (`--name VALUE` required, `[--name VALUE]` optional, `[--name VALUE]...` repeated, a
    list, `[--name]` a flag); `logs` sends its warnings (a registry's retries) to stderr. Its
    module is imported only when it runs."""

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


# Writing a layer: what a layer Process runs (`python -m strata.core.build`), and the CLI's
# `layer` subcommand.
LAYER = Command(
    "strata.core.build.layer:layer_command",
    "--spec FILE --out DIR [--paths FILE] [--blob-store DIR] [--expect FILE]",
)


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


def run(prog: str, command: Command, argv: list) -> int:
    """Runs `command` with the arguments `argv`; its exit code. `prog` names it in messages."""
    try:
        check_interpreter()
        options = parse(command, argv)
        if command.logs:
            import logging

            logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=f"{prog}: %(message)s")
        module, function = command.target.split(":")
        call = getattr(importlib.import_module(module), function)
        try:
            call(options)
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
