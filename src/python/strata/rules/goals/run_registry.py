"""`pants run` for `debian_registry`: its server in the foreground, but never through pantsd."""

from __future__ import annotations

import os

from pants.core.goals.run import RunRequest
from pants.engine.rules import Get, collect_rules, rule
from pants.option.global_options import GlobalOptions
from pants.util.logging import LogLevel

from strata.rules.debian.registry import DebianRegistryFieldSet, DebianRegistryServer


class RunThroughPantsd(Exception):
    """`pants run` of a `debian_registry` through pantsd, which would block the repository."""


@rule(desc="Running a debian_registry", level=LogLevel.DEBUG)
async def run_debian_registry(
    field_set: DebianRegistryFieldSet, global_options: GlobalOptions
) -> RunRequest:
    """Pants 2.17's `run` goal runs its process inside the goal, and pantsd runs one goal at a
    time (pants/bin/daemon_pants_runner.py, `_one_run_at_a_time`): a server run through pantsd
    would make every other `pants` command in the repository wait, then time out
    (`[GLOBAL].pantsd_timeout_when_multiple_invocations`). Without pantsd (`--concurrent`, as
    Pants itself suggests for parallel runs, or `--no-pantsd`) the run holds nothing."""
    if global_options.pantsd and not global_options.concurrent:
        output = os.path.join("dist", field_set.output_file())
        raise RunThroughPantsd(
            f"`pants run {field_set.address}` would hold pantsd while the registry serves, "
            "blocking every other `pants` command in this repository. Run it without pantsd: "
            f"`pants --concurrent run {field_set.address} -- --listen HOST:PORT --cache-dir "
            f"DIR`, or package it and run the PEX: `pants package {field_set.address}`, then "
            f"`{output} --listen HOST:PORT --cache-dir DIR`."
        )
    server = await Get(DebianRegistryServer, DebianRegistryFieldSet, field_set)
    return RunRequest(
        digest=server.pex.digest, args=(os.path.join("{chroot}", server.pex.name),)
    )


def rules():
    return [*collect_rules(), *DebianRegistryFieldSet.rules()]
