"""`file`/`files`, `resource`/`resources` (and their `http_source`s) as store nodes.

Files keep their path from the build root; resources lose their source root, as in Python and
JVM packages; an `http_source` is downloaded and verified by Pants' hydration, then placed
likewise. The files of a generator share its node.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from pants.core.target_types import AssetSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.core.util_rules.stripped_source_files import StrippedSourceFiles
from pants.engine.fs import Digest, MergeDigests, PathGlobs, Snapshot
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Target
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.rules.chunks import path_chunks
from strata.rules.nodes import StoreNode, StoreNodes, StoreNodesRequest


class FileNodesRequest(StoreNodesRequest):
    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        return target.has_field(AssetSourceField)

    @classmethod
    def node_key(cls, target: Target) -> str:
        return target.address.maybe_convert_to_target_generator().spec


@rule(desc="Gathering files and resources into store nodes", level=LogLevel.DEBUG)
async def file_nodes(request: FileNodesRequest) -> StoreNodes:
    # Files on disk are globbed in a few requests per node, not hydrated target by target: a
    # `files` generator can hold thousands, and pantsd re-checks each memoised request on
    # every run.
    assets: Dict[Tuple[str, bool], List[AssetSourceField]] = {}  # (node, uses source roots)
    for node, tgt in request.members:
        field = tgt[AssetSourceField]
        assets.setdefault((node, field.uses_source_roots), []).append(field)
    groups = sorted(assets)
    on_disk: List[List[AssetSourceField]] = []
    downloads: List[Tuple[str, List[AssetSourceField]]] = []  # `http_source`s
    for group in groups:
        on_disk.append([f for f in assets[group] if isinstance(f.value, str)])
        remote = [f for f in assets[group] if not isinstance(f.value, str)]
        if remote:
            downloads.append((group[0], remote))
    # One request per path chunk (strata.rules.chunks): a changed file re-globs its chunk only.
    chunked = [path_chunks({f.file_path for f in fields}, str) for fields in on_disk]
    pending = list(await MultiGet(
        Get(Snapshot, PathGlobs(chunk)) for chunks in chunked for chunk in chunks
    ))
    parts: List[List[Snapshot]] = []
    for fields, chunks in zip(on_disk, chunked):
        parts.append(pending[: len(chunks)])
        del pending[: len(chunks)]
        present = {path for snapshot in parts[-1] for path in snapshot.files}
        for field in fields:
            if field.file_path not in present:
                field.validate_resolved_files([])  # raises Pants' error naming target and field
    globbed = await MultiGet(
        Get(Digest, MergeDigests(snapshot.digest for snapshot in snapshots)) for snapshots in parts
    )
    # Files keep their paths from the build root; resources lose their source roots.
    rooted = await MultiGet(
        Get(Snapshot, Digest, digest) for (_, roots), digest in zip(groups, globbed) if roots
    )
    stripped = iter(await MultiGet([
        *(Get(StrippedSourceFiles, SourceFiles(snapshot, ())) for snapshot in rooted),
        *(Get(StrippedSourceFiles, SourceFilesRequest(
            fields, for_sources_types=(AssetSourceField,), enable_codegen=True))
          for _, fields in downloads),
    ]))
    by_node: Dict[str, List[Digest]] = {}
    for (node, roots), digest in zip(groups, globbed):
        by_node.setdefault(node, []).append(next(stripped).snapshot.digest if roots else digest)
    for node, _ in downloads:
        by_node.setdefault(node, []).append(next(stripped).snapshot.digest)
    keys = sorted(by_node)
    merged = await MultiGet(Get(Digest, MergeDigests(by_node[k])) for k in keys)
    return StoreNodes(tuple(StoreNode(k, d, ()) for k, d in zip(keys, merged)))


def rules():
    return [*collect_rules(), UnionRule(StoreNodesRequest, FileNodesRequest)]
