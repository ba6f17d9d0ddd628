"""From an image target's dependency closure to store nodes: a walk over the build graph that
hands each target to its kind of store node (`strata.rules.nodes`) and joins what they make."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Type

from pants.core.target_types import AssetSourceField
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestEntries, Directory, FileEntry, MergeDigests, SymlinkEntry
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    Dependencies,
    DependenciesRequest,
    InferDependenciesRequest,
    Target,
    Targets,
    ValidateDependenciesRequest,
)
from pants.engine.unions import UnionMembership
from pants.util.logging import LogLevel

from strata.core.graph.closure import (
    SYMLINK,
    PathConflict,
    check_paths,
    project_references,
    reach,
)
from strata.core.build.spec import Permission
from strata.rules.nodes import FileTree, RootLink, StoreNode, StoreNodes, StoreNodesRequest
from strata.target_types.image import OciImageDependenciesField, OciImageTarget
from strata.target_types.layer import OciLayerTarget, OciPermissionsField


@dataclass(frozen=True)
class LayerPermissions:
    """A target's `permissions` field (an `oci_image`'s or an `oci_layer`'s), for the layer
    Process that applies it: the rules, and whose they are and what they apply to, for errors."""

    address: str
    rules: Tuple[Permission, ...]
    applies_to: str


@dataclass(frozen=True)
class ImageClosure:
    nodes: Tuple[StoreNode, ...]
    permissions: Tuple[LayerPermissions, ...] = ()  # the `oci_layer` nodes' (node key: address)
    root_links: Tuple[RootLink, ...] = ()  # for the customisation layer, by path

    def graph(self) -> Dict[str, Tuple[str, ...]]:
        return {node.key: node.references for node in self.nodes}


@dataclass(frozen=True)
class ImageClosureRequest:
    address: Address
    dependencies: OciImageDependenciesField
    has_base: bool = False  # an image on a base may add no files of its own


class InvalidImageContent(Exception):
    """The closure cannot become an image (conflicting paths, empty content, ...)."""


_IMAGE = "<image>"


async def _walk(
    root: Dependencies, union_membership: UnionMembership
) -> Tuple[Dict[str, List[str]], Dict[str, Target]]:
    """Breadth-first over the whole closure, recording every dependency edge; `_IMAGE` stands for
    the image target itself."""
    edges: Dict[str, List[str]] = {}
    targets: Dict[str, Target] = {}
    roots = await Get(Targets, DependenciesRequest(root))
    edges[_IMAGE] = sorted(t.address.spec for t in roots)
    frontier = [t for t in roots]
    while frontier:
        fresh = []
        for tgt in frontier:
            if tgt.address.spec not in targets:
                targets[tgt.address.spec] = tgt
                fresh.append(tgt)
        fresh.sort(key=lambda t: t.address.spec)
        to_resolve = [t for t in fresh if not _certainly_without_dependencies(t, union_membership)]
        resolved = await MultiGet(
            Get(Targets, DependenciesRequest(t.get(Dependencies))) for t in to_resolve
        )
        deps_of = dict(zip((t.address.spec for t in to_resolve), resolved))
        frontier = []
        for tgt in fresh:
            tgt_deps = deps_of.get(tgt.address.spec, ())
            edges[tgt.address.spec] = sorted(d.address.spec for d in tgt_deps)
            frontier.extend(d for d in tgt_deps if d.address.spec not in targets)
    return edges, targets


def _certainly_without_dependencies(tgt: Target, union_membership: UnionMembership) -> bool:
    """A `file` or `resource` whose `dependencies` field is empty and to which no inference or
    validation rule applies: Pants' dependency resolution (`resolve_dependencies`) can only find
    nothing for it. Asking anyway costs one memoised request per file, which pantsd re-checks on
    every run: most of a no-op's time for an image of 20,000 files."""
    if not tgt.has_field(AssetSourceField):
        return False
    if tgt.get(Dependencies).value:
        return False
    inference = union_membership.get(InferDependenciesRequest)
    validation = union_membership.get(ValidateDependenciesRequest)
    return not any(member.infer_from.is_applicable(tgt) for member in inference) and not any(
        member.field_set_type.is_applicable(tgt) for member in validation
    )


def _kind_of(
    image: Address, tgt: Target, union_membership: UnionMembership
) -> Optional[Type[StoreNodesRequest]]:
    """The kind of store node the target is, if any (else it only passes references on)."""
    if isinstance(tgt, OciImageTarget):
        raise InvalidImageContent(
            f"{image} depends on the image {tgt.address}: images cannot contain other "
            "images. (Layering one image on another is the job of a base image.)"
        )
    kinds = [
        kind
        for kind in union_membership.get(StoreNodesRequest)
        if kind.is_applicable(tgt, union_membership)
    ]
    # A kind that specialises another (a packed PEX is a package) takes the target.
    kinds = [k for k in kinds if not any(o is not k and issubclass(o, k) for o in kinds)]
    if len(kinds) > 1:
        raise InvalidImageContent(
            f"{tgt.address} is of several store-node kinds ({', '.join(k.__name__ for k in kinds)})"
            ": each target must be of one kind. Make one kind subclass the other to take over "
            "its targets."
        )
    return kinds[0] if kinds else None


def _holds_dependencies(kind: Optional[Type[StoreNodesRequest]]) -> bool:
    return kind is not None and kind.holds_dependencies


async def _join(
    made: Sequence[StoreNodes],
    references: Dict[str, Sequence[str]],
    stand_ins: Dict[str, Tuple[str, ...]],
) -> Tuple[StoreNode, ...]:
    """The image's nodes, by key: content from several targets or kinds merged, references
    projected from the build graph added, and stand-ins replaced by the nodes they stand for."""
    by_key: Dict[str, List[StoreNode]] = {}
    for node in (node for m in made for node in m.nodes):
        by_key.setdefault(node.key, []).append(node)
    keys = sorted(by_key)
    for key in keys:
        kinds = sorted({type(node.kind).__name__ for node in by_key[key]})
        if len(kinds) > 1:
            raise InvalidImageContent(f"Store nodes of kinds {kinds} share the key {key}.")
    merged = await MultiGet(
        Get(Digest, MergeDigests(node.digest for node in by_key[k])) for k in keys
    )
    nodes = []
    for key, digest in zip(keys, merged):
        refs = {r for ref in references.get(key, ()) for r in stand_ins.get(ref, (ref,))}
        refs.update(ref for node in by_key[key] for ref in node.references)
        nodes.append(StoreNode(key, digest, tuple(sorted(refs)), by_key[key][0].kind))
    return tuple(nodes)


async def _check_paths(image: Address, nodes: Sequence[StoreNode]) -> None:
    """Two nodes may not place different content at one path."""
    trees = [node for node in nodes if isinstance(node.kind, FileTree)]
    all_entries = await MultiGet(Get(DigestEntries, Digest, node.digest) for node in trees)
    files: List[Tuple[str, str, str]] = []
    dirs: List[Tuple[str, str]] = []
    for node, entries in zip(trees, all_entries):
        add_path_claims(node.key, entries, files, dirs)
    try:
        check_paths(files, dirs, owned_paths(nodes))
    except PathConflict as e:
        raise InvalidImageContent(f"Cannot build {image}: {e}") from e


@dataclass(frozen=True)
class _ClosurePlan:
    """The closure's shape, from the build graph alone: what each kind is asked for (one request
    per node and kind) and the references between nodes. It is memoised apart from the content,
    so that a changed file re-runs only the requests of the node that holds it, not a walk over
    every target of the closure."""

    requests: Tuple[StoreNodesRequest, ...]
    references: Tuple[Tuple[str, Tuple[str, ...]], ...]
    permissions: Tuple[LayerPermissions, ...]


@rule(desc="Walking an image's dependency closure", level=LogLevel.DEBUG)
async def plan_image_closure(
    request: ImageClosureRequest, union_membership: UnionMembership
) -> _ClosurePlan:
    edges, targets = await _walk(request.dependencies, union_membership)
    kind_of = {a: _kind_of(request.address, targets[a], union_membership) for a in sorted(targets)}
    visible = reach(edges, _IMAGE, stop=lambda a: _holds_dependencies(kind_of[a])) - {_IMAGE}
    targets = {a: t for a, t in targets.items() if a in visible}
    edges = {a: ([] if _holds_dependencies(kind_of[a]) else [d for d in deps if d in visible])
             for a, deps in edges.items() if a in visible}
    node_of = _assign_nodes(edges, targets, kind_of)

    members: Dict[Tuple[str, str], List[Tuple[str, Target]]] = {}  # by (kind name, node)
    kind_named: Dict[str, Type[StoreNodesRequest]] = {}
    for address in sorted(targets):
        kind, node = kind_of[address], node_of[address]
        if kind is not None and node is not None:
            kind_named[kind.__name__] = kind
            members.setdefault((kind.__name__, node), []).append((node, targets[address]))
    references = project_references(edges, node_of)
    return _ClosurePlan(
        tuple(kind_named[name](request.address, tuple(members[name, node]))
              for name, node in sorted(members)),
        tuple((node, tuple(sorted(refs))) for node, refs in sorted(references.items())),
        tuple(
            LayerPermissions(address, tgt[OciPermissionsField].value, f"the content of {address}")
            for address, tgt in sorted(targets.items())
            if isinstance(tgt, OciLayerTarget) and tgt[OciPermissionsField].value
        ),
    )


@rule(desc="Projecting an image's dependency closure onto store nodes", level=LogLevel.DEBUG)
async def resolve_image_closure(request: ImageClosureRequest) -> ImageClosure:
    plan = await Get(_ClosurePlan, ImageClosureRequest, request)
    made = await MultiGet(Get(StoreNodes, StoreNodesRequest, r) for r in plan.requests)
    nodes = await _join(
        made, dict(plan.references), {k: v for m in made for k, v in m.stand_ins}
    )
    if not nodes and not request.has_base:
        raise InvalidImageContent(
            f"The `dependencies` of {request.address} produce no content: depend on `file`, "
            "`resource`, packageable (e.g. `pex_binary`) or `oci_layer` targets."
        )
    await _check_paths(request.address, nodes)
    keys = {node.key for node in nodes}
    for permissions in plan.permissions:
        if permissions.address not in keys:
            raise InvalidImageContent(
                f"The `permissions` field of {permissions.address} applies to its content, but "
                f"it has none in {request.address}: Debian packages and `python_venv`s keep "
                "layers of their own."
            )
    links = sorted({link for m in made for link in m.root_links}, key=lambda l: l.path)
    return ImageClosure(nodes, plan.permissions, tuple(links))


def owned_paths(nodes: Sequence[StoreNode]) -> List[Tuple[str, str]]:
    """(node, image path) of the paths nodes own whole (a Nix store path), for `check_paths`."""
    return [(node.key, path) for node in nodes for path in [node.kind.owned_path()] if path]


def add_path_claims(
    owner: str,
    entries: DigestEntries,
    files: List[Tuple[str, str, str]],
    directories: List[Tuple[str, str]],
) -> None:
    """What `owner` places at each path, for `check_paths`: a file's fingerprint covers all
    that its layer keeps (content and executable bit), a symlink's its target."""
    for entry in entries:
        if isinstance(entry, FileEntry):
            fingerprint = f"{entry.file_digest.fingerprint}:{int(entry.is_executable)}"
            files.append((owner, entry.path, fingerprint))
        elif isinstance(entry, SymlinkEntry):
            files.append((owner, entry.path, f"{SYMLINK}{entry.target}"))
        elif isinstance(entry, Directory):
            directories.append((owner, entry.path))


def _assign_nodes(
    edges: Dict[str, List[str]],
    targets: Dict[str, Target],
    kind_of: Dict[str, Optional[Type[StoreNodesRequest]]],
) -> Dict[str, Optional[str]]:
    """Which node holds each target's content: its kind's (a file's generator, a package itself)
    unless an `oci_layer` claims it (its closure, stopping at targets that hold their
    dependencies and at nested groups); anything else is a pass-through (None)."""
    def grouped(address: str) -> bool:
        kind = kind_of[address]
        return isinstance(targets[address], OciLayerTarget) or (
            kind is not None and not kind.groupable
        )

    node_of: Dict[str, Optional[str]] = {}
    for address in sorted(targets):
        tgt, kind = targets[address], kind_of[address]
        if isinstance(tgt, OciLayerTarget):
            node_of[address] = address
        else:
            node_of[address] = kind.node_key(tgt) if kind is not None else None

    claimed: Dict[str, str] = {}
    for layer in sorted(a for a in targets if isinstance(targets[a], OciLayerTarget)):
        members = reach(
            edges, layer, stop=lambda a: grouped(a) or _holds_dependencies(kind_of[a])
        )
        for member in sorted(members - {layer}):
            if grouped(member):
                continue
            if member in claimed and claimed[member] != layer:
                raise InvalidImageContent(
                    f"{member} is in two oci_layer targets, {claimed[member]} and {layer}: a "
                    "target's content can only live in one layer."
                )
            claimed[member] = layer
    for member, layer in claimed.items():
        if node_of[member] is not None:
            node_of[member] = layer
    return node_of


def rules():
    return collect_rules()

