"""One cached Process per layer: popularity decides the groups, Strata's core tool writes them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

from pants.engine.fs import (
    EMPTY_DIGEST,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileEntry,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import (
    FallibleProcessResult,
    Process,
    ProcessCacheScope,
    ProcessResult,
    ProductDescription,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from strata.core.build.parts.debs import Deb
from strata.core.build.parts.entries import Entry
from strata.core.build.parts.nars import Nar
from strata.core.build.parts.python_sources import PythonSources
from strata.core.build.parts.trees import Tree
from strata.core.build.parts.venvs import Venv
from strata.core.build.parts.wheels import Wheel
from strata.core.build.permissions import UNMATCHED
from strata.core.build.spec import Commands, LayerSpec
from strata.core.build.spec import LayerSettings as CoreLayerSettings
from strata.core.debian.rootfs import merged_usr_entries
from strata.core.graph.layering import assign_layers
from strata.rules.chunks import path_chunks
from strata.rules.closure import ImageClosure, InvalidImageContent, LayerPermissions
from strata.rules.nix import nar_path
from strata.rules.nodes import FileTree, NodeKind, StoreNode
from strata.rules.nodes.debian import DebianPackage
from strata.rules.nodes.nix import NixStorePath
from strata.rules.nodes.python_venv import PythonPart
from strata.rules.debian import DEB_DIR
from strata.rules.tool import (
    BytecodeCompiler,
    BytecodeCompilerRequest,
    ImageTool,
    ZstdBinary,
    ZstdBinaryRequest,
)
from strata.subsystems import StrataSubsystem

_LAYER_OUT = "out"
LAYER_PATHS = "layer-paths.json"
_ROOTFS = "rootfs"


@dataclass(frozen=True)
class LayerSettings:
    mtime: int
    reproducible: bool  # False when a timestamp is "now"
    uid: int
    gid: int
    uname: str
    gname: str
    compression: str


@dataclass(frozen=True)
class CustomisationLayer:
    """What the image target itself adds on top: symlinks, empty directories, small files, and
    the merged-/usr root symlinks when Debian packages are in the image; `commands` (its
    build-time scripts) then change that content."""

    symlinks: Tuple[Tuple[str, str], ...]
    directories: Tuple[Tuple[str, int], ...]
    files: Tuple[Tuple[str, bytes], ...] = ()
    generated: Digest = EMPTY_DIGEST  # files made by other processes, at their image paths
    merged_usr: bool = False
    commands: Optional[Commands] = None
    permissions: Optional[LayerPermissions] = None

    def entries(self) -> Tuple[Entry, ...]:
        return (
            *(merged_usr_entries() if self.merged_usr else ()),
            *(Entry.dir(p, m) for p, m in self.directories),
            *(Entry.symlink(p, t) for p, t in self.symlinks),
        )

    def __bool__(self) -> bool:
        return bool(
            self.symlinks
            or self.directories
            or self.files
            or self.generated != EMPTY_DIGEST
            or self.merged_usr
            or self.commands is not None
            or self.permissions is not None
        )


@dataclass(frozen=True)
class LayersRequest:
    closure: ImageClosure
    budget: int
    settings: LayerSettings
    customisation: CustomisationLayer
    description: str
    single_layer: bool = False  # the customisation content joins the one content layer


@dataclass(frozen=True)
class BuiltLayer:
    """A layer Process's output: `layer.json` and the blob, and the nodes it holds; `paths`,
    the layer's path list (`strata.core.graph.image_files`), at `LAYER_PATHS`."""

    digest: Digest
    comment: str
    metadata: str  # layer.json, verbatim
    nodes: Tuple[str, ...] = ()
    paths: Digest = EMPTY_DIGEST


@dataclass(frozen=True)
class BuiltLayers:
    layers: Tuple[BuiltLayer, ...]


@dataclass(frozen=True)
class _LayerProcessRequest:
    entries: Tuple[Entry, ...]
    settings: LayerSettings
    comment: str
    description: str
    content: Digest = EMPTY_DIGEST  # files at their image paths
    debs: Tuple[str, ...] = ()  # Debian packages, their .debs at debs/<package>.deb
    deb_files: Digest = EMPTY_DIGEST
    python_parts: Tuple[Union[Venv, Wheel, PythonSources], ...] = ()  # a venv's parts
    python_files: Digest = EMPTY_DIGEST  # the files their sources name
    nars: Tuple[Tuple[str, str], ...] = ()  # Nix store paths and their NAR hashes
    nar_files: Digest = EMPTY_DIGEST  # their NARs, at nar_path(store path)
    commands: Optional[Commands] = None  # build-time scripts over the content
    permissions: Optional[LayerPermissions] = None


# How a layer Process receives each kind of node: the fields of its request that the layer's
# nodes of that kind fill, given their digests merged.
_LAYER_PARTS: Dict[Type[NodeKind], Callable[[List[StoreNode], Digest], Dict[str, Any]]] = {
    FileTree: lambda nodes, files: {"content": files},
    DebianPackage: lambda nodes, debs: {
        "debs": tuple(sorted(node.kind.package for node in nodes)),  # type: ignore[attr-defined]
        "deb_files": debs,
    },
    PythonPart: lambda nodes, files: {
        "python_parts": tuple(node.kind.part for node in nodes),  # type: ignore[attr-defined]
        "python_files": files,
    },
    NixStorePath: lambda nodes, nars: {
        "nars": tuple(sorted(
            (node.kind.info.path, node.kind.info.nar_hash)  # type: ignore[attr-defined]
            for node in nodes
        )),
        "nar_files": nars,
    },
}

# The layer spec's part for each kind of Python part.
_PYTHON_SPEC_PARTS = {Venv: "venvs", Wheel: "wheels", PythonSources: "python_sources"}


@rule(desc="Building image layers", level=LogLevel.DEBUG)
async def build_layers(request: LayersRequest) -> BuiltLayers:
    by_key = {node.key: node for node in request.closure.nodes}
    # A node's permissions apply to its whole layer: it must be alone there.
    permissions = {p.address: p for p in request.closure.permissions}
    try:
        groups = assign_layers(request.closure.graph(), request.budget, alone=permissions)
    except ValueError as e:
        raise InvalidImageContent(
            f"{request.description}: {e}. Each `oci_layer` with `permissions` needs a layer of "
            "its own: raise `max_layers`."
        ) from e
    parts: List[Tuple[int, Type[NodeKind], List[StoreNode]]] = []  # (group, kind, its nodes)
    for i, group in enumerate(groups):
        by_kind: Dict[Type[NodeKind], List[StoreNode]] = {}
        for key in group:
            by_kind.setdefault(type(by_key[key].kind), []).append(by_key[key])
        parts.extend((i, kind, nodes) for kind, nodes in by_kind.items())
    merged = await MultiGet(
        Get(Digest, MergeDigests(node.digest for node in nodes)) for _, _, nodes in parts
    )
    fields: List[Dict[str, Any]] = [{} for _ in groups]
    for (i, kind, nodes), digest in zip(parts, merged):
        fields[i].update(_LAYER_PARTS[kind](nodes, digest))
    process_requests = [
        _LayerProcessRequest(
            entries=(),
            settings=request.settings,
            comment=_comment(group),
            description=f"{request.description}: layer {i + 1} ({_comment(group, limit=3)})",
            permissions=permissions.get(group[0]) if len(group) == 1 else None,
            **fields[i],
        )
        for i, group in enumerate(groups)
    ]
    custom = request.customisation
    if custom:
        small_files = await Get(
            Digest, CreateDigest([FileContent(path, data) for path, data in custom.files])
        )
        custom_files = await Get(Digest, MergeDigests([small_files, custom.generated]))
        custom_request = _LayerProcessRequest(
            content=custom_files,
            entries=custom.entries(),
            settings=request.settings,
            comment="customisation layer",
            description=f"{request.description}: customisation layer",
            commands=custom.commands,
            permissions=custom.permissions,
        )
        if request.single_layer and process_requests:
            (content_request,) = process_requests
            custom_request = await _joined(content_request, custom_request)
            process_requests = []
        process_requests.append(custom_request)
    layers = await MultiGet(Get(BuiltLayer, _LayerProcessRequest, r) for r in process_requests)
    # The customisation layer holds no node, unless the one content layer joined it.
    node_groups = [*groups, ()] if len(layers) > len(groups) else groups
    return BuiltLayers(
        tuple(dataclasses.replace(layer, nodes=tuple(group))
              for layer, group in zip(layers, node_groups))
    )


@dataclass(frozen=True)
class FilesLayerRequest:
    """A layer of `files`, at their image paths (an image's embedded SBOM)."""

    files: Digest
    settings: LayerSettings
    comment: str
    description: str


@rule(desc="Building an image layer of files", level=LogLevel.DEBUG)
async def files_layer(request: FilesLayerRequest) -> BuiltLayer:
    return await Get(
        BuiltLayer,
        _LayerProcessRequest(
            entries=(),
            settings=request.settings,
            comment=request.comment,
            description=request.description,
            content=request.files,
        ),
    )


async def _joined(
    content: _LayerProcessRequest, custom: _LayerProcessRequest
) -> _LayerProcessRequest:
    """One layer of both: the content layer's nodes and the customisation content."""
    if content.permissions is not None and custom.permissions is not None:
        raise InvalidImageContent(
            f"{custom.description}: the `permissions` of {content.permissions.address} and of "
            f"{custom.permissions.address} would apply to the one layer the image has room for: "
            "raise `max_layers`, or set them in one place."
        )
    return dataclasses.replace(
        custom,
        permissions=custom.permissions or content.permissions,
        content=await Get(Digest, MergeDigests([content.content, custom.content])),
        debs=content.debs,
        deb_files=content.deb_files,
        python_parts=content.python_parts,
        python_files=content.python_files,
        nars=content.nars,
        nar_files=content.nar_files,
        comment=f"{content.comment}, customisation",
        description=f"{content.description} and the customisation content",
    )


@rule(desc="Building an image layer", level=LogLevel.DEBUG)
async def build_layer(
    request: _LayerProcessRequest, tool: ImageTool, strata: StrataSubsystem
) -> BuiltLayer:
    settings = request.settings
    zstd: Optional[str] = None
    if settings.compression == "zstd":
        zstd = (await Get(ZstdBinary, ZstdBinaryRequest())).require("compression='zstd'")
    # The files reach the Process as chunks, each an immutable input: Pants writes a chunk to
    # disk once per pantsd and links it into every sandbox that needs it, so a one-file change
    # writes that file's chunk again, not every file of the layer.
    entries = await Get(DigestEntries, Digest, request.content)
    chunks = path_chunks(entries, lambda entry: entry.path)
    chunk_digests = await MultiGet(Get(Digest, CreateDigest(chunk)) for chunk in chunks)
    chunk_dirs = [f"{_ROOTFS}/{i:04d}" for i in range(len(chunks))]
    spec = LayerSpec(
        CoreLayerSettings(
            settings.mtime, settings.uid, settings.gid, settings.uname, settings.gname,
            settings.compression, zstd,
        ),
        parts=(
            # The executable bit as the Digest records it: in the sandbox, large files are
            # hardlinks into Pants' store, mode 0555 whatever they were.
            ("trees", tuple(
                Tree(d, "", tuple(e.path for e in chunk
                                  if isinstance(e, FileEntry) and e.is_executable))
                for d, chunk in zip(chunk_dirs, chunks)
            )),
            ("entries", request.entries),
            ("debs", tuple(Deb(f"{DEB_DIR}/{p}.deb", p) for p in request.debs)),
            *(
                (name, tuple(p for p in request.python_parts if isinstance(p, kind)))
                for kind, name in _PYTHON_SPEC_PARTS.items()
            ),
            ("nars", tuple(Nar(nar_path(path), path, nar_hash) for path, nar_hash in request.nars)),
        ),
        commands=request.commands,
        permissions=request.permissions.rules if request.permissions else None,
    )
    spec_json = json.dumps(spec.to_json(), sort_keys=True).encode()
    spec_digest = await Get(Digest, CreateDigest([FileContent("layer-spec.json", spec_json)]))
    input_digest = await Get(
        Digest,
        MergeDigests([tool.layer_digest, spec_digest, request.deb_files, request.python_files,
                      request.nar_files]),
    )
    layer_args = ("--spec", "layer-spec.json", "--out", _LAYER_OUT, "--paths", LAYER_PATHS)
    argv, env = tool.layer_argv(*layer_args), {}
    compile_for = sorted({p.version for p in request.python_parts
                          if not isinstance(p, Venv) and p.bytecode != "none"})
    if len(compile_for) > 1:
        raise ValueError(
            f"{request.description} holds Python code for CPython {' and '.join(compile_for)}, "
            "whose bytecode one layer Process cannot compile: raise the image's `max_layers` "
            "so that each venv gets layers of its own."
        )
    if compile_for:
        compiler = await Get(BytecodeCompiler, BytecodeCompilerRequest(compile_for[0]))
        argv, env = compiler.layer_argv(*layer_args), compiler.env()
    process = Process(
        argv=argv,
        env=env,
        input_digest=input_digest,
        immutable_input_digests=dict(zip(chunk_dirs, chunk_digests)),
        output_directories=(_LAYER_OUT,),
        output_files=(LAYER_PATHS,),
        description=request.description,
        level=LogLevel.INFO,
        cache_scope=(
            ProcessCacheScope.SUCCESSFUL if settings.reproducible
            else ProcessCacheScope.PER_SESSION
        ),
        remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
    )
    fallible = await Get(FallibleProcessResult, Process, process)
    if fallible.exit_code != 0 and request.permissions is not None:
        _check_permissions_matched(request.permissions, fallible.stderr.decode(errors="replace"))
    description = ProductDescription(process.description)
    result = await Get(
        ProcessResult, {fallible: FallibleProcessResult, description: ProductDescription}
    )
    out, paths = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([f"{_LAYER_OUT}/**"]))),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([LAYER_PATHS]))),
    )
    layer = await Get(Digest, RemovePrefix(out, _LAYER_OUT))
    metadata = await Get(DigestContents, DigestSubset(layer, PathGlobs(["layer.json"])))
    return BuiltLayer(layer, request.comment, metadata[0].content.decode(), paths=paths)


def _check_permissions_matched(permissions: LayerPermissions, stderr: str) -> None:
    """A rule that matched nothing fails the layer Process: an error naming the field."""
    if UNMATCHED in stderr:
        detail = stderr.strip().splitlines()[-1].split(": error: ", 1)[-1]
        raise InvalidFieldException(
            f"The `permissions` field of {permissions.address} is invalid: {detail}, which "
            f"holds {permissions.applies_to}."
        )


def _comment(group: List[str], limit: Optional[int] = None) -> str:
    shown = group if limit is None else group[:limit]
    more = "" if limit is None or len(group) <= limit else f", +{len(group) - limit} more"
    return ", ".join(shown) + more


def rules():
    return collect_rules()
