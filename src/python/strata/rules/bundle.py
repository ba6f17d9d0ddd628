"""`oci_image_bundle`: several images in one docker-archive (dockerTools' mergeImages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.util_rules.environments import EnvironmentField
from pants.engine.fs import AddPrefix, Digest, MergeDigests, RemovePrefix
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from strata.core.oci.bundle import DuplicateRepoTag, check_repo_tags
from strata.core.oci.model import Image
from strata.rules.blobs import BlobStoreLocation, EnsureBlobs, EnsuredBlobs
from strata.rules.image.assembly import AssembleRequest, ImageInputs, read_image, spec_path
from strata.rules.image.field_set import output_file
from strata.rules.index import image_field_sets
from strata.rules.processes import OUTPUT_DIR, Execution
from strata.rules.tool import ImageTool
from strata.subsystems import StrataSubsystem
from strata.target_types.image import Compression, OciImageOutputPathField, OutputFormat
from strata.target_types.index import OciBundleImagesField

_DOCKER_ARCHIVE = OutputFormat.DOCKER_ARCHIVE.value


@dataclass(frozen=True)
class OciImageBundleFieldSet(PackageFieldSet):
    required_fields = (OciBundleImagesField,)

    environment: EnvironmentField
    images: OciBundleImagesField
    output_path: OciImageOutputPathField


def _summary(images: Tuple[Image, ...]) -> Tuple[str, ...]:
    """What `package` prints under the archive: each image's name, and the layers stored."""
    layers = [{layer.info["diff_id"] for layer in img.layers} for img in images]
    stored = set.union(*layers)
    shared = {diff_id for diff_id in stored if sum(diff_id in each for each in layers) > 1}
    return (
        *(f"Image: {img.repo_tag} ({len(img.layers)} layers)" for img in images),
        f"Layers stored: {len(stored)} ({len(shared)} shared by several images)",
    )


@rule(desc="Packaging an OCI image bundle", level=LogLevel.DEBUG)
async def package_oci_image_bundle(
    field_set: OciImageBundleFieldSet,
    tool: ImageTool,
    strata: StrataSubsystem,
    store: BlobStoreLocation,
    execution: Execution,
) -> BuiltPackage:
    """Each image's inputs as its docker-archive takes them (own layers uncompressed), under a
    directory of its own; one `bundle` Process streams them all into the archive."""
    field = field_set.images
    if not field.value:
        raise InvalidFieldException(
            f"The `{field.alias}` field of {field.address} is empty: a bundle holds at least one "
            "`oci_image` target."
        )
    field_sets = await image_field_sets(field, "a bundle")
    inputs = await MultiGet(
        Get(
            ImageInputs,
            AssembleRequest(fs, _DOCKER_ARCHIVE, "image.tar", Compression.NONE.value),
        )
        for fs in field_sets
    )
    images = []
    for each in inputs:
        images.append((await read_image(each))[1])
    try:
        check_repo_tags([(str(fs.address), img) for fs, img in zip(field_sets, images)])
    except DuplicateRepoTag as e:
        raise InvalidFieldException(
            f"The `{field.alias}` field of {field.address} lists two images of one "
            f"repository:tag: {e}. A loader would keep one of them under that name: give each "
            "its own `repository` or `tag`."
        ) from e
    dirs = [f"images/{i:03d}" for i in range(len(inputs))]
    prefixed = await MultiGet(
        Get(Digest, AddPrefix(each.content, d)) for each, d in zip(inputs, dirs)
    )
    output = output_file(field_set.output_path, _DOCKER_ARCHIVE)
    specs = [arg for d in dirs for arg in ("--spec", spec_path(d))]
    await Get(EnsuredBlobs, EnsureBlobs(tuple(b for each in inputs for b in each.blobs)))
    written = f"{OUTPUT_DIR}/{output}"
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv("bundle", "--out", written, *specs),
            input_digest=await Get(Digest, MergeDigests([tool.digest, *prefixed])),
            append_only_caches=store.caches_for(execution),
            output_files=(written,),
            description=f"Bundling {field_set.address}",
            level=LogLevel.INFO,
            cache_scope=(
                ProcessCacheScope.SUCCESSFUL if all(each.reproducible for each in inputs)
                else ProcessCacheScope.PER_SESSION
            ),
            remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
        ),
    )
    return BuiltPackage(
        await Get(Digest, RemovePrefix(result.output_digest, OUTPUT_DIR)),
        (BuiltPackageArtifact(output, extra_log_lines=_summary(tuple(images))),),
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, OciImageBundleFieldSet),
    ]
