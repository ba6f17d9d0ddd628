"""`pants package` for `debian_registry`: its server, an executable PEX, in dist/."""

from __future__ import annotations

import os

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.util_rules.distdir import DistDir
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from strata.rules.debian.registry import DebianRegistryFieldSet, DebianRegistryServer


@rule(desc="Packaging a debian_registry", level=LogLevel.DEBUG)
async def package_debian_registry(
    field_set: DebianRegistryFieldSet, dist_dir: DistDir
) -> BuiltPackage:
    server = await Get(DebianRegistryServer, DebianRegistryFieldSet, field_set)
    pex = os.path.join(str(dist_dir.relpath), field_set.output_file())
    start = f"Start it: {pex} --listen HOST:PORT --cache-dir DIR"
    return BuiltPackage(
        server.pex.digest, (BuiltPackageArtifact(field_set.output_file(), (start,)),)
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, DebianRegistryFieldSet)]
