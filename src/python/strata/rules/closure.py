"""From an image target's dependency closure to store nodes: content, destination, references."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from pants.backend.python.target_types import PexLayout, PexLayoutField
from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.target_types import AssetSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.core.util_rules.stripped_source_files import StrippedSourceFiles
from pants.engine.addresses import Address
from pants.engine.fs import (
    EMPTY_DIGEST,
    CreateDigest,
    Digest,
    DigestEntries,
    Directory,
    FileEntry,
    MergeDigests,
    PathGlobs,
    Snapshot,
    SymlinkEntry,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    Dependencies,
    DependenciesRequest,
    FieldSetsPerTarget,
    FieldSetsPerTargetRequest,
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
from strata.core.graph.packed_pex import split_packed_pex
from strata.rules.debian import DebianClosure, DebianClosureRequest
from strata.rules.debian import node_key as debian_node_key
from strata.target_types import (
    DebianPackagesTarget,
    OciImageDependenciesField,
    OciImageTarget,
    OciLayerTarget,
)


@dataclass(frozen=True)
class StoreNode:
    """One unit of layer content: a stable key, its files at image paths, and its references."""

    key: str
    digest: Digest
    references: Tuple[str, ...]
    deb_package: Optional[str] = None  # a Debian package: `digest` holds debs/<package>.deb


@dataclass(frozen=True)
class ImageClosure:
    nodes: Tuple[StoreNode, ...]

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


@rule(desc="Projecting an image's dependency closure onto store nodes", level=LogLevel.DEBUG)
async def resolve_image_closure(
    request: ImageClosureRequest, union_membership: UnionMembership
) -> ImageClosure:
    edges, targets = await _walk(request.dependencies, union_membership)

    ordered = sorted(targets)
    package_field_sets = await Get(
        FieldSetsPerTarget,
        FieldSetsPerTargetRequest(PackageFieldSet, [targets[a] for a in ordered]),
    )
    packageable: Dict[str, PackageFieldSet] = {}
    for address, field_sets in zip(ordered, package_field_sets.collection):
        tgt = targets[address]
        if isinstance(tgt, OciImageTarget):
            raise InvalidImageContent(
                f"{request.address} depends on the image {address}: images cannot contain other "
                "images. (Layering one image on another is the job of a base image.)"
            )
        if field_sets and not tgt.has_field(AssetSourceField):
            packageable[address] = field_sets[0]

    # A package is a leaf: what it is built from is inside it, so the walk stops there.
    visible = reach(edges, _IMAGE, stop=lambda a: a in packageable) - {_IMAGE}
    targets = {a: t for a, t in targets.items() if a in visible}
    edges = {a: ([] if a in packageable else [d for d in deps if d in visible])
             for a, deps in edges.items() if a in visible}
    node_of = _assign_nodes(edges, targets, packageable)
    references = project_references(edges, node_of)

    # A debian_packages target stands for the packages it requests; its lock adds the packages'
    # own nodes, referencing each other as resolved.
    debian_addresses = sorted(a for a in targets if isinstance(targets[a], DebianPackagesTarget))
    debian = await MultiGet(
        Get(DebianClosure, DebianClosureRequest(targets[a])) for a in debian_addresses
    )
    roots_of = dict(zip(debian_addresses, (d.requested for d in debian)))
    references = {
        node: {r for ref in refs for r in roots_of.get(ref, (ref,))}
        for node, refs in references.items()
        if node not in roots_of
    }
    deb_nodes: Dict[str, StoreNode] = {}
    for closure in debian:
        for deb in closure.nodes:
            node = StoreNode(debian_node_key(deb.package), deb.digest, deb.depends, deb.package)
            if deb_nodes.setdefault(node.key, node) != node:
                raise InvalidImageContent(
                    f"{request.address} gets two different builds of the Debian package "
                    f"{deb.package} from its `debian_packages` targets: lock them together."
                )

    # Gather each node's files at their image paths, and build its packages. Files on disk are
    # globbed in one request per node, not hydrated target by target: a `files` generator can
    # hold thousands, and pantsd re-checks each memoised request on every run.
    assets: Dict[Tuple[str, bool], List[AssetSourceField]] = {}  # (node, uses source roots)
    packages: List[Tuple[str, PackageFieldSet]] = []
    for address in sorted(targets):
        tgt, node = targets[address], node_of[address]
        if tgt.has_field(AssetSourceField):
            assert node is not None
            field = tgt[AssetSourceField]
            assets.setdefault((node, field.uses_source_roots), []).append(field)
        elif address in packageable:
            assert node is not None
            packages.append((node, packageable[address]))
    groups = sorted(assets)
    on_disk: List[List[AssetSourceField]] = []
    downloads: List[Tuple[str, List[AssetSourceField]]] = []  # `http_source`s
    for group in groups:
        on_disk.append([f for f in assets[group] if isinstance(f.value, str)])
        remote = [f for f in assets[group] if not isinstance(f.value, str)]
        if remote:
            downloads.append((group[0], remote))
    snapshots = await MultiGet(
        Get(Snapshot, PathGlobs(sorted({f.file_path for f in fields}))) for fields in on_disk
    )
    for fields, snapshot in zip(on_disk, snapshots):
        present = set(snapshot.files)
        for field in fields:
            if field.file_path not in present:
                field.validate_resolved_files([])  # raises Pants' error naming target and field
    # Resources lose their source root, as in Python and JVM packages; files keep their paths.
    # An `http_source` goes through Pants' hydration, which downloads and verifies it.
    results = await MultiGet([
        *(Get(StrippedSourceFiles, SourceFiles(snapshot, () if rooted else snapshot.files))
          for (_, rooted), snapshot in zip(groups, snapshots)),
        *(Get(StrippedSourceFiles, SourceFilesRequest(
            fields, for_sources_types=(AssetSourceField,), enable_codegen=True))
          for _, fields in downloads),
        *(Get(BuiltPackage, EnvironmentAwarePackageRequest(field_set))
          for _, field_set in packages),
    ])
    owners = [
        *(node for node, _ in groups),
        *(node for node, _ in downloads),
        *(node for node, _ in packages),
    ]
    by_node: Dict[str, List[Digest]] = {}
    for node, result in zip(owners, results):
        digest = result.digest if isinstance(result, BuiltPackage) else result.snapshot.digest
        by_node.setdefault(node, []).append(digest)

    node_keys = sorted(by_node)
    merged = await MultiGet(Get(Digest, MergeDigests(by_node[k])) for k in node_keys)
    if not node_keys and not deb_nodes and not request.has_base:
        raise InvalidImageContent(
            f"The `dependencies` of {request.address} produce no content: depend on `file`, "
            "`resource`, packageable (e.g. `pex_binary`) or `oci_layer` targets."
        )

    # Split packed PEXes into per-wheel nodes; other nodes pass through as they are.
    nodes: List[StoreNode] = []
    all_entries = await MultiGet(Get(DigestEntries, Digest, d) for d in merged)
    split_requests: List[Tuple[str, CreateDigest]] = []
    path_claims: List[Tuple[str, str, str]] = []
    dir_claims: List[Tuple[str, str]] = []
    for key, digest, entries in zip(node_keys, merged, all_entries):
        add_path_claims(key, entries, path_claims, dir_claims)
        pex_root = _packed_pex_root(key, targets, packageable)
        if pex_root is None:
            nodes.append(StoreNode(key, digest, tuple(sorted(references.get(key, ())))))
            continue
        entry_at = {entry.path: entry for entry in entries}
        parts = split_packed_pex(key, pex_root, entry_at)
        for part_key, paths in parts.items():
            split_requests.append((part_key, CreateDigest(entry_at[p] for p in paths)))
        part_refs = tuple(sorted(k for k in parts if k != key))
        own_refs = tuple(sorted(set(references.get(key, ())) | set(part_refs)))
        nodes.append(StoreNode(key, EMPTY_DIGEST, own_refs))  # digest filled in below

    try:
        check_paths(path_claims, dir_claims)
    except PathConflict as e:
        raise InvalidImageContent(f"Cannot build {request.address}: {e}") from e

    split_digests = await MultiGet(Get(Digest, CreateDigest, req) for _, req in split_requests)
    split_by_key = {k: d for (k, _), d in zip(split_requests, split_digests)}
    final: List[StoreNode] = []
    for node in nodes:
        if node.key in split_by_key:
            final.append(StoreNode(node.key, split_by_key[node.key], node.references))
        else:
            final.append(node)
    for key in sorted(set(split_by_key) - {n.key for n in nodes}):
        final.append(StoreNode(key, split_by_key[key], ()))
    final.extend(deb_nodes.values())
    return ImageClosure(tuple(sorted(final, key=lambda n: n.key)))


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
    packageable: Dict[str, PackageFieldSet],
) -> Dict[str, Optional[str]]:
    """Which node holds each target's content: `oci_layer` groups claim their closure (stopping at
    packages' insides and nested groups), generated files belong to their generator's node,
    packages are their own node; anything else is a pass-through (None)."""
    node_of: Dict[str, Optional[str]] = {}
    for address in sorted(targets):
        tgt = targets[address]
        if isinstance(tgt, (OciLayerTarget, DebianPackagesTarget)):
            node_of[address] = address
        elif address in packageable:
            node_of[address] = address
        elif tgt.has_field(AssetSourceField):
            node_of[address] = tgt.address.maybe_convert_to_target_generator().spec
        else:
            node_of[address] = None

    claimed: Dict[str, str] = {}
    for layer in sorted(a for a in targets if isinstance(targets[a], OciLayerTarget)):
        members = reach(
            edges,
            layer,
            stop=lambda a: isinstance(targets[a], (OciLayerTarget, DebianPackagesTarget))
            or a in packageable,
        )
        for member in sorted(members - {layer}):
            if isinstance(targets[member], (OciLayerTarget, DebianPackagesTarget)):
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


def _packed_pex_root(
    key: str, targets: Dict[str, Target], packageable: Dict[str, PackageFieldSet]
) -> Optional[str]:
    tgt = targets.get(key)
    if tgt is None or key not in packageable or not tgt.has_field(PexLayoutField):
        return None
    if tgt[PexLayoutField].value != PexLayout.PACKED.value:
        return None
    return getattr(packageable[key], "output_path").value_or_default(file_ending="pex")


def rules():
    return collect_rules()

