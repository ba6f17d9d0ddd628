"""Packed PEXes (`pex_binary(layout="packed")`) as store nodes: a package split into one node
per wheel, one for the bootstrap and one for the rest (`strata.core.graph.packed_pex`), so
that each wheel can get a layer of its own."""

from __future__ import annotations

from typing import List, Tuple

from pants.backend.python.target_types import PexLayout, PexLayoutField
from pants.core.goals.package import OutputPathField
from pants.engine.fs import CreateDigest, Digest, DigestEntries
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Target
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.core.graph.packed_pex import split_packed_pex
from strata.rules.nodes import StoreNode, StoreNodes, StoreNodesRequest
from strata.rules.nodes.packages import PackageNodesRequest, build_packages


class PackedPexNodesRequest(PackageNodesRequest):
    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        return (
            super().is_applicable(target, union_membership)
            and target.has_field(PexLayoutField)
            and target[PexLayoutField].value == PexLayout.PACKED.value
        )


@rule(desc="Splitting packed PEXes into store nodes", level=LogLevel.DEBUG)
async def packed_pex_nodes(request: PackedPexNodesRequest) -> StoreNodes:
    digests = await build_packages(request)
    all_entries = await MultiGet(Get(DigestEntries, Digest, d) for d in digests)
    whole: List[StoreNode] = []
    parts: List[Tuple[str, CreateDigest, Tuple[str, ...]]] = []  # key, content, references
    for (node, tgt), digest, entries in zip(request.members, digests, all_entries):
        if node != tgt.address.spec:  # an `oci_layer` holds it: it stays whole, in that layer
            whole.append(StoreNode(node, digest, ()))
            continue
        pex_root = tgt[OutputPathField].value_or_default(file_ending="pex")
        entry_at = {entry.path: entry for entry in entries}
        split = split_packed_pex(node, pex_root, entry_at)
        others = tuple(sorted(key for key in split if key != node))
        for key, paths in split.items():
            content = CreateDigest(entry_at[path] for path in paths)
            parts.append((key, content, others if key == node else ()))
    part_digests = await MultiGet(Get(Digest, CreateDigest, content) for _, content, _ in parts)
    return StoreNodes(
        (*whole, *(StoreNode(key, d, refs) for (key, _, refs), d in zip(parts, part_digests)))
    )


def rules():
    return [*collect_rules(), UnionRule(StoreNodesRequest, PackedPexNodesRequest)]
