"""`prepare_image`: an image's inputs (its spec, layers and base), made by its role steps in
order: customisation, base, own layers, program checks, SBOM layer."""

from __future__ import annotations

import json
from typing import List, Optional, Tuple

from pants.engine.fs import AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from strata.core.oci.spec import ImageSpec, LayerRef
from strata.rules.base import BASE_DIR, BaseImage
from strata.rules.blobs import SANDBOX_PATH, BlobStoreLocation
from strata.rules.closure import ImageClosure, ImageClosureRequest
from strata.rules.image.assembly import SPEC, AssembleRequest, ImageInputs
from strata.rules.image.bases import image_base
from strata.rules.image.customisation import (
    ImageCustomisation,
    ImageCustomisationRequest,
    with_default_entrypoint,
)
from strata.rules.image.field_set import TAR_LAYER_FORMATS
from strata.rules.image.plan import check_layer_count, own_layers, with_sbom_layer
from strata.rules.image.programs import check_programs
from strata.rules.layers import BuiltLayers
from strata.rules.sbom import SbomSources
from strata.rules.tool import ImageTool, ZstdBinary, ZstdBinaryRequest
from strata.target_types.image import OutputFormat
from strata.target_types.image_runtime_config import runtime_config


async def _prefixed_layers(layers: BuiltLayers, dirs: List[str]) -> Tuple[Digest, ...]:
    return await MultiGet(
        Get(Digest, AddPrefix(layer.digest, d)) for layer, d in zip(layers.layers, dirs)
    )


async def _image_inputs(
    request: AssembleRequest,
    config: dict,
    layers: BuiltLayers,
    base: Optional[BaseImage],
    sbom_sources: SbomSources,
    tool: ImageTool,
    store: BlobStoreLocation,
) -> ImageInputs:
    """The image spec beside the layers (`layers/NNN/`) and the base dir."""
    fs = request.field_set
    layer_dirs = [f"layers/{i:03d}" for i in range(len(layers.layers))]
    created = fs.created.value
    zstd = None
    if base is not None and OutputFormat(request.fmt) in TAR_LAYER_FORMATS:
        # A base's zstd layers are read decompressed: Docker cannot read zstd.
        zstd = (await Get(ZstdBinary, ZstdBinaryRequest())).path
    spec = ImageSpec(
        format=request.fmt,
        layers=tuple(LayerRef(d, layer.comment) for d, layer in zip(layer_dirs, layers.layers)),
        config={
            **fs.platform(),
            "created": created,
            "config": config,
        },
        repository=fs.repository.value_or_default(fs.address),
        tag=fs.tag.value,
        base=BASE_DIR if base is not None else None,
        zstd=zstd,
        blob_store=SANDBOX_PATH,
    )
    prefixed = await _prefixed_layers(layers, layer_dirs)
    spec_digest = await Get(
        Digest,
        CreateDigest([FileContent(SPEC, json.dumps(spec.to_json(), sort_keys=True).encode())]),
    )
    content = await Get(
        Digest, MergeDigests([spec_digest, *prefixed, *([base.digest] if base else [])])
    )
    input_digest = await Get(Digest, MergeDigests([tool.digest, content]))
    return ImageInputs(
        input_digest, content, reproducible="now" not in (created, fs.layer_mtime()),
        sbom_sources=sbom_sources,
        blobs=(
            *(base.blobs if base else ()),
            *(layer.blob for layer in layers.layers if layer.blob),
        ),
        blob_store=store.path,
    )


@rule(desc="Preparing an OCI image's layers", level=LogLevel.DEBUG)
async def prepare_image(
    request: AssembleRequest, tool: ImageTool, store: BlobStoreLocation
) -> ImageInputs:
    fs = request.field_set
    closure, wrapped = await MultiGet(
        Get(ImageClosure, ImageClosureRequest, fs.closure_request()),
        Get(WrappedTarget, WrappedTargetRequest(fs.address, description_of_origin="oci_image")),
    )
    customisation = await Get(
        ImageCustomisation, ImageCustomisationRequest(fs, wrapped.target, closure)
    )
    compression = request.compression or fs.layer_compression()
    base = await image_base(fs, compression)
    layers, settings = await own_layers(fs, closure, customisation.layer, base, compression)
    config = with_default_entrypoint(fs.address, runtime_config(wrapped.target), customisation)
    await check_programs(fs, customisation, config, layers, base)
    sbom_sources = SbomSources(
        closure.nodes, layers.layers, base, fs.created.value, FrozenDict(fs.platform())
    )
    layers, sbom_sources = await with_sbom_layer(fs, layers, sbom_sources, settings)
    check_layer_count(fs, request.fmt, base, layers)
    return await _image_inputs(request, config, layers, base, sbom_sources, tool, store)


def rules():
    return collect_rules()
