"""How an image's own layers fill its `max_layers`: the budget left by its base, the
customisation and `embed_sbom`, the request to rules/layers.py, the SBOM layer on top, and
Docker's limit on the layer count."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from pants.engine.rules import Get
from pants.engine.target import InvalidFieldException

from strata.core.graph.layering import content_budget
from strata.core.oci.image import epoch_seconds
from strata.core.oci.docker_archive import DOCKER_MAX_LAYERS, check_docker_layer_count
from strata.rules.base import BaseImage
from strata.rules.closure import ImageClosure
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.layers import (
    BuiltLayer,
    BuiltLayers,
    CustomisationLayer,
    FilesLayerRequest,
    LayerSettings,
    LayersRequest,
)
from strata.rules.sbom import Sbom, SbomRequest, SbomSources
from strata.target_types.image import EMBEDDED_SBOM_DIR, OutputFormat


def _own_layer_count(fs: OciImageFieldSet, base: Optional[BaseImage]) -> int:
    """The layers `max_layers` leaves the image's own content, at least one."""
    embed_sbom = fs.embed_sbom.value
    taken_by_base = base.layer_count if base else 0
    own_layers = fs.max_layers.value - taken_by_base - (1 if embed_sbom else 0)
    if own_layers < 1:
        taken = [f"its base has {taken_by_base} layers"] if base else []
        taken += ["`embed_sbom` takes one"] if embed_sbom else []
        raise InvalidFieldException(
            f"The `max_layers` field of {fs.address} is {fs.max_layers.value}, but "
            f"{' and '.join(taken)}: raise `max_layers` to leave room for at least one "
            "layer of its own."
        )
    return own_layers


async def own_layers(
    fs: OciImageFieldSet,
    closure: ImageClosure,
    customisation: CustomisationLayer,
    base: Optional[BaseImage],
    compression: str,
) -> Tuple[BuiltLayers, LayerSettings]:
    """The image's own layers, and the settings they were written with."""
    own_layers = _own_layer_count(fs, base)
    # With room for one layer only, the customisation content joins it (dockerTools'
    # `buildImage`); otherwise it is a layer of its own, on top.
    single_layer = own_layers == 1
    # A kind may keep the top layer for the customisation even without customisation content
    # (an image of Nix paths is layered as nixpkgs' `buildLayeredImage` would layer it).
    keeps_top = bool(customisation) or any(node.kind.keeps_top_layer for node in closure.nodes)
    budget = content_budget(own_layers, keeps_top)
    mtime = fs.layer_mtime()
    settings = LayerSettings(
        mtime=epoch_seconds(mtime),
        reproducible=mtime != "now",
        uid=fs.uid.value,
        gid=fs.gid.value,
        uname=fs.uname.value,
        gname=fs.gname.value,
        compression=compression,
    )
    layers = await Get(
        BuiltLayers,
        LayersRequest(
            closure=closure,
            budget=budget,
            settings=settings,
            customisation=customisation,
            description=f"Building {fs.address}",
            single_layer=single_layer,
        ),
    )
    return layers, settings


async def with_sbom_layer(
    fs: OciImageFieldSet, layers: BuiltLayers, sources: SbomSources, settings: LayerSettings
) -> Tuple[BuiltLayers, SbomSources]:
    """With `embed_sbom`, the layers and the SBOM's sources gain the SBOM layer on top."""
    if not fs.embed_sbom.value:
        return layers, sources
    layers = BuiltLayers((*layers.layers, await _sbom_layer(fs, sources, settings)))
    return layers, dataclasses.replace(sources, layers=layers.layers)


def check_layer_count(
    fs: OciImageFieldSet, fmt: str, base: Optional[BaseImage], layers: BuiltLayers
) -> None:
    """A docker-archive holds no more layers than Docker loads."""
    if OutputFormat(fmt) != OutputFormat.DOCKER_ARCHIVE:
        return
    try:
        check_docker_layer_count((base.layer_count if base else 0) + len(layers.layers))
    except ValueError as e:
        raise InvalidFieldException(
            f"The `max_layers` field of {fs.address} is {fs.max_layers.value}: {e}. Lower it to "
            f"{DOCKER_MAX_LAYERS} at most, or use `output_format=\"oci\"`."
        ) from e


async def _sbom_layer(
    fs: OciImageFieldSet, sources: SbomSources, settings: LayerSettings
) -> BuiltLayer:
    """`embed_sbom`: the SBOM of the layers below, in a layer on top."""
    sbom = await Get(
        Sbom,
        SbomRequest(
            sources,
            fs.repository.value_or_default(fs.address),
            fs.tag.value,
            None,
            f"{EMBEDDED_SBOM_DIR.lstrip('/')}/image",
            str(fs.address),
        ),
    )
    return await Get(
        BuiltLayer,
        FilesLayerRequest(sbom.digest, settings, "SBOM", f"Building {fs.address}: SBOM layer"),
    )

