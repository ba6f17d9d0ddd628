"""`nix_closure` as store nodes: one node per store path of its closure, keyed by the store path,
referencing what Nix says it references, written by the layer Process from its NAR. The target
itself stands for its top-level paths."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

from pants.engine.fs import Digest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, Target
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.core.build.parts.nars import Nar
from strata.core.nix.spec import NixClosure, NixPathInfo
from strata.core.sbom.packages import nix_facts
from strata.rules.nix.closure import (
    NIX_GCROOTS,
    NarRequest,
    NixClosureRequest,
    NixDbRequest,
    ResolvedNixClosure,
    RootLinks,
    RootLinksRequest,
    StorePathNar,
    nar_path,
)
from strata.rules.nodes import (
    Customisation,
    CustomisationRequest,
    KnownFacts,
    LayerParts,
    NodeKind,
    SbomDescription,
    StoreNode,
    StoreNodes,
    StoreNodesRequest,
)
from strata.target_types.image_customisation import OciIncludeNixDbField
from strata.target_types.nix import NixClosureTarget, NixCopyToRootField, NixPathsToLinkField


@dataclass(frozen=True)
class NixStorePath(NodeKind):
    """The digest holds the store path's NAR at `nar_path(info.path)`; `info` is what Nix
    registers for it (a Nix database in the image needs it)."""

    info: NixPathInfo

    # nixpkgs' `buildLayeredImage` always keeps the top layer for the customisation.
    keeps_top_layer = True

    def owned_path(self) -> str:
        return self.info.path.lstrip("/")

    @classmethod
    def layer_parts(cls, kinds: Sequence[NodeKind]) -> LayerParts:
        infos = sorted((kind.info for kind in kinds), key=lambda info: info.path)  # type: ignore
        return LayerParts(
            (("nars", tuple(Nar(nar_path(i.path), i.path, i.nar_hash) for i in infos)),)
        )

    def sbom(self, key: str) -> SbomDescription:
        return KnownFacts(nix_facts(self.info.path))


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


class NixCustomisationRequest(CustomisationRequest):
    kind = NixStorePath


@rule(desc="Registering an image's Nix store paths", level=LogLevel.DEBUG)
async def nix_customisation(request: NixCustomisationRequest) -> Customisation:
    """`include_nix_db`: a Nix database registering the image's store paths, and GC roots for
    its top-level ones, as dockerTools' `includeNixDB` makes them."""
    image = request.image
    if not image[OciIncludeNixDbField].value:
        return Customisation()
    owner = f"the `include_nix_db` field of {image.address}"
    infos = [node.kind.info for node in request.nodes]  # type: ignore[attr-defined]
    if not infos:
        raise InvalidFieldException(
            f"The `include_nix_db` field of {image.address} registers its Nix store paths, but "
            "it has none: depend on a `nix_closure`."
        )
    referenced = {ref for info in infos for ref in info.references if ref != info.path}
    roots = tuple(sorted(info.path for info in infos if info.path not in referenced))
    database = await Get(
        Digest, NixDbRequest(NixClosure(roots, tuple(infos)), request.mtime)
    )
    return Customisation(
        symlinks=tuple(
            (owner, f"{NIX_GCROOTS}/{posixpath.basename(root)}", root) for root in roots
        ),
        generated=((owner, database),),
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(StoreNodesRequest, NixNodesRequest),
        UnionRule(CustomisationRequest, NixCustomisationRequest),
    ]
