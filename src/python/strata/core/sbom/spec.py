"""The SBOM contract: what `describe` learns of a package (`PackageFacts`, FACTS.json) and the
`sbom` subcommand's input (`SbomSpec`), written by the rules with `to_json()`, read back
with `from_json()`."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

from collections import namedtuple

from strata.core.build.spec import (
    JsonTuple,
    check_keys,
    image_path,
    json_list,
    json_strings,
    optional_str,
    sha256_digest,
    to_json_value,
)


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
            source = SourcePackage(optional_str(source, "name", what),
                                   optional_str(source, "version", what))
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
        strings = {key: optional_str(obj, key, what)
                   for key in ("version", "architecture", "supplier", "homepage", "license",
                               "purl")}
        return cls(obj["kind"], obj["name"], source=source, license_texts=dict(texts),
                   warnings=json_strings(obj.get("warnings", []), f"{what}.warnings"), files=files,
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
        return cls(obj["os"], obj["architecture"], optional_str(obj, "variant", what))


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
                   json_strings(obj.get("depends", []), f"{what}.depends"))


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
            json_strings(obj.get("warnings", []), "warnings"),
        )
