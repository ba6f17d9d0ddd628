"""Store-node kinds as plug-ins: each kind turns its targets in an image's closure into nodes.

A kind is a `StoreNodesRequest` subclass, registered with `UnionRule(StoreNodesRequest, ...)`,
and a rule from it to `StoreNodes`, as Pants' docker backend asks each `DockerImageTagsRequest`
member for tags. `strata.rules.closure` walks the closure, gives each target to the one kind
that applies to it and joins what the kinds return into the image's node graph;
`strata.rules.layers` writes each node by the type of its `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.environment import EnvironmentName
from pants.engine.fs import Digest
from pants.engine.rules import Get
from pants.engine.target import Target, WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionMembership, union

from strata.target_types.image import (
    OciArchitectureField,
    OciOsField,
    OciVariantField,
    image_platform,
)


@dataclass(frozen=True)
class NodeKind:
    """How a layer Process receives a node's digest: `strata.rules.layers` has one entry per
    subclass."""

    def owned_path(self) -> Optional[str]:
        """An image path the node owns whole, where no other node may place anything."""
        return None


@dataclass(frozen=True)
class FileTree(NodeKind):
    """The digest holds the node's files at their image paths."""


@dataclass(frozen=True)
class StoreNode:
    """One unit of layer content: a stable key, its content, and the nodes it references."""

    key: str
    digest: Digest
    references: Tuple[str, ...]
    kind: NodeKind = FileTree()


@union(in_scope_types=[EnvironmentName])  # building a package needs one
@dataclass(frozen=True)
class StoreNodesRequest:
    """The targets of one kind in an image's closure that one node holds, each with that node's
    key: asked node by node, so that a changed file re-runs only its node's request."""

    image: Address
    members: Tuple[Tuple[str, Target], ...]

    # The targets hold what they depend on (a package is built from it): the walk stops there.
    holds_dependencies: ClassVar[bool] = False
    # An `oci_layer` depending on such a target takes its content into the layer's node.
    groupable: ClassVar[bool] = True

    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        """Whether the target is of this kind. A kind that subclasses another (a packed PEX is
        a package) takes the targets both apply to."""
        raise NotImplementedError

    @classmethod
    def node_key(cls, target: Target) -> str:
        """The node that holds the target's content, unless an `oci_layer` takes it."""
        return target.address.spec


@dataclass(frozen=True)
class RootLink:
    """A symlink a target asks the image's customisation layer for (a `nix_closure`'s
    `copy_to_root`): `path` (relative image path) to `target`; `owner` names the target."""

    owner: str
    path: str
    target: str


@dataclass(frozen=True)
class StoreNodes:
    """What one kind makes of its targets: nodes (a key may come from several targets, and
    from other kinds: their content is merged), the targets that stand for other nodes
    (a `debian_packages` target for the packages it requests) by node key, and the symlinks
    its targets ask the customisation layer for."""

    nodes: Tuple[StoreNode, ...]
    stand_ins: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    root_links: Tuple[RootLink, ...] = ()


async def image_platform_of(request: StoreNodesRequest) -> Dict[str, str]:
    """The platform (`os`, `architecture`, normalised `variant` when set) of the image a kind's
    nodes are for: Debian packages and wheels are that platform's."""
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.image, description_of_origin="an image's store nodes"),
    )
    image = wrapped.target
    return image_platform(
        image[OciArchitectureField].value, image[OciOsField].value, image[OciVariantField].value
    )
