"""Running Strata's Processes: where each runs (docs/architecture.md, "Where Processes run"),
and a failure the user should read as a mistake in a target rather than as Pants' dump of a
failed Process.

Every Process runs where the environment says (on this machine, or on a remote worker under
remote execution), except those that read or write something only this machine has: the
blob store, the Nix store, a registry's credentials, the network. Those say so (`here=`), and
run on this machine whatever the environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from pants.engine.internals.native_engine import ProcessExecutionEnvironment
from pants.engine.process import (
    FallibleProcessResult,
    Process,
    ProcessResult,
    ProductDescription,
)
from pants.engine.rules import Get, collect_rules, rule


# Where a Process writes an output whose path a user chose (dist/'s, from a target's address or
# `output_path`): below a directory of its own, never at a top-level name such as `etc/`,
# `usr/` or `bin/`, which a worker that runs an action with its sandbox as `/` mounts over.
OUTPUT_DIR = "out"


@dataclass(frozen=True)
class Execution:
    """Where the current environment runs a Process: `remote` is True under remote execution
    (then no Process it runs sees this machine's files, the blob store included)."""

    remote: bool


@rule
def current_execution(environment: ProcessExecutionEnvironment) -> Execution:
    return Execution(environment.remote_execution)


@dataclass(frozen=True)
class ThisMachine:
    """The current environment's settings, run on this machine: under remote execution (global,
    or a `remote_environment`) and in a `docker_environment` alike. A `Get` given it as its
    `ProcessExecutionEnvironment` runs every Process beneath it here."""

    environment: ProcessExecutionEnvironment


@rule
def this_machine(environment: ProcessExecutionEnvironment) -> ThisMachine:
    return ThisMachine(
        ProcessExecutionEnvironment(
            environment_name=environment.name,
            platform=environment.platform,
            docker_image=None,
            remote_execution=False,
            remote_execution_extra_platform_properties=[],
        )
    )


@dataclass(frozen=True)
class OnThisMachine:
    """A Process that must run on the machine Pants runs on, because it `needs` something only
    that machine has."""

    process: Process
    needs: str


@rule
async def run_on_this_machine(request: OnThisMachine, here: ThisMachine) -> FallibleProcessResult:
    return await Get(
        FallibleProcessResult,
        {request.process: Process, here.environment: ProcessExecutionEnvironment},
    )


@rule
async def run_on_this_machine_or_fail(request: OnThisMachine) -> ProcessResult:
    """`Get(ProcessResult, OnThisMachine(...))`: a failure is Pants' usual error."""
    result = await Get(FallibleProcessResult, OnThisMachine, request)
    description = ProductDescription(request.process.description)
    return await Get(
        ProcessResult, {result: FallibleProcessResult, description: ProductDescription}
    )


async def run_process(
    process: Process,
    explain: Optional[Callable[[FallibleProcessResult], Optional[Exception]]] = None,
    *,
    here: Optional[str] = None,
) -> ProcessResult:
    """Runs `process`: where the environment says, or with `here` (what it needs of this
    machine) on this machine. A failure that `explain` recognises raises the error it returns
    (one naming the target and field); any other failure is Pants' usual error, with the
    output."""
    if here is None:
        result = await Get(FallibleProcessResult, Process, process)
    else:
        result = await Get(FallibleProcessResult, OnThisMachine(process, here))
    if result.exit_code != 0 and explain is not None:
        error = explain(result)
        if error is not None:
            raise error
    description = ProductDescription(process.description)
    return await Get(
        ProcessResult, {result: FallibleProcessResult, description: ProductDescription}
    )


def stderr_text(result: FallibleProcessResult) -> str:
    """A failed Process's stderr, as one message."""
    return result.stderr.decode(errors="replace").strip()


def rules():
    return collect_rules()
