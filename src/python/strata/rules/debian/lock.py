"""`debian_packages` lockfiles: the locked packages of an image's architecture (each `.deb`
downloaded and verified), and the `debian-lock` goal."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, Tuple

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
from strata.core.debian.lock import check_lock
from strata.core.debian.nodes import deb_path, node_key
from strata.rules.debian.subsystem import DebianSubsystem
from strata.rules.processes import OnThisMachine
from strata.rules.tool import ImageTool
from strata.target_types.debian import (
    DebianArchitecturesField,
    DebianLockfileField,
    DebianPackagesField,
    DebianPackagesTarget,
    DebianSuiteField,
)

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
    """The packages `target` locked for the Debian architecture `arch`."""

    target: Target
    arch: str


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
    packages = _locked_packages(tgt, path, contents[0].content, request.arch)
    mirror = _mirror(debian)
    names = sorted(packages)
    downloads = await MultiGet(
        Get(
            Digest,
            DownloadFile(
                f"{mirror}/{packages[n]['path']}",
                FileDigest(packages[n]["sha256"], packages[n]["size"]),
            ),
        )
        for n in names
    )
    entries = await MultiGet(Get(DigestEntries, Digest, d) for d in downloads)
    renamed = await MultiGet(
        Get(
            Digest,
            CreateDigest(
                [FileEntry(deb_path(name), e[0].file_digest)]  # type: ignore[union-attr]
            ),
        )
        for name, e in zip(names, entries)
    )
    nodes = tuple(
        DebNode(name, digest, tuple(node_key(d) for d in packages[name]["depends"]))
        for name, digest in zip(names, renamed)
    )
    roots = tuple(node_key(_package_name(r)) for r in tgt[DebianPackagesField].value or ())
    return DebianClosure(roots, nodes)


def _locked_packages(tgt: Target, path: str, content: bytes, arch: str) -> Dict[str, dict]:
    """The packages `tgt`'s lock holds for `arch`, once the lock is checked and known to be
    for the target's `packages` and `architectures`."""
    relock = f"run `pants debian-lock {tgt.address}`"
    try:
        lock = json.loads(content)
        check_lock(lock, path)
    except ValueError as e:
        raise ValueError(f"The lockfile of {tgt.address} is invalid: {e} ({relock}).") from e
    requested = sorted(set(tgt[DebianPackagesField].value or ()))
    if lock["requested"] != requested:
        raise ValueError(
            f"{path} was locked for {lock['requested']}, but {tgt.address} asks for "
            f"{requested}: {relock}."
        )
    architectures = sorted(set(tgt[DebianArchitecturesField].value or ()))
    if arch not in lock["architectures"]:
        add = "" if arch in architectures else f"add {arch!r} to its `architectures` and "
        raise ValueError(
            f"{tgt.address} is in an image of the Debian architecture {arch}, for which its "
            f"lockfile {path} holds no packages (it has {sorted(lock['architectures'])}): "
            f"{add}{relock}."
        )
    if sorted(lock["architectures"]) != architectures:
        raise ValueError(
            f"{path} was locked for the architectures {sorted(lock['architectures'])}, but "
            f"{tgt.address} asks for {architectures}: {relock}."
        )
    return lock["architectures"][arch]["packages"]


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
    # On this machine, whatever the environment: its network and keyring.
    results = await MultiGet(
        Get(
            ProcessResult,
            OnThisMachine(Process(
                argv=tool.argv(
                    "debian-lock",
                    "--mirror", mirror,
                    "--suite", t[DebianSuiteField].value,
                    "--keyring", debian.keyring,
                    *(a for arch in t[DebianArchitecturesField].value or ()
                      for a in ("--arch", arch)),
                    *(a for p in t[DebianPackagesField].value or () for a in ("--package", p)),
                    "--out", _lockfile_path(t),
                ),  # fmt: skip
                input_digest=tool.digest,
                output_files=(_lockfile_path(t),),
                description=f"Resolving Debian packages of {t.address}",
                level=LogLevel.INFO,
                # The index changes over time: look again on every run.
                cache_scope=ProcessCacheScope.PER_SESSION,
            ), "this machine's network and Debian keyring"),
        )
        for t in debian_targets
    )
    for tgt, result in zip(debian_targets, results):
        workspace.write_digest(result.output_digest)
        console.print_stdout(f"Wrote {_lockfile_path(tgt)}")
    return DebianLock(exit_code=0)


def rules():
    return collect_rules()
