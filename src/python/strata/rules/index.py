"""`oci_image_index`: a multi-platform image, composed from its images' OCI layouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.util_rules.environments import EnvironmentField
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, SpecialCasedDependencies, Targets
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from strata.core.errors import InvalidInput
from strata.core.oci import platforms
from strata.core.oci.image import digest_hex, sha256_digest
from strata.core.oci.index import DuplicatePlatform, index_layout
from strata.core.oci.layout import OCI_LAYOUT
from strata.rules.blobs import BlobStoreLocation
from strata.rules.image.assembly import AssembledImage, AssembleRequest, Blobs
from strata.rules.image.field_set import OciImageFieldSet, output_file
from strata.rules.processes import OUTPUT_DIR, Execution
from strata.rules.tool import ImageTool
from strata.subsystems import StrataSubsystem
from strata.target_types.image import (
    OciImageOutputPathField,
    OciImageTarget,
    OciRepositoryField,
    OutputFormat,
)
from strata.target_types.index import (
    OciIndexImagesField,
    OciIndexOutputFormatField,
    OciIndexTagField,
)

_ARCHIVE_LAYOUT = "index-layout"


@dataclass(frozen=True)
class OciImageIndexFieldSet(PackageFieldSet):
    required_fields = (OciIndexImagesField,)

    environment: EnvironmentField
    images: OciIndexImagesField
    repository: OciRepositoryField
    tag: OciIndexTagField
    output_format: OciIndexOutputFormatField
    output_path: OciImageOutputPathField


@dataclass(frozen=True)
class IndexLayoutRequest:
    """The OCI layout at `output` of the index whose `images` field is given; `publish` builds
    each image with the layer compression it is pushed with."""

    images: OciIndexImagesField
    tag: Optional[str]
    output: str
    publish: bool = False
    blobs: Optional[Blobs] = None  # None: as `[strata].dist` says


@dataclass(frozen=True)
class IndexImage:
    platform: str  # os/arch[/variant]
    manifest_digest: str
    layers: Tuple[str, ...]  # blob digests


@dataclass(frozen=True)
class IndexLayout:
    digest: Digest  # the layout, under the request's `output`
    index_bytes: bytes  # the image index blob, which index.json names
    tag: str
    images: Tuple[IndexImage, ...]

    @property
    def index_digest(self) -> str:
        return sha256_digest(self.index_bytes)


async def image_field_sets(
    field: SpecialCasedDependencies, holder: str
) -> Tuple[OciImageFieldSet, ...]:
    """The images an `images` field names; a target that is not an `oci_image` is an error
    naming it, the field and its target (`holder`: what the target is, e.g. "an index")."""
    targets = await Get(Targets, UnparsedAddressInputs, field.to_unparsed_address_inputs())
    for target in targets:
        if not isinstance(target, OciImageTarget):
            raise InvalidFieldException(
                f"The `{field.alias}` field of {field.address} names {target.address}, a "
                f"`{target.alias}` target: {holder} lists `{OciImageTarget.alias}` targets."
            )
    return tuple(OciImageFieldSet.create(target) for target in targets)


def _index_of(
    field: OciIndexImagesField, images: List[Tuple[str, bytes]], tag: Optional[str]
) -> Tuple[bytes, bytes, str]:
    """The core's `index_layout` of the images' own index.json, by address; its refusals as
    errors about the `images` field."""
    try:
        return index_layout(images, tag)
    except DuplicatePlatform as e:
        raise InvalidFieldException(
            f"The `{field.alias}` field of {field.address} lists two images of one platform: "
            f"{e}. An index holds one image per platform: give each its own `architecture` "
            "(or `variant`, `os`)."
        ) from e
    except InvalidInput as e:  # e.g. no image at all
        raise InvalidFieldException(f"The `{field.alias}` field of {field.address}: {e}.") from e


@rule(desc="Composing an OCI image index", level=LogLevel.DEBUG)
async def compose_index_layout(request: IndexLayoutRequest) -> IndexLayout:
    """Each image is composed as its own OCI layout at `output` (no copy of a blob); the index
    layout is the union of their blobs, stored once each, plus the index the core decides."""
    field = request.images
    field_sets = await image_field_sets(field, "an index")
    output = request.output
    images = await MultiGet(
        Get(
            AssembledImage,
            AssembleRequest(
                fs, OutputFormat.OCI.value, output,
                fs.publish_compression() if request.publish else None,
                request.blobs,
            ),  # fmt: skip
        )
        for fs in field_sets
    )
    indexes = await MultiGet(
        Get(DigestContents, DigestSubset(image.output, PathGlobs([f"{output}/index.json"])))
        for image in images
    )
    blobs = await MultiGet(
        Get(Digest, DigestSubset(image.output, PathGlobs([f"{output}/blobs/**"])))
        for image in images
    )
    index_bytes, index_json, tag = _index_of(
        field, [(str(fs.address), index[0].content) for fs, index in zip(field_sets, indexes)],
        request.tag,
    )
    own = await Get(
        Digest,
        CreateDigest(
            [
                FileContent(f"{output}/blobs/sha256/{digest_hex(sha256_digest(index_bytes))}",
                            index_bytes),
                FileContent(f"{output}/index.json", index_json),
                FileContent(f"{output}/oci-layout", OCI_LAYOUT),
            ]
        ),
    )
    layout = await Get(Digest, MergeDigests([*blobs, own]))
    return IndexLayout(
        layout,
        index_bytes,
        tag,
        tuple(
            IndexImage(
                platforms.describe(fs.platform()),
                image.metadata["manifest_digest"],
                tuple(layer["digest"] for layer in image.metadata["layers"]),
            )
            for fs, image in zip(field_sets, images)
        ),
    )


def _summary(layout: IndexLayout, repository: str) -> Tuple[str, ...]:
    """What `package` prints: the index, each platform's manifest and the layers shared."""
    shared = set.intersection(*(set(image.layers) for image in layout.images))
    return (
        f"Image index: {repository}:{layout.tag}",
        f"Index digest: {layout.index_digest}",
        *(
            f"{image.platform}: {image.manifest_digest} ({len(image.layers)} layers)"
            for image in layout.images
        ),
        f"Layers shared by all {len(layout.images)} platforms: {len(shared)}",
    )


@rule(desc="Packaging an OCI image index", level=LogLevel.DEBUG)
async def package_oci_image_index(
    field_set: OciImageIndexFieldSet,
    tool: ImageTool,
    strata: StrataSubsystem,
    store: BlobStoreLocation,
    execution: Execution,
) -> BuiltPackage:
    fmt = field_set.output_format.value
    output = output_file(field_set.output_path, fmt)
    directory = fmt == OutputFormat.OCI.value
    layout = await Get(
        IndexLayout,
        IndexLayoutRequest(
            field_set.images, field_set.tag.value, output if directory else _ARCHIVE_LAYOUT,
            blobs=None if directory else Blobs.SANDBOX,
        ),
    )
    digest = layout.digest
    if not directory:
        # One streaming pass over the composed layout, in the core's archive order.
        written = f"{OUTPUT_DIR}/{output}"
        result = await Get(
            ProcessResult,
            Process(
                argv=tool.argv("layout-archive", "--layout", _ARCHIVE_LAYOUT, "--out", written),
                input_digest=await Get(Digest, MergeDigests([tool.digest, layout.digest])),
                append_only_caches=store.caches_for(execution),
                output_files=(written,),
                description=f"Archiving {field_set.address}",
                level=LogLevel.INFO,
                remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
            ),
        )
        digest = await Get(Digest, RemovePrefix(result.output_digest, OUTPUT_DIR))
    repository = field_set.repository.value_or_default(field_set.address)
    return BuiltPackage(
        digest,
        (BuiltPackageArtifact(output, extra_log_lines=_summary(layout, repository)),),
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, OciImageIndexFieldSet),
    ]
