"""One cached Process per layer: popularity decides the groups, Strata's core tool writes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from pants.core.util_rules.system_binaries import (
    BinaryPathRequest,
    BinaryPaths,
    BinaryPathTest,
)
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from strata import core as strata_core
from strata.core.layering import assign_layers
from strata.rules.closure import ImageClosure
from strata.subsystems import StrataSubsystem

_LAYER_OUT = "out"


# What the `layer` subcommand imports. Layer processes get only these modules, so a change to
# the image writers does not invalidate every cached layer.
_LAYER_MODULES = ("__init__.py", "__main__.py", "compression.py", "hashing.py", "layer.py",
                  "tarstream.py")


@dataclass(frozen=True)
class ImageTool:
    """Strata's core, as files to put in a sandbox, and the interpreter that runs it."""

    digest: Digest  # the whole core
    layer_digest: Digest  # just what writing a layer needs
    python: str

    def argv(self, *args: str) -> Tuple[str, ...]:
        # -E/-s: no user environment or site-packages may change the output or the cache key.
        return (self.python, "-E", "-s", "-B", "-m", "strata.core", *args)


@dataclass(frozen=True)
class ZstdBinary:
    path: str


@dataclass(frozen=True)
class ZstdBinaryRequest:
    pass


@rule(desc="Finding Strata's image tool", level=LogLevel.DEBUG)
async def find_image_tool(strata: StrataSubsystem) -> ImageTool:
    core_dir = Path(strata_core.__file__).parent
    package = FileContent("strata/__init__.py", b"")
    modules = {
        source.name: FileContent(f"strata/core/{source.name}", source.read_bytes())
        for source in sorted(core_dir.glob("*.py"))
    }
    pythons = await Get(
        BinaryPaths,
        BinaryPathRequest(
            binary_name="python3",
            search_path=strata.python_search_paths,
            test=BinaryPathTest(
                ["-c", "import sys; assert sys.version_info >= (3, 9)"], fingerprint_stdout=False
            ),
        ),
    )
    python = pythons.first_path
    if python is None:
        raise EnvironmentError(
            "Strata needs CPython 3.9 or newer as `python3` in one of "
            f"{list(strata.python_search_paths)} ([strata].python_search_paths)."
        )
    digest, layer_digest = await MultiGet(
        Get(Digest, CreateDigest([package, *modules.values()])),
        Get(Digest, CreateDigest([package, *(modules[name] for name in _LAYER_MODULES)])),
    )
    return ImageTool(digest, layer_digest, python.path)


@rule(desc="Finding zstd", level=LogLevel.DEBUG)
async def find_zstd(_: ZstdBinaryRequest, strata: StrataSubsystem) -> ZstdBinary:
    paths = await Get(
        BinaryPaths,
        BinaryPathRequest(
            binary_name="zstd", search_path=strata.zstd_search_paths, test=BinaryPathTest(["-V"])
        ),
    )
    if paths.first_path is None:
        raise EnvironmentError(
            "compression='zstd' needs the `zstd` binary in one of "
            f"{list(strata.zstd_search_paths)} ([strata].zstd_search_paths)."
        )
    return ZstdBinary(paths.first_path.path)


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
    """What the image target itself adds on top: symlinks and empty directories."""

    symlinks: Tuple[Tuple[str, str], ...]
    directories: Tuple[Tuple[str, int], ...]

    def entries(self) -> List[dict]:
        return [
            *({"path": p, "type": "dir", "mode": m} for p, m in self.directories),
            *({"path": p, "type": "symlink", "target": t} for p, t in self.symlinks),
        ]


@dataclass(frozen=True)
class LayersRequest:
    closure: ImageClosure
    budget: int
    settings: LayerSettings
    customisation: CustomisationLayer
    description: str


@dataclass(frozen=True)
class BuiltLayer:
    """A layer Process's output: `layer.json` and the blob."""

    digest: Digest
    comment: str
    metadata: str  # layer.json, verbatim


@dataclass(frozen=True)
class BuiltLayers:
    layers: Tuple[BuiltLayer, ...]


@dataclass(frozen=True)
class _LayerProcessRequest:
    content: Digest
    entries_json: str
    settings: LayerSettings
    comment: str
    description: str


@rule(desc="Building image layers", level=LogLevel.DEBUG)
async def build_layers(request: LayersRequest) -> BuiltLayers:
    by_key = {node.key: node for node in request.closure.nodes}
    groups = assign_layers(request.closure.graph(), request.budget)
    contents = await MultiGet(
        Get(Digest, MergeDigests(by_key[key].digest for key in group)) for group in groups
    )
    process_requests = [
        _LayerProcessRequest(
            content=content,
            entries_json="[]",
            settings=request.settings,
            comment=_comment(group),
            description=f"{request.description}: layer {i + 1} ({_comment(group, limit=3)})",
        )
        for i, (group, content) in enumerate(zip(groups, contents))
    ]
    custom_entries = request.customisation.entries()
    if custom_entries:
        process_requests.append(
            _LayerProcessRequest(
                content=EMPTY_DIGEST,
                entries_json=json.dumps(custom_entries, sort_keys=True),
                settings=request.settings,
                comment="customisation layer",
                description=f"{request.description}: customisation layer",
            )
        )
    layers = await MultiGet(Get(BuiltLayer, _LayerProcessRequest, r) for r in process_requests)
    return BuiltLayers(tuple(layers))


@rule(desc="Building an image layer", level=LogLevel.DEBUG)
async def build_layer(
    request: _LayerProcessRequest, tool: ImageTool, strata: StrataSubsystem
) -> BuiltLayer:
    settings = request.settings
    zstd: Optional[str] = None
    if settings.compression == "zstd":
        zstd = (await Get(ZstdBinary, ZstdBinaryRequest())).path
    spec = {
        "settings": {
            "mtime": settings.mtime,
            "uid": settings.uid,
            "gid": settings.gid,
            "uname": settings.uname,
            "gname": settings.gname,
            "compression": settings.compression,
            "zstd": zstd,
        },
        "trees": [{"source": "rootfs", "dest": ""}],
        "entries": json.loads(request.entries_json),
    }
    spec_digest, rootfs = await MultiGet(
        Get(
            Digest,
            CreateDigest(
                [FileContent("layer-spec.json", json.dumps(spec, sort_keys=True).encode())]
            ),
        ),
        Get(Digest, AddPrefix(request.content, "rootfs")),
    )
    input_digest = await Get(Digest, MergeDigests([tool.layer_digest, spec_digest, rootfs]))
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv("layer", "--spec", "layer-spec.json", "--out", _LAYER_OUT),
            input_digest=input_digest,
            output_directories=(_LAYER_OUT,),
            description=request.description,
            level=LogLevel.INFO,
            cache_scope=(
                ProcessCacheScope.SUCCESSFUL if settings.reproducible
                else ProcessCacheScope.PER_SESSION
            ),
            remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
        ),
    )
    layer = await Get(Digest, RemovePrefix(result.output_digest, _LAYER_OUT))
    metadata = await Get(DigestContents, DigestSubset(layer, PathGlobs(["layer.json"])))
    return BuiltLayer(layer, request.comment, metadata[0].content.decode())


def _comment(group: List[str], limit: Optional[int] = None) -> str:
    shown = group if limit is None else group[:limit]
    more = "" if limit is None or len(group) <= limit else f", +{len(group) - limit} more"
    return ", ".join(shown) + more


def rules():
    return collect_rules()
