"""Store-node kinds as plug-ins: each kind turns its targets in an image's closure into nodes.

A kind is a `StoreNodesRequest` subclass, registered with `UnionRule(StoreNodesRequest, ...)`,
and a rule from it to `StoreNodes`, as Pants' docker backend asks each `DockerImageTagsRequest`
member for tags. `strata.rules.closure` walks the closure, gives each target to the one kind
that applies to it and joins what the kinds return into the image's node graph. Each node's
`kind` (a `NodeKind`) then says all the rest of the pipeline knows of it: its layer-spec parts,
its SBOM description and, through a `CustomisationRequest` member, what an image of such nodes
adds on top. A kind is one module: nothing outside it names the kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, FrozenSet, Optional, Sequence, Tuple, Type, Union

from pants.engine.addresses import Address
from pants.engine.environment import EnvironmentName
from pants.engine.fs import Digest
from pants.engine.rules import Get
from pants.engine.target import Target, WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionMembership, union

from strata.core.build.parts.entries import Entry
from strata.core.sbom.spec import PackageFacts
from strata.target_types.image import (
    OciArchitectureField,
    OciOsField,
    OciVariantField,
    image_platform,
)


@dataclass(frozen=True)
class LayerParts:
    """What some nodes of one kind, in one layer, make of its layer spec: (part name, items)
    pairs (`strata.core.build.spec.LayerSpec`), whose items name files of the nodes' digests, and the
    CPython versions whose bytecode the layer Process compiles for them."""

    parts: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    bytecode_for: FrozenSet[str] = frozenset()


@dataclass(frozen=True)
class KnownFacts:
    """A node the SBOM describes with facts known in pantsd (a Nix store path's name)."""

    facts: PackageFacts


@dataclass(frozen=True)
class DescribeProcess:
    """A node the SBOM describes by a `describe` Process over its digest, with these arguments
    (`--deb PATH`, `--wheel PATH`)."""

    args: Tuple[str, ...]


@dataclass(frozen=True)
class DescribeFiles:
    """First-party files, described by their checksums: at `root` in the node's digest ("": at
    their image paths), installed at `dest` in the image ("": where they are), as component
    `name`. `wheel_file`: a node of one `.whl` (a packed PEX's split wheel) is that wheel."""

    root: str
    name: str
    dest: str = ""
    wheel_file: bool = False


SbomDescription = Union[KnownFacts, DescribeProcess, DescribeFiles, None]


@dataclass(frozen=True)
class NodeKind:
    """A kind of store node, the whole of what the image pipeline knows of it: how its nodes
    become a layer's content (`layer_parts`), how the SBOM describes a node (`sbom`), and, by
    its `CustomisationRequest` member, what an image of its nodes adds on top. A subclass is
    one module, with the `StoreNodesRequest` that makes its nodes."""

    # The node's digest holds files at their image paths (a layer's trees, checked against the
    # other content), not inputs that a layer-spec part names.
    at_image_paths: ClassVar[bool] = False
    # An image of such nodes keeps its top layer for the customisation (nixpkgs' layering).
    keeps_top_layer: ClassVar[bool] = False

    def owned_path(self) -> Optional[str]:
        """An image path the node owns whole, where no other node may place anything."""
        return None

    @classmethod
    def layer_parts(cls, kinds: Sequence[NodeKind]) -> LayerParts:
        """The layer-spec parts that write the nodes of these kinds (one layer's, in order)."""
        raise NotImplementedError

    def sbom(self, key: str) -> SbomDescription:
        """How the SBOM describes node `key`; None: it is not a component (a venv's skeleton)."""
        raise NotImplementedError


@dataclass(frozen=True)
class FileTree(NodeKind):
    """The digest holds the node's files at their image paths."""

    at_image_paths = True

    @classmethod
    def layer_parts(cls, kinds: Sequence[NodeKind]) -> LayerParts:
        return LayerParts()  # the layer's trees hold them

    def sbom(self, key: str) -> SbomDescription:
        return DescribeFiles("", key, wheel_file=True)


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
    """A symlink a target asks the image's customisation layer for: `path` (relative image path)
    to `target`. `owner` is the target's address, `field` the field that asks for it and
    `owner_type` the target's alias (a `nix_closure`'s `copy_to_root`), for errors."""

    owner: str
    path: str
    target: str
    field: str
    owner_type: str


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


@dataclass(frozen=True)
class RequiredProgram:
    """A program the image must hold (a venv's interpreter): `path`, absolute, and the error
    when it does not, with `{problem}` where what was found instead goes."""

    path: str
    error: str


@dataclass(frozen=True)
class Customisation:
    """What an image's nodes of one kind add on top of them.

    `entries`: root entries (the merged-/usr symlinks and their directories), claimed by
    `entries_owner`; `symlinks`: (owner, path, target); `generated`: files made by Processes
    at their image paths, by owner; `entrypoint`: the command an image without an entrypoint of
    its own runs, and what it is, for errors ("its `python_venv`'s launcher"); `programs`: what
    the image must hold."""

    entries: Tuple[Entry, ...] = ()
    entries_owner: str = ""
    symlinks: Tuple[Tuple[str, str, str], ...] = ()
    generated: Tuple[Tuple[str, Digest], ...] = ()
    entrypoint: Optional[Tuple[Tuple[str, ...], str]] = None
    programs: Tuple[RequiredProgram, ...] = ()


@union(in_scope_types=[EnvironmentName])  # a generated file is a Process's output
@dataclass(frozen=True)
class CustomisationRequest:
    """What an image's nodes of one kind add to its customisation layer. A kind that adds
    anything registers a subclass naming its `kind` (`UnionRule(CustomisationRequest, ...)`)
    and a rule from it to `Customisation`; the image asks it when it holds nodes of that kind.
    The kind reads the image target's fields it owns (`ca_certificates`, `include_nix_db`)."""

    kind: ClassVar[Type[NodeKind]]

    image: Target  # the `oci_image`
    nodes: Tuple[StoreNode, ...]  # its nodes of `kind`
    mtime: int  # the layers' timestamp, in epoch seconds
