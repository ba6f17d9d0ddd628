"""An image's `base` field: the base it names (an `oci_image` of the repo, an
`oci_image_archive` or an `oci_pull`) as a `BaseImage`, and the checks of the image against it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import CreateDigest, Digest, DigestContents, DigestSubset, Directory, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from strata.core.oci import platforms
from strata.core.oci.baseimage import base_dir_files
from strata.core.oci.formats import metadata
from strata.core.oci.image import platform_conflicts
from strata.rules.base import BASE_DIR, BaseImage, ExternalBaseRequest
from strata.rules.image.assembly import AssembleRequest, ImageInputs, read_image, split_repo_tag
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.sbom import Sbom, SbomRequest
from strata.target_types.base import OciImageArchiveTarget, OciPullTarget
from strata.target_types.image import OciImageTarget, OutputFormat


@dataclass(frozen=True)
class BaseRequest:
    """The `base` field of `image`, for an image whose own layers use `compression`."""

    spec: str
    image: Address
    compression: str
    platform: str = "linux/amd64"  # the image's `os/arch[/variant]`, which a base index serves


async def _built_base(base_fs: OciImageFieldSet, compression: str) -> BaseImage:
    """An `oci_image` base, reused as its layers' outputs: its base dir is made of its inputs
    by digest operations (`base_dir_files`, as `import-base` would write it of its oci output),
    each blob the file its layer Process wrote; no Process reads or copies a byte of it."""
    address = base_fs.address
    inputs = await Get(
        ImageInputs, AssembleRequest(base_fs, OutputFormat.OCI.value, BASE_DIR, compression)
    )
    files, img = await read_image(inputs)
    meta = metadata(img)
    base_dir, sbom = await MultiGet(
        # The layers directory is there even for an image of no layer, as import-base makes it.
        Get(Digest, CreateDigest([
            Directory(f"{BASE_DIR}/layers"),
            *files.placed(BASE_DIR, base_dir_files(img.config_bytes, img.layers)),
        ])),
        # What the base holds, as its own SBOM says it.
        Get(Sbom, SbomRequest(
            inputs.sbom_sources, *split_repo_tag(meta["repo_tag"]), meta["manifest_digest"],
            "base-sbom", str(address),
        )),
    )
    spdx = await Get(Digest, DigestSubset(sbom.digest, PathGlobs([sbom.files[0]])))
    own = inputs.sbom_sources
    return BaseImage(
        base_dir, len(img.layers), name=base_fs.repository.value_or_default(address), sboms=spdx,
        paths=(*(own.base.paths if own.base else ()), *(l.paths for l in own.layers)),
        blobs=inputs.blobs,
    )


@rule(desc="Resolving an image's `base` field", level=LogLevel.DEBUG)
async def resolve_base(request: BaseRequest) -> BaseImage:
    origin = f"the `base` field of {request.image}"
    address = await Get(
        Address,
        AddressInput,
        AddressInput.parse(
            request.spec, relative_to=request.image.spec_path, description_of_origin=origin
        ),
    )
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin=origin))
    tgt = wrapped.target
    if isinstance(tgt, OciImageTarget):
        return await _built_base(OciImageFieldSet.create(tgt), request.compression)
    if isinstance(tgt, (OciImageArchiveTarget, OciPullTarget)):
        return await Get(BaseImage, ExternalBaseRequest(tgt, request.platform))
    raise InvalidFieldException(
        f"The `base` field of {request.image} names {address}, a `{tgt.alias}` target: "
        "expected an `oci_image`, `oci_image_archive` or `oci_pull` target."
    )


async def base_config(base: BaseImage) -> dict:
    """The base image's config, as its base dir holds it."""
    config = await Get(
        DigestContents, DigestSubset(base.digest, PathGlobs([f"{BASE_DIR}/config.json"]))
    )
    return json.loads(config[0].content)


async def check_base_platform(fs: OciImageFieldSet, base: BaseImage) -> None:
    """An image of another platform than its base's would not run the base's binaries: an
    error naming both fields, before any layer is built (the core's check names neither)."""
    conflicts = platform_conflicts(fs.platform(), await base_config(base))
    if conflicts:
        key, mine, theirs = conflicts[0]
        raise InvalidFieldException(
            f"The `{key}` field of {fs.address} is {mine!r}, but the image its `base` field "
            f"names, {fs.base.value}, is {key} {theirs!r}: the base's binaries would not run. "
            f"Set `{key}` to {theirs!r}, or use a base of {mine!r}."
        )


async def image_base(fs: OciImageFieldSet, compression: str) -> Optional[BaseImage]:
    """The image's base, checked against its platform, or None when it has none."""
    if not fs.base.value:
        return None
    base = await Get(
        BaseImage,
        BaseRequest(fs.base.value, fs.address, compression, platforms.describe(fs.platform())),
    )
    await check_base_platform(fs, base)
    return base


def rules():
    return collect_rules()
