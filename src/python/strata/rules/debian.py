"""`debian_packages`: locked Debian packages as store nodes, and the `debian-lock` goal."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Tuple

from pants.engine.console import Console
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DownloadFile,
    FileDigest,
    FileEntry,
    PathGlobs,
    Workspace,
)
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule, rule
from pants.engine.target import Target, Targets
from pants.option.global_options import GlobMatchErrorBehavior
from pants.util.logging import LogLevel

from strata.core.debian.index import debian_mirror
from strata.rules.tool import ImageTool
from strata.subsystems import DebianSubsystem
from strata.target_types import (
    DebianArchitectureField,
    DebianLockfileField,
    DebianPackagesField,
    DebianPackagesTarget,
    DebianSuiteField,
)

DEB_DIR = "debs"  # where a layer process finds the .debs of its Debian packages


def node_key(package: str) -> str:
    """One node per package name across all `debian_packages` targets of an image."""
    return f"debian:{package}"


@dataclass(frozen=True)
class DebNode:
    package: str
    digest: Digest  # the .deb at debs/<package>.deb
    depends: Tuple[str, ...]


@dataclass(frozen=True)
class DebianClosure:
    requested: Tuple[str, ...]  # node keys of the requested packages
    nodes: Tuple[DebNode, ...]


@dataclass(frozen=True)
class DebianClosureRequest:
    target: Target


def _lockfile_path(tgt: Target) -> str:
    return os.path.join(tgt.address.spec_path, tgt[DebianLockfileField].value)


def _mirror(debian: DebianSubsystem) -> str:
    return (debian.mirror or debian_mirror()).rstrip("/")


@rule(desc="Loading a Debian lockfile", level=LogLevel.DEBUG)
async def debian_closure(request: DebianClosureRequest, debian: DebianSubsystem) -> DebianClosure:
    tgt = request.target
    path = _lockfile_path(tgt)
    contents = await Get(
        DigestContents,
        PathGlobs(
            [path],
            glob_match_error_behavior=GlobMatchErrorBehavior.error,
            description_of_origin=(
                f"the `lockfile` of {tgt.address} (write it with `pants debian-lock {tgt.address}`)"
            ),
        ),
    )
    lock = json.loads(contents[0].content)
    requested = tuple(tgt[DebianPackagesField].value or ())
    if sorted(lock.get("requested", ())) != sorted(requested):
        raise ValueError(
            f"{path} was locked for {lock.get('requested')}, but {tgt.address} asks for "
            f"{list(requested)}: run `pants debian-lock {tgt.address}`."
        )
    mirror = _mirror(debian)
    names = sorted(lock["packages"])
    downloads = await MultiGet(
        Get(
            Digest,
            DownloadFile(
                f"{mirror}/{lock['packages'][n]['path']}",
                FileDigest(lock["packages"][n]["sha256"], lock["packages"][n]["size"]),
            ),
        )
        for n in names
    )
    entries = await MultiGet(Get(DigestEntries, Digest, d) for d in downloads)
    renamed = await MultiGet(
        Get(
            Digest,
            CreateDigest(
                [FileEntry(f"{DEB_DIR}/{name}.deb", e[0].file_digest)]  # type: ignore[union-attr]
            ),
        )
        for name, e in zip(names, entries)
    )
    nodes = tuple(
        DebNode(name, digest, tuple(node_key(d) for d in lock["packages"][name]["depends"]))
        for name, digest in zip(names, renamed)
    )
    roots = tuple(node_key(_package_name(r)) for r in requested)
    return DebianClosure(roots, nodes)


def _package_name(requirement: str) -> str:
    return requirement.split("(")[0].split(":")[0].strip()


class DebianLockSubsystem(GoalSubsystem):
    name = "debian-lock"
    help = "Resolve `debian_packages` targets against their suite and write their lockfiles."


class DebianLock(Goal):
    subsystem_cls = DebianLockSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def debian_lock(
    targets: Targets,
    tool: ImageTool,
    debian: DebianSubsystem,
    workspace: Workspace,
    console: Console,
) -> DebianLock:
    debian_targets = [t for t in targets if isinstance(t, DebianPackagesTarget)]
    mirror = _mirror(debian)
    results = await MultiGet(
        Get(
            ProcessResult,
            Process(
                argv=tool.argv(
                    "debian-lock",
                    "--mirror", mirror,
                    "--suite", t[DebianSuiteField].value,
                    "--arch", t[DebianArchitectureField].value,
                    "--keyring", debian.keyring,
                    *(a for p in t[DebianPackagesField].value or () for a in ("--package", p)),
                    "--out", _lockfile_path(t),
                ),  # fmt: skip
                input_digest=tool.digest,
                output_files=(_lockfile_path(t),),
                description=f"Resolving Debian packages of {t.address}",
                level=LogLevel.INFO,
                # The index changes over time: look again on every run.
                cache_scope=ProcessCacheScope.PER_SESSION,
            ),
        )
        for t in debian_targets
    )
    for tgt, result in zip(debian_targets, results):
        workspace.write_digest(result.output_digest)
        console.print_stdout(f"Wrote {_lockfile_path(tgt)}")
    return DebianLock(exit_code=0)


def rules():
    return collect_rules()
