"""An image as the output formats write it: the image spec read with its layers' and base
dir's metadata (never their blobs), checked against each other. Its inputs are read from disk
or, for the rules, from a digest's listing (`DiskFiles`)."""

import json
import os

from strata.core.build.blobstore import BlobStore
from strata.core.build.compression import SUFFIXES
from strata.core.oci import image
from strata.core.oci.spec import BaseInfo, ImageSpec, LayerRef


class Layer:
    """One `layer` output directory, or a base dir's layer: its layer.json and blob path (in
    the blob store when layer.json names no blob file: `stored`)."""

    def __init__(self, info: dict, blob_path: str, comment: str, base: bool = False):
        self.info = info
        self.blob_path = blob_path
        self.comment = comment
        self.base = base

    @property
    def stored(self) -> bool:
        return "blob" not in self.info


class Image:
    """A validated image spec with its layers (a base's first) read and its config serialised."""

    def __init__(self, fmt: str, layers: list, config: dict, repository: str, tag, zstd=None,
                 store=None):
        self.format = fmt
        self.store = store
        self.layers = layers
        self.zstd = zstd
        self.config_bytes = image.config_bytes(config)
        self.config_digest = image.sha256_digest(self.config_bytes)
        self.platform = image.platform_of(config)
        self.tag = image.content_tag(self.config_digest) if tag is None else tag
        self.repo_tag = image.repo_tag(repository, self.tag)

    @property
    def layer_infos(self) -> list:
        return [layer.info for layer in self.layers]

    @property
    def docker_layer_infos(self) -> list:
        return [as_tar(info) for info in self.layer_infos]

    def manifest_bytes(self, oci: bool) -> bytes:
        infos = self.layer_infos if oci else self.docker_layer_infos
        return image.canonical_json(image.make_manifest(self.config_bytes, infos, oci))


def as_tar(info: dict) -> dict:
    """A layer as a docker-archive's manifest sees it: a tar, whatever its blob."""
    return dict(info, digest=info["diff_id"], blob_size=info["size"], compression="none")


class DiskFiles:
    """An image's inputs as files on disk (the `assemble` Process's sandbox). The Pants rules
    read the same inputs from a digest's listing through an object with these three methods,
    so that an OCI layout is composed with no Process and no copy of a blob."""

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def listdir(self, path: str) -> list:
        return os.listdir(path)


def load_json(files, path: str, what: str):
    try:
        return json.loads(files.read(path))
    except ValueError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from None


def _is_size(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_layer(ref: LayerRef, base: bool = False, files=DiskFiles(), store=None) -> Layer:
    """A layer's layer.json, checked; its blob is a file beside it, or with no `blob` named,
    `store`'s (a BlobStore), whose readers check it as they read."""
    path = os.path.join(ref.dir, "layer.json")
    info = load_json(files, path, "layer metadata")
    if not isinstance(info, dict):
        raise ValueError(f"{path} must hold an object")
    try:
        image.digest_hex(info.get("diff_id"))
        image.digest_hex(info.get("digest"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if info.get("compression") not in SUFFIXES:
        raise ValueError(f"{path}: compression must be one of {list(SUFFIXES)}")
    # A zstd base layer imported without the zstd binary has an unknown size.
    unknown_size = info.get("size") is None and info["compression"] == "zstd"
    if not ((_is_size(info.get("size")) or unknown_size) and _is_size(info.get("blob_size"))):
        raise ValueError(f"{path}: size and blob_size must be non-negative integers")
    if "blob" not in info:
        if store is None:
            raise ValueError(f"{path} names no blob file, and the image spec no blob store")
        return Layer(info, store.path(info["digest"]), ref.comment, base)
    blob = info.get("blob")
    if not isinstance(blob, str) or blob in ("", ".", "..") or "/" in blob:
        raise ValueError(f"{path}: blob must be a file name in the layer directory: {blob!r}")
    if info["compression"] == "none" and (
        info["digest"] != info["diff_id"] or info["blob_size"] != info["size"]
    ):
        raise ValueError(
            f"{path}: an uncompressed blob must have digest == diff_id and blob_size == size"
        )
    blob_path = os.path.join(ref.dir, blob)
    actual = files.size(blob_path)
    if actual != info["blob_size"]:
        raise ValueError(f"{blob_path} has {actual} bytes, layer.json says {info['blob_size']}")
    return Layer(info, blob_path, ref.comment, base)


def load_base(directory: str, files=DiskFiles(), store=None):
    """A base dir's config and layers, checked against each other and base.json (the blobs are
    not re-read: `import-base` verified them, like `layer` outputs they are trusted inputs)."""
    where = os.path.join(directory, "base.json")
    info = BaseInfo.from_json(load_json(files, where, "base image metadata"), where)
    config_path = os.path.join(directory, "config.json")
    config_bytes = files.read(config_path)
    if image.sha256_digest(config_bytes) != info.config_digest:
        raise ValueError(f"{config_path} does not match config_digest in {where}")
    try:
        config = json.loads(config_bytes)
        diff_ids = image.base_parts(config)[1]
    except ValueError as e:
        raise ValueError(f"{config_path}: {e}") from None
    layers_dir = os.path.join(directory, "layers")
    names = [layer_dir_name(i) for i in range(len(diff_ids))]
    if sorted(files.listdir(layers_dir)) != names:
        raise ValueError(f"{layers_dir} must hold exactly {names} for the config's diff_ids")
    layers = [
        load_layer(LayerRef(os.path.join(layers_dir, name)), base=True, files=files, store=store)
        for name in names
    ]
    for layer, diff_id in zip(layers, diff_ids):
        if layer.info["diff_id"] != diff_id:
            raise ValueError(
                f"{os.path.dirname(layer.blob_path)} has diff_id {layer.info['diff_id']}, "
                f"the base config says {diff_id}"
            )
    return config, layers


def layer_dir_name(index: int) -> str:
    """A base dir's layers/NNN name: zero-padded so that names sort in layer order."""
    return f"{index:03d}"


def image_from_spec(spec: ImageSpec, here: str, files=DiskFiles(), blob_store=None) -> Image:
    """The image of an image spec whose paths are relative to `here` (its directory, so that a
    bundle's images each keep their own), its layers' metadata read (never their blobs).
    `blob_store`: the blob store's path, instead of the spec's (which, unlike its other paths,
    is relative to the working directory: a bundle's images share one)."""
    if blob_store is None:
        blob_store = spec.blob_store
    store = BlobStore(blob_store) if blob_store is not None else None
    base, base_layers = (
        load_base(os.path.join(here, spec.base), files, store)
        if spec.base is not None else (None, [])
    )
    layers = [
        load_layer(LayerRef(os.path.join(here, ref.dir), ref.comment), files=files, store=store)
        for ref in spec.layers
    ]
    infos, comments = [layer.info for layer in layers], [layer.comment for layer in layers]
    config = image.make_config(spec.config, infos, comments, base)
    return Image(
        spec.format, base_layers + layers, config, spec.repository, spec.tag, spec.zstd, store
    )
