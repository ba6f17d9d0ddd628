"""A `debian_registry`'s server: Strata's core and the target's configuration as one PEX."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import Pex, PexRequest
from pants.core.goals.package import PackageFieldSet
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from strata.rules.debian.subsystem import DebianSubsystem
from strata.rules.tool import ImageTool
from strata.target_types.debian_registry import (
    DebianRegistryMetaPackagesField,
    DebianRegistryOutputPathField,
    DebianRegistryTarget,
)

# The PEX runs with the machine's `python3`: the core needs CPython 3.9 or newer, nothing else.
INTERPRETER_CONSTRAINTS = ("CPython>=3.9,<4",)
SHEBANG = "/usr/bin/env python3"
# The generated module that holds the target's configuration and starts the server.
ENTRY_MODULE = "strata_debian_registry"

_ENTRY_SOURCE = '''\
"""The server of the debian_registry {target}, as `pants package` configured it."""

import json
import sys

from strata.core.debian_registry.service import main as serve

CONFIG = json.loads({config!r})


def main() -> int:
    return serve(sys.argv[1:], CONFIG)
'''


@dataclass(frozen=True)
class DebianRegistryFieldSet(PackageFieldSet, RunFieldSet):
    required_fields = (DebianRegistryMetaPackagesField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    output_path: DebianRegistryOutputPathField

    def output_file(self) -> str:
        return self.output_path.value_or_default(file_ending="pex")


@dataclass(frozen=True)
class DebianRegistryServer:
    pex: Pex  # at the field set's `output_file()`


@rule(desc="Building a debian_registry's server", level=LogLevel.DEBUG)
async def build_debian_registry_server(
    field_set: DebianRegistryFieldSet, tool: ImageTool, debian: DebianSubsystem
) -> DebianRegistryServer:
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(
        field_set.address, description_of_origin="the debian_registry rules"))
    target = cast(DebianRegistryTarget, wrapped.target)
    config = json.dumps(
        target.registry_config(debian.keyring, debian.mirror).to_json(), indent=2, sort_keys=True
    )
    entry = FileContent(
        f"{ENTRY_MODULE}.py",
        _ENTRY_SOURCE.format(target=field_set.address, config=config).encode(),
    )
    entry_digest = await Get(Digest, CreateDigest([entry]))
    sources = await Get(Digest, MergeDigests([tool.digest, entry_digest]))
    pex = await Get(
        Pex,
        PexRequest(
            output_filename=field_set.output_file(),
            internal_only=False,
            interpreter_constraints=InterpreterConstraints(INTERPRETER_CONSTRAINTS),
            sources=sources,
            main=EntryPoint(ENTRY_MODULE, "main"),
            additional_args=("--python-shebang", SHEBANG),
            description=f"Building the server of {field_set.address}",
        ),
    )
    return DebianRegistryServer(pex)


def rules():
    return collect_rules()
