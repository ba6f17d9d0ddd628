"""The image spec, the `assemble` and `stream` subcommands' input (written by the rules with
`to_json()`, read back with `from_json()`), and a base dir's base.json."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

from collections import namedtuple

from strata.core.build.spec import (
    JsonTuple,
    check_keys,
    json_list,
    zstd_path,
)
from strata.core.oci.image import digest_hex


class LayerRef(JsonTuple, namedtuple("LayerRef", "dir comment", defaults=("",))):
    """A `layer` output directory in the sandbox, and its history comment."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> LayerRef:
        if not isinstance(obj, dict) or not isinstance(obj.get("dir"), str):
            raise ValueError(f"{what} must be an object with a string 'dir'")
        check_keys(obj, what, ("dir",), ("comment",))
        if not isinstance(obj.get("comment", ""), str):
            raise ValueError(f"{what}.comment must be a string")
        return cls(**obj)


class ImageSpec(
    JsonTuple,
    namedtuple("ImageSpec", "format layers config repository tag base zstd blob_store",
               defaults=(None, None, None, None)),
):
    """The `assemble` and `stream` subcommands' input: the output format, the image's own
    layers (bottom first), the image config's settings (strata.core.oci.image.make_config),
    the repository and tag (None: one derived from the config digest), the base dir, the
    zstd binary that decompresses a base's zstd layers for docker-archive, and the blob store
    (strata.core.build.blobstore) holding the blobs of layers whose layer.json names none."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, formats) -> ImageSpec:
        """`formats`: the output formats' names (strata.core.oci.formats.FORMATS, which reads
        image specs through this module)."""
        check_keys(obj, "image spec", ("format", "layers"), cls._fields[2:])
        if obj.get("format") not in formats:
            raise ValueError(f"format must be one of {list(formats)}: {obj.get('format')!r}")
        layers = json_list(obj["layers"], "layers")
        for key in ("base", "blob_store"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise ValueError(f"{key} must be a directory's path: {obj[key]!r}")
        return cls(
            obj["format"],
            tuple(LayerRef.from_json(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
            obj.get("config", {}),
            obj.get("repository"),
            obj.get("tag"),
            obj.get("base"),
            zstd_path(obj.get("zstd"), "zstd"),
            obj.get("blob_store"),
        )


class BaseInfo(JsonTuple, namedtuple("BaseInfo", "config_digest manifest_digest media_type")):
    """A base dir's base.json, which `import-base` writes beside config.json and layers/NNN:
    the config's digest, and the manifest (and its media type) the base was read from."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> BaseInfo:
        if not isinstance(obj, dict) or not isinstance(obj.get("media_type"), str):
            raise ValueError(f"{what} must be an object with a string media_type")
        check_keys(obj, what, cls._fields)
        try:
            digest_hex(obj["config_digest"])
            digest_hex(obj["manifest_digest"])
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
        return cls(**obj)
