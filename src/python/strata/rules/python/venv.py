"""`python_venv` targets as store nodes: an installed virtualenv, one node per third-party
distribution, one for the first-party sources, one for the venv's skeleton.

Pants and pex resolve the distributions, as for a `pex_binary` (in the resolve of the targets
the venv depends on), into a packed PEX of the requirements alone: each `.deps/<wheel>` there
is pex's installed chroot of one distribution, and becomes one node, so a distribution shared
by many images is a shared layer. The layer Processes install them (`strata.core.build.python`):
a first-party change rebuilds neither that PEX nor any distribution's layer.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

from pants.backend.python.target_types import (
    PexEntryPointField,
    PexScriptField,
    ResolvedPexEntryPoint,
    ResolvePexEntryPointRequest,
)
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import Pex, PexLayout, PexPlatforms
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.backend.python.util_rules.python_sources import (
    PythonSourceFilesRequest,
    StrippedPythonSourceFiles,
)
from pants.engine.addresses import Addresses
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestEntries,
    FileEntry,
)
from pants.engine.process import ProcessExecutionFailure
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    DependenciesRequest,
    InvalidFieldException,
    Target,
    Targets,
    TransitiveTargets,
    TransitiveTargetsRequest,
)
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.core.build.parts.python_sources import PythonSources
from strata.core.build.parts.venvs import Venv
from strata.core.build.parts.wheels import Wheel
from strata.core.build.spec import absolute_image_path
from strata.rules.nodes import (
    Customisation,
    CustomisationRequest,
    DescribeFiles,
    DescribeProcess,
    LayerParts,
    NodeKind,
    RequiredProgram,
    SbomDescription,
    StoreNode,
    StoreNodes,
    StoreNodesRequest,
    image_platform_of,
)
from strata.target_types.image_runtime_config import OciEntrypointField
from strata.target_types.python import (
    PythonVenvAllowSdistsField,
    PythonVenvBytecodeField,
    PythonVenvDependenciesField,
    PythonVenvEntryPointField,
    PythonVenvInterpreterField,
    PythonVenvPathField,
    PythonVenvTarget,
    PythonVenvVersionField,
)

# The machine a wheel's platform tag names, by the Go architecture an image's config names.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "arm": "armv7l",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

_REQUIREMENTS_PEX = "requirements.pex"
_DEPS = f"{_REQUIREMENTS_PEX}/.deps/"
WHEELS_DIR = "python/wheels"
# pip's last word when no distribution it may use fits: with `--no-build`, no wheel does.
_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)\s*(\S*)")
# ...and what it says before, when it reached no index at all (e.g. on a remote execution
# worker without network).
_NO_INDEX = re.compile(
    r"Temporary failure in name resolution|Failed to establish a new connection"
    r"|Network is unreachable|No route to host"
)
SOURCES_DIR = "python/sources"


@dataclass(frozen=True)
class PythonPart(NodeKind):
    """The node is one part of a venv, for the layer spec's Python parts; its digest holds the
    files the part's `source` names."""

    part: Union[Venv, Wheel, PythonSources]
    # The image's default entrypoint (set on the skeleton only): the venv's launcher or script.
    entrypoint: Tuple[str, ...] = ()

    @classmethod
    def layer_parts(cls, kinds: Sequence[NodeKind]) -> LayerParts:
        parts = [kind.part for kind in kinds]  # type: ignore[attr-defined]
        return LayerParts(
            tuple(
                (name, items)
                for name, part_type in (("venvs", Venv), ("wheels", Wheel),
                                        ("python_sources", PythonSources))
                for items in [tuple(p for p in parts if isinstance(p, part_type))]
                if items
            ),
            # A venv's skeleton has no bytecode of its own.
            frozenset(p.version for p in parts if not isinstance(p, Venv) and p.bytecode != "none"),
        )

    def sbom(self, key: str) -> SbomDescription:
        part = self.part
        if isinstance(part, Wheel):
            return DescribeProcess(("--wheel", part.source))
        if isinstance(part, PythonSources):  # installed at the venv's site-packages
            return DescribeFiles(part.source, key.split("#", 1)[0],
                                 f"{part.venv}/lib/python{part.version}/site-packages")
        return None  # the skeleton: its launchers and links, no distribution or source


class PythonVenvNodesRequest(StoreNodesRequest):
    holds_dependencies = True
    # A venv is several nodes, each its own kind of layer content: an `oci_layer` cannot take
    # them whole.
    groupable = False

    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        return isinstance(target, PythonVenvTarget)


def python_version(tgt: Target) -> str:
    """The venv's interpreter version: the field, else the interpreter's file name's."""
    version = tgt[PythonVenvVersionField].value
    if version:
        return version
    interpreter = tgt[PythonVenvInterpreterField].value
    match = re.fullmatch(r"python(\d+\.\d+)", interpreter.rsplit("/", 1)[-1])
    if not match:
        raise InvalidFieldException(
            f"The `python_version` field of {tgt.address} is required: the `python` field, "
            f"{interpreter!r}, does not say the version in its name (as `python3.11` does)."
        )
    return match.group(1)


async def _entry_point(tgt: Target, deps: Targets) -> Tuple[Optional[str], Optional[str]]:
    """(entry point, script): the venv's own, else those of a `pex_binary` it depends on."""
    own = tgt[PythonVenvEntryPointField].value
    if own:
        return own, None
    binaries = [d for d in deps if d.has_field(PexEntryPointField)]
    if len(binaries) > 1:
        raise InvalidFieldException(
            f"{tgt.address} depends on several `pex_binary` targets "
            f"({', '.join(b.address.spec for b in binaries)}): set its `entry_point` field to "
            "say which one it runs."
        )
    if not binaries:
        return None, None
    binary = binaries[0]
    script = binary[PexScriptField].value
    if script:
        return None, script
    resolved = await Get(
        ResolvedPexEntryPoint, ResolvePexEntryPointRequest(binary[PexEntryPointField])
    )
    if resolved.val is None:
        return None, None
    entry = resolved.val
    return (f"{entry.module}:{entry.function}" if entry.function else entry.module), None


async def _resolved(
    tgt: Target, deps: Targets, image_arch: str, machine: str, version: str
) -> Tuple[Pex, StrippedPythonSourceFiles]:
    """The venv's distributions, as a packed PEX of its requirements for the image's platform,
    and its first-party sources. A distribution without a wheel for that platform is an error
    naming the venv, the distribution and the platform."""
    # On another machine than this one, pex picks the wheels for the image's platform (binary
    # wheels only: an sdist cannot be built for another machine).
    nodash = version.replace(".", "")
    platforms = PexPlatforms(
        [] if machine == platform.machine() else [f"linux_{machine}-cp-{nodash}-cp{nodash}"]
    )
    # Wheels only (pip's `--only-binary :all:`): an sdist would be built by this machine's
    # compiler, for this machine. Also for the PEX of the resolve's whole lockfile that Pants
    # subsets when the lockfile is a pinned requirements file.
    wheels_only = () if tgt[PythonVenvAllowSdistsField].value else ("--no-build",)
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([tgt.address]))
    try:
        return await MultiGet(
            Get(
                Pex,
                PexFromTargetsRequest(
                    Addresses(d.address for d in deps),
                    output_filename=_REQUIREMENTS_PEX,
                    internal_only=False,
                    layout=PexLayout.PACKED,
                    include_source_files=False,
                    platforms=platforms,
                    # Resolved for the image's interpreter, whatever the sources' constraints
                    # say.
                    hardcoded_interpreter_constraints=InterpreterConstraints(
                        [f"CPython=={version}.*"]
                    ),
                    additional_args=wheels_only,
                    additional_lockfile_args=wheels_only,
                    description=f"Resolving the distributions of {tgt.address}",
                ),
            ),
            Get(
                StrippedPythonSourceFiles,
                PythonSourceFilesRequest(transitive.dependencies, include_resources=True),
            ),
        )
    except ProcessExecutionFailure as e:
        stderr = e.stderr.decode(errors="replace")
        unreachable = _NO_INDEX.search(stderr)
        if unreachable:
            raise EnvironmentError(
                f"Resolving the distributions of {tgt.address}: pip reached no package index "
                f"({unreachable.group(0)}) from where the resolve ran. Under remote execution "
                "that is a worker, which then needs network access to the index (buildbox-run: "
                "the platform property `network=on`; README.md, \"Building with remote "
                "execution\")."
            ) from e
        missing = _NO_MATCH.search(stderr)
        if missing is None:
            raise
        name, spec = missing.groups()
        wanted = f"{name} {spec[2:]}" if spec.startswith("==") else f"{name} {spec}".strip()
        raise InvalidFieldException(
            f"{tgt.address} requires {wanted}, which has no wheel for the image's platform, "
            f"linux/{image_arch} (CPython {version}, {machine}): use a version with a wheel "
            f"for it, or, for an image of this machine's architecture, set `allow_sdists=True` "
            f"on {tgt.address} to build it from its source distribution here."
        ) from e


async def _wheel_nodes(
    node: str, requirements: Pex, venv: str, version: str, machine: str, bytecode: str
) -> List[StoreNode]:
    """One node per distribution of the requirements PEX (pex's installed chroot, a `.deps/`
    entry), each a `wheels` part of its own."""
    wheel_entries = [
        e for e in await Get(DigestEntries, Digest, requirements.digest)
        if isinstance(e, FileEntry) and e.path.startswith(_DEPS) and "/" not in e.path[len(_DEPS):]
    ]
    wheel_digests = await MultiGet(
        Get(Digest, CreateDigest([FileEntry(f"{WHEELS_DIR}/{e.path[len(_DEPS):]}",
                                            e.file_digest)]))
        for e in wheel_entries
    )
    return [
        StoreNode(
            f"{node}#{e.path[len(_DEPS):]}",
            digest,
            (),
            PythonPart(Wheel(f"{WHEELS_DIR}/{e.path[len(_DEPS):]}", venv, version,
                             machine, bytecode)),
        )
        for e, digest in zip(wheel_entries, wheel_digests)
    ]


async def _venv_nodes(image_arch: str, node: str, tgt: Target) -> List[StoreNode]:
    version = python_version(tgt)
    venv = absolute_image_path(tgt[PythonVenvPathField].value, "venv_path")  # `opt/venv`
    bytecode = tgt[PythonVenvBytecodeField].value
    machine = MACHINES.get(image_arch)
    if machine is None:
        raise InvalidFieldException(
            f"{tgt.address} is in an image whose `architecture` is {image_arch!r}, for which "
            f"Strata knows no wheel platform: one of {sorted(MACHINES)} is needed."
        )
    deps = await Get(Targets, DependenciesRequest(tgt[PythonVenvDependenciesField]))
    requirements, sources = await _resolved(tgt, deps, image_arch, machine, version)
    entry_point, script = await _entry_point(tgt, deps)
    nodes = await _wheel_nodes(node, requirements, venv, version, machine, bytecode)
    wheel_keys = tuple(n.key for n in nodes)

    source_dir = f"{SOURCES_DIR}/{venv}"
    first_party = sources.stripped_source_files.snapshot
    keys: List[str] = []
    if first_party.files:
        digest = await Get(Digest, AddPrefix(first_party.digest, source_dir))
        keys.append(f"{node}#sources")
        nodes.append(
            StoreNode(
                keys[-1],
                digest,
                wheel_keys,
                PythonPart(PythonSources(source_dir, venv, version, bytecode)),
            )
        )

    launcher = tgt.address.target_name
    launchers = ((launcher, entry_point),) if entry_point else ()
    command = launcher if entry_point else script
    skeleton = Venv(
        venv, absolute_image_path(tgt[PythonVenvInterpreterField].value, "python"), version,
        launchers,
    )
    nodes.append(
        StoreNode(
            node,
            EMPTY_DIGEST,
            (*keys, *wheel_keys),
            PythonPart(skeleton, (f"/{venv}/bin/{command}",) if command else ()),
        )
    )
    return nodes


@dataclass(frozen=True)
class _VenvRequest:
    """One venv of an image whose `architecture` is `arch`."""

    arch: str
    node: str
    target: Target


@rule(desc="Resolving Python venvs into store nodes", level=LogLevel.DEBUG)
async def python_venv_nodes(request: PythonVenvNodesRequest) -> StoreNodes:
    arch = (await image_platform_of(request))["architecture"]
    made = await MultiGet(
        Get(StoreNodes, _VenvRequest(arch, node, tgt)) for node, tgt in request.members
    )
    return StoreNodes(tuple(n for m in made for n in m.nodes))


@rule(desc="Resolving a Python venv into store nodes", level=LogLevel.DEBUG)
async def one_python_venv(request: _VenvRequest) -> StoreNodes:
    return StoreNodes(tuple(await _venv_nodes(request.arch, request.node, request.target)))


class PythonVenvCustomisationRequest(CustomisationRequest):
    kind = PythonPart


@rule(desc="Adding what an image's Python venvs need on top", level=LogLevel.DEBUG)
async def python_venv_customisation(request: PythonVenvCustomisationRequest) -> Customisation:
    """Each venv's interpreter must be in the image; an image without an `entrypoint` of its own
    runs its venv's launcher (or script)."""
    image = request.image
    programs = tuple(
        RequiredProgram(
            f"/{part.python}",
            f"The `python` field of {node.key} is /{part.python}, but in the image "
            f"{image.address}, {{problem}}: add a `debian_packages` target with "
            f"`python{part.version}` to the image's dependencies, or set `python` to the "
            "interpreter the image (or its base) has.",
        )
        for node in request.nodes
        for part in [node.kind.part]  # type: ignore[attr-defined]
        if isinstance(part, Venv)
    )
    commands = sorted({node.kind.entrypoint for node in request.nodes  # type: ignore
                       if node.kind.entrypoint})  # type: ignore[attr-defined]
    if len(commands) > 1 and image[OciEntrypointField].config_value() is None:
        raise InvalidFieldException(
            f"{image.address} holds several `python_venv` targets with an entry point "
            f"({', '.join(c[0] for c in commands)}): set its `entrypoint` field to say which "
            "one the container runs."
        )
    return Customisation(
        entrypoint=(commands[0], "its `python_venv`'s launcher") if len(commands) == 1 else None,
        programs=programs,
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(StoreNodesRequest, PythonVenvNodesRequest),
        UnionRule(CustomisationRequest, PythonVenvCustomisationRequest),
    ]
