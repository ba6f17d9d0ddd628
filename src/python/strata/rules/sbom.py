"""Software bills of materials: what an image holds, from the closure Strata resolved.

Each store node is described once, as its kind says (`NodeKind.sbom`): by facts known in pantsd,
by a `describe` Process cached on the node's content (a .deb's control fields and copyright, a
distribution's metadata) or by its files' checksums (hashed here when small, else by that
Process); the documents are then written in-process by the core (`strata.core.sbom.documents`),
from those facts, the layers that hold each node and the base image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileEntry,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.internals.session import RunId
from pants.engine.process import Process, ProcessResult, ProcessResultMetadata
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from strata.core.oci.image import resolve_created
from strata.core.sbom.describe import describe_contents
from strata.core.sbom.documents import documents
from strata.core.sbom.spec import SbomSpec
from strata.rules.base import BASE_DIR, BaseImage
from strata.rules.layers import BuiltLayer
from strata.rules.chunks import path_chunks
from strata.rules.nodes import DescribeFiles, DescribeProcess, KnownFacts, StoreNode
from strata.rules.tool import ImageTool

logger = logging.getLogger(__name__)

SPDX_SUFFIX = ".spdx.json"
CYCLONEDX_SUFFIX = ".cdx.json"
_FACTS = "facts.json"
_NODE_DIR = "node"


@dataclass(frozen=True)
class SbomSources:
    """What an image's SBOM is made of: its nodes, its own layers (bottom first, each naming
    the nodes it holds), its base, and its config's facts."""

    nodes: Tuple[StoreNode, ...]
    layers: Tuple[BuiltLayer, ...]
    base: Optional[BaseImage]
    created: str
    platform: FrozenDict[str, str]


@dataclass(frozen=True)
class SbomRequest:
    """The SBOM of the image `sources` describe, `repository:tag`, as `<output>.spdx.json` and
    `<output>.cdx.json`. `manifest_digest` is None for the SBOM the image itself holds, which
    cannot know it (nor a tag derived from its content): its identity then derives from the
    layers' diff_ids."""

    sources: SbomSources
    repository: str
    tag: Optional[str]
    manifest_digest: Optional[str]
    output: str
    description: str


@dataclass(frozen=True)
class Sbom:
    digest: Digest
    files: Tuple[str, str]


@dataclass(frozen=True)
class _DescribeRequest:
    node: StoreNode


@dataclass(frozen=True)
class _NodeFacts:
    # `describe`'s FACTS.json; None: the node is not a component (a venv's skeleton).
    facts: Optional[str]


@dataclass(frozen=True)
class NodesFactsRequest:
    """The facts of an image's nodes: asked for by `package` and `publish` while the image is
    assembled, so that describing a changed node runs beside its layer Process, and again, from
    memory, by the SBOM."""

    nodes: Tuple[StoreNode, ...]


@dataclass(frozen=True)
class NodesFacts:
    facts: Tuple[_NodeFacts, ...]


def _wheel_path(paths: Tuple[str, ...]) -> Optional[str]:
    """A packed PEX's split wheel node holds one file, `<pex>/.deps/<wheel>`: a distribution."""
    if len(paths) == 1 and "/.deps/" in paths[0] and paths[0].endswith(".whl"):
        return paths[0]
    return None


# First-party nodes up to this size are hashed in pantsd, which holds their contents anyway;
# larger ones (a package's output) in a `describe` Process, which streams them.
_HASHED_IN_PANTSD = 4 * 1024 * 1024


@rule(desc="Describing an image's store nodes for the SBOM", level=LogLevel.DEBUG)
async def describe_nodes(request: NodesFactsRequest) -> NodesFacts:
    return NodesFacts(
        await MultiGet(Get(_NodeFacts, _DescribeRequest(node)) for node in request.nodes)
    )


def _said_once(result: ProcessResult, facts: str, run_id: RunId) -> None:
    """A describe Process's warnings, said once: when the node is first described (the SBOM
    itself keeps them)."""
    if result.metadata.source(run_id) == ProcessResultMetadata.Source.RAN:
        for warning in json.loads(facts)["warnings"]:
            logger.warning(f"SBOM: {warning}")


@dataclass(frozen=True)
class _TreeRequest:
    node: StoreNode
    how: DescribeFiles


@rule(desc="Describing a store node's files for the SBOM", level=LogLevel.DEBUG)
async def describe_tree_in_chunks(request: _TreeRequest, tool: ImageTool) -> _NodeFacts:
    """A large tree's checksums, chunk by chunk (`path_chunks`): each chunk an immutable input
    of a cached `describe` Process, so an edit describes its chunk again, not the whole node
    (which would copy every file of it into a sandbox and hash it twice, beside the layer). A
    rule of its own, apart from the RunId: merged once per change, not in every run. A tree's
    facts have no warnings to say."""
    node, how = request.node, request.how
    entries = await Get(DigestEntries, Digest, node.digest)
    inside = [e for e in entries if isinstance(e, FileEntry)
              and (not how.root or e.path.startswith(f"{how.root}/"))]
    chunks = path_chunks(inside, lambda entry: entry.path)
    if not chunks:
        return _NodeFacts(json.dumps(describe_contents(how.name, how.dest, ()).to_json()))
    digests = await MultiGet(Get(Digest, CreateDigest(chunk)) for chunk in chunks)
    tree = f"{_NODE_DIR}/{how.root}" if how.root else _NODE_DIR
    results = await MultiGet(
        Get(
            ProcessResult,
            Process(
                argv=tool.argv(
                    "describe", "--tree", tree, "--name", how.name,
                    *(("--dest", how.dest) if how.dest else ()), "--out", _FACTS,
                ),
                input_digest=tool.digest,
                immutable_input_digests={_NODE_DIR: digest},
                output_files=(_FACTS,),
                description=f"Describing {node.key} for the SBOM ({i + 1} of {len(chunks)})",
                level=LogLevel.DEBUG,
            ),
        )
        for i, digest in enumerate(digests)
    )
    contents = await MultiGet(Get(DigestContents, Digest, r.output_digest) for r in results)
    facts = [json.loads(content.content) for (content,) in contents]
    whole = dict(facts[0], files=sorted(f for each in facts for f in each["files"]))
    return _NodeFacts(json.dumps(whole))


@rule(desc="Describing a store node for the SBOM", level=LogLevel.DEBUG)
async def describe_node(request: _DescribeRequest, tool: ImageTool, run_id: RunId) -> _NodeFacts:
    node = request.node
    digest = node.digest
    how = node.kind.sbom(node.key)
    if how is None:
        return _NodeFacts(None)
    if isinstance(how, KnownFacts):
        return _NodeFacts(json.dumps(how.facts.to_json()))
    if isinstance(how, DescribeProcess):
        args = how.args
    else:
        entries = await Get(DigestEntries, Digest, digest)
        files = [e for e in entries if isinstance(e, FileEntry)]
        wheel = _wheel_path(tuple(e.path for e in files)) if how.wheel_file else None
        if wheel is None and sum(e.file_digest.serialized_bytes_length for e in files) <= (
            _HASHED_IN_PANTSD
        ):
            contents = await Get(DigestContents, Digest, digest)
            facts = describe_contents(
                how.name, how.dest,
                ((os.path.relpath(c.path, how.root or "."), c.content) for c in contents),
            )
            return _NodeFacts(json.dumps(facts.to_json()))
        if wheel is None:
            return await Get(_NodeFacts, _TreeRequest(node, how))
        if not how.root:
            digest = await Get(Digest, AddPrefix(digest, _NODE_DIR))
        args = ("--wheel", f"{how.root or _NODE_DIR}/{wheel}")
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv("describe", *args, "--out", _FACTS),
            input_digest=await Get(Digest, MergeDigests([tool.digest, digest])),
            output_files=(_FACTS,),
            description=f"Describing {node.key} for the SBOM",
            level=LogLevel.DEBUG,
        ),
    )
    (content,) = await Get(DigestContents, Digest, result.output_digest)
    facts = content.content.decode()
    _said_once(result, facts, run_id)
    return _NodeFacts(facts)


async def _base_entry(base: BaseImage) -> dict:
    """The base image as the spec names it: its manifest digest, its layers and the SBOMs
    attached to it."""
    info, sboms = await MultiGet(
        Get(DigestContents, DigestSubset(
            base.digest, PathGlobs([f"{BASE_DIR}/base.json", f"{BASE_DIR}/config.json"])
        )),
        Get(DigestContents, Digest, base.sboms),
    )
    files = {c.path: json.loads(c.content) for c in info}
    return {
        "name": base.name,
        "digest": files[f"{BASE_DIR}/base.json"]["manifest_digest"],
        "layers": list(files[f"{BASE_DIR}/config.json"].get("rootfs", {}).get("diff_ids", [])),
        "documents": [json.loads(c.content) for c in sorted(sboms, key=lambda c: c.path)],
    }


@rule(desc="Writing an image's SBOM", level=LogLevel.DEBUG)
async def image_sbom(request: SbomRequest) -> Sbom:
    sources = request.sources
    facts = (await Get(NodesFacts, NodesFactsRequest(sources.nodes))).facts
    layer_of: Dict[str, int] = {
        key: i for i, layer in enumerate(sources.layers) for key in layer.nodes
    }
    by_key = {node.key: node for node in sources.nodes}
    described = {node.key for node, f in zip(sources.nodes, facts) if f.facts is not None}
    components = [
        {
            "node": node.key,
            "layer": layer_of.get(node.key),
            "depends": sorted(_component_references(node.key, by_key, described)),
            "facts": json.loads(f.facts),
        }
        for node, f in zip(sources.nodes, facts)
        if f.facts is not None
    ]
    diff_ids = [json.loads(layer.metadata)["diff_id"] for layer in sources.layers]
    bases = [await _base_entry(sources.base)] if sources.base is not None else []
    seed = request.manifest_digest or "sha256:" + hashlib.sha256(
        json.dumps([b["layers"] for b in bases] + diff_ids).encode()
    ).hexdigest()
    spec = SbomSpec.from_json(
        {
            "subject": {"name": request.repository, "tag": request.tag,
                        "digest": request.manifest_digest, "seed": seed},
            "created": resolve_created(sources.created),
            "platform": {"variant": None, **dict(sources.platform)},
            "layers": [
                {"diff_id": diff_id, "comment": layer.comment}
                for diff_id, layer in zip(diff_ids, sources.layers)
            ],
            "components": sorted(components, key=lambda c: c["node"]),
            "bases": bases,
            "warnings": [],
        }
    )
    spdx, cyclonedx = documents(spec)
    files = (f"{request.output}{SPDX_SUFFIX}", f"{request.output}{CYCLONEDX_SUFFIX}")
    digest = await Get(
        Digest, CreateDigest([FileContent(files[0], spdx), FileContent(files[1], cyclonedx)])
    )
    return Sbom(digest, files)


def _component_references(key: str, by_key: Dict[str, StoreNode], described: set) -> set:
    """The components a node depends on: its references, through nodes that are not components
    themselves (a venv's skeleton references its distributions)."""
    seen, found, todo = {key}, set(), list(by_key[key].references)
    while todo:
        ref = todo.pop()
        if ref in seen or ref not in by_key:
            continue
        seen.add(ref)
        if ref in described:
            found.add(ref)
        else:
            todo.extend(by_key[ref].references)
    return found


def rules():
    return collect_rules()
