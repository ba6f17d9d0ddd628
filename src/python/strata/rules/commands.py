"""An `oci_image`'s build-time commands as the core runs them: its scripts, its timeout, and the
host programs they and their runners need, found and fingerprinted with every other host file
their sandbox holds (strata.core.build.spec.Commands)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.process import Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from strata.core.build.commands import FAKEROOT_RUNNERS, SANDBOX, runner_names
from strata.core.build.spec import Commands
from strata.rules.processes import run_process
from strata.rules.tool import BinaryOnThisMachine, FoundOnThisMachine, ImageTool
from strata.subsystems import StrataSubsystem


# Why build-time commands, and the layer Processes that run them, run on this machine, whatever
# the environment: their programs are this machine's, found and fingerprinted here (the
# fingerprints key the layer), and run in a user namespace of their own.
NEEDS = "the build-time command tools found on this machine"


@dataclass(frozen=True)
class CommandsRequest:
    address: Address
    extra_commands: Optional[str]
    fake_root_commands: Optional[str]
    tools: Tuple[str, ...]  # the `command_tools` field
    timeout: int  # the `command_timeout` field


@dataclass(frozen=True)
class BuildCommands:
    commands: Commands


@rule(desc="Finding the tools of build-time commands", level=LogLevel.DEBUG)
async def find_command_tools(
    request: CommandsRequest, tool: ImageTool, strata: StrataSubsystem
) -> BuildCommands:
    """The programs on this machine, where the layer Processes that run commands run."""
    runners = runner_names(bool(request.fake_root_commands))
    names = sorted({*request.tools, *runners})
    search_path = tuple(strata.command_search_paths)
    found = await MultiGet(
        Get(FoundOnThisMachine, BinaryOnThisMachine(name, search_path, NEEDS)) for name in names
    )
    paths = {}
    for name, binary in zip(names, found):
        if binary.path is None:
            raise InvalidFieldException(_missing(request, name, search_path))
        paths[name] = binary.path
    # The programs' contents, and those of what the sandbox holds for them (libraries, ...),
    # in the layer's cache key: another build of any of them (a Debian upgrade) gives another
    # layer. Re-read once per pantsd, as Pants re-tests binaries it finds.
    fakeroot = ("--fakeroot", paths["fakeroot"]) if request.fake_root_commands else ()
    result = await run_process(
        Process(
            argv=tool.argv(
                "command-files", "--host-program", paths[SANDBOX], *fakeroot,
                *(arg for name in names if name != SANDBOX for arg in ("--program", paths[name])),
            ),
            input_digest=tool.digest,
            description=f"Fingerprinting the build-time command tools of {request.address}",
            level=LogLevel.DEBUG,
            cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
        ),
        here=NEEDS,
    )
    fingerprints = json.loads(result.stdout)
    programs = fingerprints["programs"]

    def triples(chosen) -> tuple:
        return tuple((name, paths[name], programs[paths[name]]) for name in chosen)

    return BuildCommands(
        Commands(
            extra_commands=request.extra_commands,
            fake_root_commands=request.fake_root_commands,
            tools=triples(request.tools),
            runners=triples(runners),
            files=tuple(sorted(fingerprints["files"].items())),
            timeout=request.timeout,
        )
    )


def _missing(request: CommandsRequest, name: str, search_path: Tuple[str, ...]) -> str:
    where = f"in any of {list(search_path)} ([strata].command_search_paths)"
    if name in request.tools:
        return (f"The `command_tools` field of {request.address} names `{name}`, which is not "
                f"{where}: install it, or remove it from the field.")
    needs = ("fake_root_commands" if name in FAKEROOT_RUNNERS or not request.extra_commands
             else "extra_commands")
    return (f"The `{needs}` field of {request.address} needs `{name}` to run its script, and "
            f"it is not {where}.")


def rules():
    return collect_rules()
