"""Packages (`pex_binary`, `archive`, ...: whatever `pants package` builds) as store nodes: the
built package at its `output_path`. What a package is built from is inside it, so the walk
stops there."""

from __future__ import annotations

from typing import Tuple

from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.target_types import AssetSourceField
from pants.engine.fs import Digest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import FieldSetsPerTarget, FieldSetsPerTargetRequest, Target
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.rules.nodes import StoreNode, StoreNodes, StoreNodesRequest


class PackageNodesRequest(StoreNodesRequest):
    holds_dependencies = True

    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        # A file or resource is packageable too (`pants package` copies it): it is a file node.
        return not target.has_field(AssetSourceField) and any(
            field_set.is_applicable(target) for field_set in union_membership.get(PackageFieldSet)
        )


async def build_packages(request: PackageNodesRequest) -> Tuple[Digest, ...]:
    """Each member's package, built as `pants package` builds it."""
    field_sets = await Get(
        FieldSetsPerTarget,
        FieldSetsPerTargetRequest(PackageFieldSet, [tgt for _, tgt in request.members]),
    )
    built = await MultiGet(
        Get(BuiltPackage, EnvironmentAwarePackageRequest(for_target[0]))
        for for_target in field_sets.collection
    )
    return tuple(package.digest for package in built)


@rule(desc="Building packages for store nodes", level=LogLevel.DEBUG)
async def package_nodes(request: PackageNodesRequest) -> StoreNodes:
    digests = await build_packages(request)
    return StoreNodes(
        tuple(StoreNode(node, digest, ()) for (node, _), digest in zip(request.members, digests))
    )


def rules():
    return [*collect_rules(), UnionRule(StoreNodesRequest, PackageNodesRequest)]
