"""The typed contract between the Pants rules and the core: what each subcommand but `layer`
reads (the layer's is strata.core.build.spec, whose JSON plumbing these values share).

Both halves import this module: the rules build these values and write `to_json()`, the core
reads them back with `from_json()`, the one place their shape is checked (what the files they
name hold is checked where they are read). Namedtuples, not dataclasses or `typing`: a Process
imports this module, and its start-up time is paid per Process.
"""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

from collections import namedtuple

from strata.core.build.spec import (
    JsonTuple, check_keys, image_path, json_list, nix_store_path, sha256_digest, to_json_value,
    zstd_path,
)


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
    namedtuple("ImageSpec", "format layers config repository tag base zstd",
               defaults=(None, None, None)),
):
    """The `assemble` and `stream` subcommands' input: the output format, the image's own
    layers (bottom first), the image config's settings (strata.core.oci.image.make_config),
    the repository and tag (None: one derived from the config digest), the base dir, and the
    zstd binary that decompresses a base's zstd layers for docker-archive."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj) -> ImageSpec:
        from strata.core.oci.formats import FORMATS  # not in layer Processes' sandboxes

        check_keys(obj, "image spec", ("format", "layers"), cls._fields[2:])
        if obj.get("format") not in FORMATS:
            raise ValueError(f"format must be one of {list(FORMATS)}: {obj.get('format')!r}")
        layers = json_list(obj["layers"], "layers")
        if obj.get("base") is not None and not isinstance(obj["base"], str):
            raise ValueError(f"base must be a base dir's path: {obj['base']!r}")
        return cls(
            obj["format"],
            tuple(LayerRef.from_json(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
            obj.get("config", {}),
            obj.get("repository"),
            obj.get("tag"),
            obj.get("base"),
            zstd_path(obj.get("zstd"), "zstd"),
        )


class BaseInfo(JsonTuple, namedtuple("BaseInfo", "config_digest manifest_digest media_type")):
    """A base dir's base.json, which `import-base` writes beside config.json and layers/NNN:
    the config's digest, and the manifest (and its media type) the base was read from."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> BaseInfo:
        from strata.core.oci.image import digest_hex

        if not isinstance(obj, dict) or not isinstance(obj.get("media_type"), str):
            raise ValueError(f"{what} must be an object with a string media_type")
        check_keys(obj, what, cls._fields)
        try:
            digest_hex(obj["config_digest"])
            digest_hex(obj["manifest_digest"])
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
        return cls(**obj)


def _optional_str(obj: dict, key: str, what: str):
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}: {key} must be a string or null, got {value!r}")
    return value


def _strings(value, what: str) -> tuple:
    items = json_list(value, what)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(items)


class SourcePackage(JsonTuple, namedtuple("SourcePackage", "name version")):
    """The Debian source package a binary package was built from."""

    __slots__ = ()


PACKAGE_KINDS = ("deb", "python", "files", "nix")


class PackageFacts(
    JsonTuple,
    namedtuple("PackageFacts",
               "kind name version architecture source supplier homepage license license_texts "
               "purl warnings files",
               defaults=(None,) * 6 + ({}, None, (), None)),
):
    """What the `describe` subcommand learnt of one package (a .deb, a wheel) or of first-party
    content (kind `files`: `files` = (image path, sha256 hex, sha1 hex) per regular file).
    `license` is an SPDX expression or None (unknown); `license_texts` holds the text of each
    LicenseRef it uses; `warnings` say what could not be read."""

    __slots__ = ()

    def to_json(self) -> dict:
        """Every field, null included (the contract's FACTS.json), but `files` only for kind
        `files`."""
        obj = {key: to_json_value(value) for key, value in self._asdict().items()}
        if self.files is None:
            del obj["files"]
        return obj

    @classmethod
    def from_json(cls, obj, what: str) -> PackageFacts:
        check_keys(obj, what, ("kind", "name"), cls._fields[2:])
        if obj["kind"] not in PACKAGE_KINDS:
            raise ValueError(f"{what}: kind must be one of {list(PACKAGE_KINDS)}: {obj['kind']!r}")
        if not isinstance(obj["name"], str) or not obj["name"]:
            raise ValueError(f"{what}: name must be a non-empty string")
        texts = obj.get("license_texts", {})
        if not (isinstance(texts, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in texts.items())):
            raise ValueError(f"{what}: license_texts must map LicenseRef ids to texts")
        source = obj.get("source")
        if source is not None:
            check_keys(source, f"{what}.source", SourcePackage._fields)
            source = SourcePackage(_optional_str(source, "name", what),
                                   _optional_str(source, "version", what))
        files = obj.get("files")
        if (files is not None) != (obj["kind"] == "files"):
            raise ValueError(f"{what}: files belong to kind 'files', and only there")
        if files is not None:
            for item in json_list(files, f"{what}.files"):
                if not (isinstance(item, list) and len(item) == 3
                        and all(isinstance(part, str) for part in item)):
                    raise ValueError(f"{what}: a file is [path, sha256, sha1]: {item!r}")
            files = tuple((image_path(path, f"{what}.files"), sha256, sha1)
                          for path, sha256, sha1 in files)
        strings = {key: _optional_str(obj, key, what)
                   for key in ("version", "architecture", "supplier", "homepage", "license",
                               "purl")}
        return cls(obj["kind"], obj["name"], source=source, license_texts=dict(texts),
                   warnings=_strings(obj.get("warnings", []), f"{what}.warnings"), files=files,
                   **strings)


class SbomSubject(JsonTuple, namedtuple("SbomSubject", "name tag seed digest", defaults=(None,))):
    """The image an SBOM describes: its repository name and tag, its manifest digest (None: the
    SBOM goes into the image, which cannot name its own digest, nor a tag derived from its
    content: then `tag` is None unless the image sets one) and the seed from which the
    documents' namespace and serial number derive."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomSubject:
        check_keys(obj, what, ("name", "seed"), ("tag", "digest"))
        tag = obj.get("tag")
        for key, value in (("name", obj["name"]), ("tag", tag or "-")):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{what}: {key} must be a non-empty string")
        digest = obj.get("digest")
        return cls(obj["name"], tag, sha256_digest(obj["seed"], f"{what}.seed"),
                   None if digest is None else sha256_digest(digest, f"{what}.digest"))


class SbomPlatform(JsonTuple, namedtuple("SbomPlatform", "os architecture variant",
                                     defaults=(None,))):
    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomPlatform:
        check_keys(obj, what, ("os", "architecture"), ("variant",))
        if not (isinstance(obj["os"], str) and isinstance(obj["architecture"], str)):
            raise ValueError(f"{what}: os and architecture must be strings")
        return cls(obj["os"], obj["architecture"], _optional_str(obj, "variant", what))


class SbomLayer(JsonTuple, namedtuple("SbomLayer", "diff_id comment", defaults=("",))):
    """One of the image's own layers: its diff_id and history comment."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomLayer:
        check_keys(obj, what, ("diff_id",), ("comment",))
        comment = obj.get("comment", "")
        if not isinstance(comment, str):
            raise ValueError(f"{what}: comment must be a string")
        return cls(sha256_digest(obj["diff_id"], f"{what}.diff_id"), comment)


class SbomComponent(JsonTuple, namedtuple("SbomComponent", "node facts layer depends",
                                      defaults=(None, ()))):
    """A node of the image's closure: its key, its facts, the index of the image layer holding
    it (None: none of the image's own) and the keys of the nodes it depends on."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str, layers: int) -> SbomComponent:
        check_keys(obj, what, ("node", "facts"), ("layer", "depends"))
        if not isinstance(obj["node"], str) or not obj["node"]:
            raise ValueError(f"{what}: node must be a non-empty string")
        layer = obj.get("layer")
        if layer is not None and (type(layer) is not int or not 0 <= layer < layers):
            raise ValueError(f"{what}: layer must be an index into layers or null: {layer!r}")
        return cls(obj["node"], PackageFacts.from_json(obj["facts"], f"{what}.facts"), layer,
                   _strings(obj.get("depends", []), f"{what}.depends"))


class SbomBase(JsonTuple, namedtuple("SbomBase", "name digest layers documents", defaults=((), ()))):
    """A base image: its name, manifest digest, layer diff_ids (bottom first) and the SBOM
    documents (SPDX or CycloneDX JSON objects) attached to it, read tolerantly later."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomBase:
        check_keys(obj, what, ("name", "digest"), ("layers", "documents"))
        if not isinstance(obj["name"], str) or not obj["name"]:
            raise ValueError(f"{what}: name must be a non-empty string")
        layers = tuple(sha256_digest(layer, f"{what}.layers")
                       for layer in json_list(obj.get("layers", []), f"{what}.layers"))
        documents = json_list(obj.get("documents", []), f"{what}.documents")
        if not all(isinstance(document, dict) for document in documents):
            raise ValueError(f"{what}: documents must be JSON objects")
        return cls(obj["name"], sha256_digest(obj["digest"], f"{what}.digest"), layers,
                   tuple(documents))


class SbomSpec(
    JsonTuple,
    namedtuple("SbomSpec", "subject created platform layers components bases warnings",
               defaults=((), (), ())),
):
    """The `sbom` subcommand's input (strata.core.sbom.documents): the image, its `created`
    time (the documents' own, so that they are reproducible), its own layers, the components of
    its closure, its bases and the rules' own warnings."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj) -> SbomSpec:
        check_keys(obj, "sbom spec", ("subject", "created", "platform"),
                   ("layers", "components", "bases", "warnings"))
        created = obj["created"]
        if not (isinstance(created, str) and len(created) >= 20 and created[10] == "T"
                and created.endswith("Z")):
            raise ValueError(f"sbom spec: created must be an RFC 3339 UTC time such as "
                             f"1970-01-01T00:00:01Z: {created!r}")
        layers = tuple(SbomLayer.from_json(layer, f"layers[{i}]")
                       for i, layer in enumerate(json_list(obj.get("layers", []), "layers")))
        components = tuple(
            SbomComponent.from_json(item, f"components[{i}]", len(layers))
            for i, item in enumerate(json_list(obj.get("components", []), "components")))
        nodes = [component.node for component in components]
        if len(set(nodes)) != len(nodes):
            raise ValueError("sbom spec: two components have the same node")
        return cls(
            SbomSubject.from_json(obj["subject"], "subject"),
            created,
            SbomPlatform.from_json(obj["platform"], "platform"),
            layers,
            components,
            tuple(SbomBase.from_json(base, f"bases[{i}]")
                  for i, base in enumerate(json_list(obj.get("bases", []), "bases"))),
            _strings(obj.get("warnings", []), "warnings"),
        )


class NixPathInfo(JsonTuple, namedtuple("NixPathInfo", "path nar_hash nar_size references deriver")):
    """What Nix knows of one valid store path (`nix path-info --json`): its NAR's sha256
    ("sha256:<hex>") and size, the store paths it references (sorted; itself among them when
    it refers to itself) and the derivation that built it (None: none, as for `toFile`)."""

    __slots__ = ()

    def to_json(self) -> dict:
        """Every field, `deriver` null included (closure.json's shape)."""
        return {**self._asdict(), "references": list(self.references)}

    @classmethod
    def from_json(cls, obj, what: str) -> NixPathInfo:
        check_keys(obj, what, cls._fields)
        size = obj["nar_size"]
        if type(size) is not int or size < 0:
            raise ValueError(f"{what}: nar_size must be a non-negative integer: {size!r}")
        references = _strings(obj["references"], f"{what}.references")
        if list(references) != sorted(set(references)):
            raise ValueError(f"{what}: references must be sorted and distinct")
        deriver = _optional_str(obj, "deriver", what)
        return cls(nix_store_path(obj["path"], what), sha256_digest(obj["nar_hash"], f"{what}.nar_hash"),
                   size, tuple(nix_store_path(ref, f"{what}.references") for ref in references),
                   None if deriver is None else nix_store_path(deriver, f"{what}.deriver"))


class NixClosure(JsonTuple, namedtuple("NixClosure", "roots paths")):
    """The `nix-closure` subcommand's output (closure.json): the roots, as nix-build printed
    them (or as given), and every store path of their closure, sorted by path, each
    referencing only paths of the closure."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str = "closure") -> NixClosure:
        check_keys(obj, what, cls._fields)
        paths = tuple(NixPathInfo.from_json(item, f"{what}.paths[{index}]")
                      for index, item in enumerate(json_list(obj["paths"], f"{what}.paths")))
        names = [info.path for info in paths]
        if names != sorted(set(names)):
            raise ValueError(f"{what}: paths must be sorted by path and distinct")
        held = set(names)
        for info in paths:
            missing = [ref for ref in info.references if ref not in held]
            if missing:
                raise ValueError(f"{what}: {info.path} references {missing[0]}, which the "
                                 f"closure does not hold")
        roots = tuple(nix_store_path(root, f"{what}.roots")
                      for root in _strings(obj["roots"], f"{what}.roots"))
        for root in roots:
            if root not in held:
                raise ValueError(f"{what}: root {root} is not among the closure's paths")
        return cls(roots, paths)
