"""A Nix closure as closure.json holds it: the `nix-closure` subcommand's output, which
`nix-links`, `nix-db` and the rules read back with `from_json()`."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

from collections import namedtuple

from strata.core.build.spec import (
    JsonTuple,
    check_keys,
    json_list,
    json_strings,
    nix_store_path,
    optional_str,
    sha256_digest,
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
        references = json_strings(obj["references"], f"{what}.references")
        if list(references) != sorted(set(references)):
            raise ValueError(f"{what}: references must be sorted and distinct")
        deriver = optional_str(obj, "deriver", what)
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
                      for root in json_strings(obj["roots"], f"{what}.roots"))
        for root in roots:
            if root not in held:
                raise ValueError(f"{what}: root {root} is not among the closure's paths")
        return cls(roots, paths)
