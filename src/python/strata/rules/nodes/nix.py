"""`nix_closure` as store nodes: one node per store path of its closure, keyed by the store path,
referencing what Nix says it references, written by the layer Process from its NAR. The target
itself stands for its top-level paths."""

from __future__ import annotations

import dataclasses
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Tuple

from pants.engine.fs import EMPTY_DIGEST, Digest

from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, Target
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.core.build.deb import MERGED_USR_DIRS
from strata.core.nix.spec import NixClosure, NixPathInfo
from strata.rules.closure import ImageClosure, InvalidImageContent
from strata.rules.nix import (
    NIX_GCROOTS,
    NarRequest,
    NixClosureRequest,
    NixDbRequest,
    ResolvedNixClosure,
    RootLinks,
    RootLinksRequest,
    StorePathNar,
)
from strata.rules.nodes import NodeKind, RootLink, StoreNode, StoreNodes, StoreNodesRequest
from strata.target_types.nix import NixClosureTarget, NixCopyToRootField, NixPathsToLinkField

if TYPE_CHECKING:
    from strata.rules.image.field_set import OciImageFieldSet


@dataclass(frozen=True)
class NixStorePath(NodeKind):
    """The digest holds the store path's NAR at `nar_path(info.path)`; `info` is what Nix
    registers for it (a Nix database in the image needs it)."""

    info: NixPathInfo

    def owned_path(self) -> str:
        return self.info.path.lstrip("/")


class NixNodesRequest(StoreNodesRequest):
    holds_dependencies = True  # its dependencies are the .nix files it is built from
    groupable = False  # its paths are nodes of their own, referencing each other as Nix says

    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        return isinstance(target, NixClosureTarget)


@rule(desc="Turning Nix store paths into store nodes", level=LogLevel.DEBUG)
async def nix_nodes(request: NixNodesRequest) -> StoreNodes:
    targets = [tgt for _, tgt in request.members]
    closures = await MultiGet(
        Get(ResolvedNixClosure, NixClosureRequest(tgt)) for tgt in targets
    )
    infos: Dict[str, NixPathInfo] = {}
    for resolved in closures:
        for info in resolved.closure.paths:
            infos.setdefault(info.path, info)
    paths = sorted(infos)
    nars = await MultiGet(Get(StorePathNar, NarRequest(path)) for path in paths)
    nodes = tuple(
        StoreNode(
            path,
            nar.digest,
            tuple(sorted(ref for ref in infos[path].references if ref != path)),
            NixStorePath(infos[path]),
        )
        for path, nar in zip(paths, nars)
    )
    links = await MultiGet(
        Get(RootLinks, RootLinksRequest(
            str(tgt.address), resolved.closure, tgt[NixPathsToLinkField].value or ()
        ))
        for tgt, resolved in zip(targets, closures)
        if tgt[NixCopyToRootField].value
    )
    stand_ins: Tuple[Tuple[str, Tuple[str, ...]], ...] = tuple(
        (key, resolved.closure.roots)
        for (key, _), resolved in zip(request.members, closures)
    )
    return StoreNodes(
        nodes, stand_ins, root_links=tuple(link for made in links for link in made.links)
    )


@dataclass(frozen=True)
class NixCustomisation:
    """What an image's Nix store paths add to its customisation layer: `copy_to_root` links and,
    for `include_nix_db`, GC roots, as (owner, path, target) claims, and the database's files."""

    symlinks: Tuple[Tuple[str, str, str], ...]
    generated: Digest


def nix_paths(closure: ImageClosure) -> List[NixPathInfo]:
    return [node.kind.info for node in closure.nodes if isinstance(node.kind, NixStorePath)]


async def nix_customisation(
    fs: OciImageFieldSet, closure: ImageClosure, merged_usr: bool, mtime: int
) -> NixCustomisation:
    usr_dirs = set(MERGED_USR_DIRS) if merged_usr else set()
    links: Dict[str, RootLink] = {}
    for link in closure.root_links:
        # Under merged-/usr, /bin is a symlink to usr/bin: the links go where it points.
        path = f"usr/{link.path}" if link.path.split("/")[0] in usr_dirs else link.path
        other = links.setdefault(path, dataclasses.replace(link, path=path))
        if other.target != link.target:
            raise InvalidImageContent(
                f"Cannot build {fs.address}: the `copy_to_root` of {other.owner} and of "
                f"{link.owner} both link /{path} ({other.target} and {link.target}): "
                "a top-level path may provide it for one `nix_closure` only."
            )
    symlinks = [(f"the `copy_to_root` field of {link.owner}", path, link.target)
                for path, link in sorted(links.items())]
    generated = EMPTY_DIGEST
    infos = nix_paths(closure)
    if fs.include_nix_db.value and infos:
        referenced = {ref for info in infos for ref in info.references if ref != info.path}
        roots = tuple(sorted(info.path for info in infos if info.path not in referenced))
        symlinks += [
            (f"the `include_nix_db` field of {fs.address}",
             f"{NIX_GCROOTS}/{posixpath.basename(root)}", root)
            for root in roots
        ]
        generated = await Get(Digest, NixDbRequest(NixClosure(roots, tuple(infos)), mtime))
    elif fs.include_nix_db.value:
        raise InvalidFieldException(
            f"The `include_nix_db` field of {fs.address} registers its Nix store paths, but it "
            "has none: depend on a `nix_closure`."
        )
    return NixCustomisation(tuple(symlinks), generated)


def rules():
    return [*collect_rules(), UnionRule(StoreNodesRequest, NixNodesRequest)]
