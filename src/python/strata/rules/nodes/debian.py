"""`debian_packages` as store nodes: one node per locked package of the image's architecture,
referencing the packages it depends on, written by the layer Process from its `.deb`. The target
itself stands for the packages it requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, Target
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.core.debian.architectures import debian_architecture
from strata.rules.closure import InvalidImageContent
from strata.rules.debian import DebianClosure, DebianClosureRequest, node_key
from strata.rules.nodes import NodeKind, StoreNode, StoreNodes, StoreNodesRequest, image_platform_of
from strata.target_types.debian import DebianPackagesTarget


@dataclass(frozen=True)
class DebianPackage(NodeKind):
    """The digest holds the package's `.deb` at `debs/<package>.deb`."""

    package: str


class DebianNodesRequest(StoreNodesRequest):
    holds_dependencies = True
    groupable = False  # its packages are nodes of their own, referencing each other as locked

    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        return isinstance(target, DebianPackagesTarget)


@rule(desc="Turning locked Debian packages into store nodes", level=LogLevel.DEBUG)
async def debian_nodes(request: DebianNodesRequest) -> StoreNodes:
    platform = await image_platform_of(request)
    go_arch = platform["architecture"]
    try:
        arch = debian_architecture(go_arch, platform.get("variant"))
    except ValueError as e:
        raise InvalidFieldException(
            f"The `architecture` field of {request.image} is {go_arch!r}, but the image holds "
            f"Debian packages ({', '.join(tgt.address.spec for _, tgt in request.members)}): "
            f"{e}."
        ) from e
    closures = await MultiGet(
        Get(DebianClosure, DebianClosureRequest(tgt, arch)) for _, tgt in request.members
    )
    nodes: Dict[str, StoreNode] = {}
    for closure in closures:
        for deb in closure.nodes:
            node = StoreNode(node_key(deb.package), deb.digest, deb.depends,
                             DebianPackage(deb.package))
            if nodes.setdefault(node.key, node) != node:
                raise InvalidImageContent(
                    f"{request.image} gets two different builds of the Debian package "
                    f"{deb.package} from its `debian_packages` targets: lock them together."
                )
    stand_ins = zip((key for key, _ in request.members), (c.requested for c in closures))
    return StoreNodes(tuple(nodes.values()), tuple(stand_ins))


def rules():
    return [*collect_rules(), UnionRule(StoreNodesRequest, DebianNodesRequest)]
