"""Running a Process whose failure the user should read as a mistake in a target, not as Pants'
dump of a failed Process."""

from __future__ import annotations

from typing import Callable, Optional

from pants.engine.process import (
    FallibleProcessResult,
    Process,
    ProcessResult,
    ProductDescription,
)
from pants.engine.rules import Get


async def run_process(
    process: Process, explain: Callable[[FallibleProcessResult], Optional[Exception]]
) -> ProcessResult:
    """Runs `process`. A failure that `explain` recognises raises the error it returns (one
    naming the target and field); any other failure is Pants' usual error, with the output."""
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
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
