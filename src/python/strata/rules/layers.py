"""One cached Process per layer: popularity decides the groups, Strata's core tool writes them."""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Tuple, Type

from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
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
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from strata.core.build.compression import SUFFIXES
from strata.core.build.layer import STAMP
from strata.core.build.parts.entries import Entry
from strata.core.build.parts.trees import Tree
from strata.core.build.permissions import UNMATCHED
from strata.core.build.spec import Commands, LayerSpec
from strata.core.build.spec import LayerSettings as CoreLayerSettings
from strata.core.graph.layering import assign_layers, layer_comment
from strata.rules.blobs import EMITS, SANDBOX_PATH, BlobStoreLocation, StoredBlob
from strata.rules.chunks import path_chunks
from strata.rules.closure import ImageClosure, InvalidImageContent, LayerPermissions
from strata.rules.commands import NEEDS as COMMANDS_NEED
from strata.rules.nodes import NodeKind, StoreNode
from strata.rules.processes import Execution, run_process, stderr_text
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
_LAYER_SPEC = "layer-spec.json"
_EXPECTED = "expected"  # the emit Process's input: the layer.json whose blob it writes


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
    its kinds' root entries (the merged-/usr symlinks when Debian packages are in the image);
    `commands` (its build-time scripts) then change that content."""

    symlinks: Tuple[Tuple[str, str], ...]
    directories: Tuple[Tuple[str, int], ...]
    files: Tuple[Tuple[str, bytes], ...] = ()
    generated: Digest = EMPTY_DIGEST  # files made by other processes, at their image paths
    root_entries: Tuple[Entry, ...] = ()
    commands: Optional[Commands] = None
    permissions: Optional[LayerPermissions] = None

    def entries(self) -> Tuple[Entry, ...]:
        return (
            *self.root_entries,
            *(Entry.dir(p, m) for p, m in self.directories),
            *(Entry.symlink(p, t) for p, t in self.symlinks),
        )

    def __bool__(self) -> bool:
        return bool(
            self.symlinks
            or self.directories
            or self.files
            or self.generated != EMPTY_DIGEST
            or self.root_entries
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
    """A layer Process's output: `layer.json` (its blob is in the blob store: `blob`), and the
    nodes it holds; `paths`, the layer's path list (`strata.core.graph.image_files`), at
    `LAYER_PATHS`."""

    digest: Digest
    comment: str
    metadata: str  # layer.json, verbatim
    blob: Optional[StoredBlob]  # None: the blob is a file beside layer.json
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
    parts: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()  # the other nodes' layer-spec parts
    inputs: Digest = EMPTY_DIGEST  # the files their items name
    bytecode_for: FrozenSet[str] = frozenset()  # CPython versions to compile bytecode for
    commands: Optional[Commands] = None  # build-time scripts over the content
    permissions: Optional[LayerPermissions] = None


async def _node_layer_requests(
    request: LayersRequest, groups: List[List[str]], permissions: Dict[str, LayerPermissions]
) -> List[_LayerProcessRequest]:
    """Per layer of nodes: its files at image paths as its content; its other nodes by their
    kinds' layer-spec parts, their digests as its inputs."""
    by_key = {node.key: node for node in request.closure.nodes}
    by_kind: List[Dict[Type[NodeKind], List[StoreNode]]] = [{} for _ in groups]
    for i, group in enumerate(groups):
        for key in group:
            by_kind[i].setdefault(type(by_key[key].kind), []).append(by_key[key])
    merged = await MultiGet(
        Get(Digest, MergeDigests(
            node.digest for kind, nodes in kinds.items() if kind.at_image_paths == trees
            for node in nodes
        ))
        for kinds in by_kind for trees in (True, False)
    )
    process_requests = []
    for i, group in enumerate(groups):
        made = [kind.layer_parts([node.kind for node in nodes])
                for kind, nodes in by_kind[i].items() if not kind.at_image_paths]
        process_requests.append(_LayerProcessRequest(
            entries=(),
            settings=request.settings,
            comment=layer_comment(group),
            description=f"{request.description}: layer {i + 1} ({layer_comment(group, limit=3)})",
            content=merged[2 * i],
            parts=tuple(part for parts in made for part in parts.parts),
            inputs=merged[2 * i + 1],
            bytecode_for=frozenset(v for parts in made for v in parts.bytecode_for),
            permissions=permissions.get(group[0]) if len(group) == 1 else None,
        ))
    return process_requests


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
        parts=content.parts,
        inputs=content.inputs,
        bytecode_for=content.bytecode_for,
        comment=f"{content.comment}, customisation",
        description=f"{content.description} and the customisation content",
    )


@rule(desc="Building image layers", level=LogLevel.DEBUG)
async def build_layers(request: LayersRequest) -> BuiltLayers:
    # A node's permissions apply to its whole layer: it must be alone there.
    permissions = {p.address: p for p in request.closure.permissions}
    try:
        groups = assign_layers(request.closure.graph(), request.budget, alone=permissions)
    except ValueError as e:
        raise InvalidImageContent(
            f"{request.description}: {e}. Each `oci_layer` with `permissions` needs a layer of "
            "its own: raise `max_layers`."
        ) from e
    process_requests = await _node_layer_requests(request, groups, permissions)
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


def _layer_spec(
    request: _LayerProcessRequest, zstd: Optional[str], chunks: List[Tuple[str, Any]]
) -> LayerSpec:
    """The layer Process's spec: the content chunks (sandbox dir, entries) as `trees`, then
    the request's entries and its kinds' parts."""
    settings = request.settings
    return LayerSpec(
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
                for d, chunk in chunks
            )),
            ("entries", request.entries),
            *request.parts,
        ),
        commands=request.commands,
        permissions=request.permissions.rules if request.permissions else None,
    )


async def _layer_command(
    request: _LayerProcessRequest, tool: ImageTool
) -> Tuple[Tuple[str, ...], Dict[str, str]]:
    """The layer Process's argv and environment: the image tool's, or with Python bytecode
    to compile, the interpreter of that CPython version's."""
    layer_args = ("--spec", _LAYER_SPEC, "--out", _LAYER_OUT, "--paths", LAYER_PATHS)
    compile_for = sorted(request.bytecode_for)
    if len(compile_for) > 1:
        raise ValueError(
            f"{request.description} holds Python code for CPython {' and '.join(compile_for)}, "
            "whose bytecode one layer Process cannot compile: raise the image's `max_layers` "
            "so that each venv gets layers of its own."
        )
    if compile_for:
        compiler = await Get(BytecodeCompiler, BytecodeCompilerRequest(compile_for[0]))
        return compiler.layer_argv(*layer_args), compiler.env()
    return tool.layer_argv(*layer_args), {}


async def _built_layer(
    process: Process, output: Digest, comment: str, in_store: bool
) -> BuiltLayer:
    """The layer Process's output as a `BuiltLayer`: its layer.json, its path list, and, for a
    blob it put into the blob store (`in_store`), its descriptor and the Process that emits its
    bytes; else the blob is beside layer.json."""
    if not in_store:
        out, paths = await MultiGet(
            Get(Digest, DigestSubset(output, PathGlobs([f"{_LAYER_OUT}/*"]))),
            Get(Digest, DigestSubset(output, PathGlobs([LAYER_PATHS]))),
        )
        layer = await Get(Digest, RemovePrefix(out, _LAYER_OUT))
        contents = await Get(DigestContents, DigestSubset(layer, PathGlobs(["layer.json"])))
        return BuiltLayer(layer, comment, contents[0].content.decode(), None, paths=paths)
    out, paths, stamp = await MultiGet(
        Get(Digest, DigestSubset(output, PathGlobs([f"{_LAYER_OUT}/layer.json"]))),
        Get(Digest, DigestSubset(output, PathGlobs([LAYER_PATHS]))),
        Get(DigestContents, DigestSubset(output, PathGlobs([f"{_LAYER_OUT}/{STAMP}"]))),
    )
    layer = await Get(Digest, RemovePrefix(out, _LAYER_OUT))
    metadata = (await Get(DigestContents, Digest, layer))[0].content.decode()
    info = json.loads(metadata)
    expected = await Get(Digest, AddPrefix(layer, _EXPECTED))
    emit = dataclasses.replace(
        process,
        argv=(*process.argv, "--expect", f"{_EXPECTED}/layer.json"),
        input_digest=await Get(Digest, MergeDigests([process.input_digest, expected])),
        output_files=(),
        output_directories=(_LAYER_OUT,),
        description=f"{process.description}: {EMITS}",
    )
    blob = StoredBlob(
        info["digest"], info["blob_size"], process.description, emit,
        f"{_LAYER_OUT}/layer.tar{SUFFIXES[info['compression']]}",
        tuple(json.loads(stamp[0].content)) if stamp else (),
    )
    return BuiltLayer(layer, comment, metadata, blob, paths=paths)


@rule(desc="Building an image layer", level=LogLevel.DEBUG)
async def build_layer(
    request: _LayerProcessRequest,
    tool: ImageTool,
    strata: StrataSubsystem,
    store: BlobStoreLocation,
    execution: Execution,
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
    spec = _layer_spec(request, zstd, list(zip(chunk_dirs, chunks)))
    spec_json = json.dumps(spec.to_json(), sort_keys=True).encode()
    spec_digest = await Get(Digest, CreateDigest([FileContent(_LAYER_SPEC, spec_json)]))
    input_digest = await Get(
        Digest,
        MergeDigests([tool.layer_digest, spec_digest, request.inputs]),
    )
    argv, env = await _layer_command(request, tool)
    # Build-time commands run on this machine (`commands.NEEDS`). Under remote execution the
    # blob is an output, beside layer.json, wherever the Process runs: the Processes that read
    # it (an archive's `assemble`, an index's `layout-archive`) run on a remote worker, which
    # has no blob store, and get their blobs from their inputs.
    here = COMMANDS_NEED if request.commands else None
    in_store = not execution.remote
    process = Process(
        argv=(*argv, "--blob-store", SANDBOX_PATH) if in_store else argv,
        env=env,
        input_digest=input_digest,
        immutable_input_digests=dict(zip(chunk_dirs, chunk_digests)),
        append_only_caches=store.caches_for(execution),
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
    result = await run_process(
        process, partial(_unmatched_permissions, request.permissions), here=here
    )
    return await _built_layer(process, result.output_digest, request.comment, in_store)


def _unmatched_permissions(
    permissions: Optional[LayerPermissions], failed: FallibleProcessResult
) -> Optional[Exception]:
    """A rule that matched nothing fails the layer Process: an error naming the field."""
    stderr = stderr_text(failed)
    if permissions is None or UNMATCHED not in stderr:
        return None
    detail = stderr.splitlines()[-1].split(": error: ", 1)[-1]
    return InvalidFieldException(
        f"The `permissions` field of {permissions.address} is invalid: {detail}, which "
        f"holds {permissions.applies_to}."
    )


def rules():
    return collect_rules()
