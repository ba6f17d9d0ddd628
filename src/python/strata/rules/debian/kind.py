"""`debian_packages` as store nodes: one node per locked package of the image's architecture,
referencing the packages it depends on, written by the layer Process from its `.deb`. The target
itself stands for the packages it requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

from pants.engine.addresses import Address
from pants.engine.fs import Digest, MergeDigests, RemovePrefix
from pants.engine.process import Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, Target
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from strata.core.debian.architectures import debian_architecture
from strata.core.debian.rootfs import merged_usr_entries
from strata.rules.closure import InvalidImageContent
from strata.core.debian.nodes import deb_path, debs_part, node_key
from strata.rules.debian.lock import DebianClosure, DebianClosureRequest
from strata.rules.nodes import (
    Customisation,
    CustomisationRequest,
    DescribeProcess,
    LayerParts,
    NodeKind,
    SbomDescription,
    StoreNode,
    StoreNodes,
    StoreNodesRequest,
    image_platform_of,
)
from strata.rules.processes import OUTPUT_DIR, run_process
from strata.rules.tool import ImageTool
from strata.target_types.debian import DebianPackagesTarget
from strata.target_types.image_customisation import OciCaCertificatesField


@dataclass(frozen=True)
class DebianPackage(NodeKind):
    """The digest holds the package's `.deb` at `debs/<package>.deb`."""

    package: str

    @classmethod
    def layer_parts(cls, kinds: Sequence[NodeKind]) -> LayerParts:
        return LayerParts((debs_part(kind.package for kind in kinds),))  # type: ignore

    def sbom(self, key: str) -> SbomDescription:
        return DescribeProcess(("--deb", deb_path(self.package)))


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


class DebianCustomisationRequest(CustomisationRequest):
    kind = DebianPackage


_CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


async def _ca_bundle(image: Address, nodes: Tuple[StoreNode, ...], tool: ImageTool) -> Digest:
    """/etc/ssl/certs/ca-certificates.crt, from the image's ca-certificates package."""
    package = next((n for n in nodes if n.kind == DebianPackage("ca-certificates")), None)
    if package is None:
        raise InvalidFieldException(
            f"The `ca_certificates` field of {image} needs the `ca-certificates` Debian "
            "package in the image: add it to one of its `debian_packages` targets."
        )
    out = f"{OUTPUT_DIR}/{_CA_BUNDLE}"  # not at `etc/`: a worker's own, on some workers
    result = await run_process(
        Process(
            argv=tool.argv("ca-bundle", "--deb", deb_path("ca-certificates"), "--out", out),
            input_digest=await Get(Digest, MergeDigests([tool.digest, package.digest])),
            output_files=(out,),
            description=f"Generating the CA bundle of {image}",
            level=LogLevel.INFO,
        )
    )
    return await Get(Digest, RemovePrefix(result.output_digest, OUTPUT_DIR))


@rule(desc="Adding what an image's Debian packages need on top", level=LogLevel.DEBUG)
async def debian_customisation(
    request: DebianCustomisationRequest, tool: ImageTool
) -> Customisation:
    """The merged-/usr root symlinks (the packages' files are under usr/), and for
    `ca_certificates`, /etc/ssl/certs/ca-certificates.crt from the ca-certificates package."""
    image = request.image
    generated: Tuple[Tuple[str, Digest], ...] = ()
    if image[OciCaCertificatesField].value:
        generated = ((f"the `ca_certificates` field of {image.address}",
                      await _ca_bundle(image.address, request.nodes, tool)),)
    return Customisation(
        entries=tuple(merged_usr_entries()) if request.nodes else (),
        entries_owner=f"the merged-/usr symlinks of {image.address} (it has Debian packages)",
        generated=generated,
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(StoreNodesRequest, DebianNodesRequest),
        UnionRule(CustomisationRequest, DebianCustomisationRequest),
    ]
