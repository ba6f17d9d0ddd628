"""`pants package` for `oci_image`: the image in dist/, its SBOM documents moved beside it once
it is written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Tuple

from pants.base.build_root import BuildRoot
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.util_rules.distdir import DistDir
from pants.engine.fs import Digest, MergeDigests
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from strata.rules.image.assembly import (
    AssembleRequest,
    ImageInputs,
    assembled_with_facts,
    split_repo_tag,
)
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.sbom import Sbom, SbomRequest

@dataclass(frozen=True)
class PlaceSbom:
    """A log line of `package` that, as it is rendered, moves the image's SBOM documents from
    `pending` (a directory beside the image) to their names (`final`), so that they appear there
    only once the image is written.

    Pants 2.17.1's `package` goal (pants/core/goals/package.py) deletes every artifact's
    `relpath`, writes all packages' files in one `Workspace.write_digest`, which copies every
    file at once and in no order (the engine's `materialize_directory_children` joins them all)
    and on a failure (a full disk) leaves what it wrote, and only then, if that succeeded,
    renders each artifact's `extra_log_lines` with `str()`. That is the one point a plugin
    reaches after its files are written."""

    pending: str  # absolute paths
    final: Tuple[str, ...]

    def __str__(self) -> str:
        if os.path.isdir(self.pending):  # rendered once more (a second log of the line): moved
            for name in self.final:
                os.replace(os.path.join(self.pending, os.path.basename(name)), name)
            os.rmdir(self.pending)
        names = " and ".join(os.path.basename(name) for name in self.final)
        return f"Moved to {names}, beside the image, now that it is written."


@rule(desc="Packaging an OCI image", level=LogLevel.DEBUG)
async def package_oci_image(
    field_set: OciImageFieldSet, dist_dir: DistDir, build_root: BuildRoot
) -> BuiltPackage:
    output = field_set.output_file()
    request = AssembleRequest(field_set, field_set.output_format.value, output)
    image = await assembled_with_facts(request)
    meta = image.metadata
    artifacts = [
        BuiltPackageArtifact(
            output,
            extra_log_lines=(
                f"Image: {meta['repo_tag']}",
                f"Manifest digest: {meta['manifest_digest']}",
                f"Layers: {len(meta['layers'])}",
            ),
        )
    ]
    digest = image.output
    if field_set.sbom.value:
        # Written to a directory of their own, and moved beside the image once it is written
        # (PlaceSbom): a failed write (a full disk) leaves no SBOM claiming an image that is
        # not there. Pants deletes every artifact path before it writes: the old image's SBOM
        # and a failed run's pending directory.
        name = output[: -len(".tar")] if output.endswith(".tar") else output
        directory, base = os.path.split(name)
        pending = os.path.join(directory, f".{base}.sbom-pending")
        inputs = await Get(ImageInputs, AssembleRequest, request)
        sbom = await Get(
            Sbom,
            SbomRequest(
                inputs.sbom_sources, *split_repo_tag(meta["repo_tag"]), meta["manifest_digest"],
                os.path.join(pending, base), str(field_set.address),
            ),
        )
        final = tuple(os.path.join(directory, os.path.basename(path)) for path in sbom.files)
        in_dist = partial(os.path.join, build_root.path, str(dist_dir.relpath))
        artifacts.append(BuiltPackageArtifact(
            pending, extra_log_lines=(PlaceSbom(in_dist(pending), tuple(map(in_dist, final))),)
        ))
        artifacts.extend(BuiltPackageArtifact(path) for path in final)
        digest = await Get(Digest, MergeDigests([digest, sbom.digest]))
    return BuiltPackage(digest, tuple(artifacts))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, OciImageFieldSet)]
