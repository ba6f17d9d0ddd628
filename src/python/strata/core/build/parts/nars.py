"""Part `nars`: a Nix store path's files, read from its NAR (strata.core.build.nar)."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
from collections import namedtuple

from strata.core.build.collector import Collector, LayerContext
from strata.core.build.nar import NarReader, nar_entries
from strata.core.build.parts import entries
from strata.core.build.spec import (
    JsonTuple, check_keys, nix_store_path, sandbox_path, sha256_digest,
)
from strata.core.errors import InvalidInput


class Nar(JsonTuple, namedtuple("Nar", "source store_path nar_hash")):
    """One Nix store path as a NAR (`nix-store --dump`) at sandbox path `source`, whose entries
    the layer holds at `store_path` (strata.core.build.nar), once the NAR's sha256 is
    `nar_hash` ("sha256:<hex>")."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Nar:
        check_keys(obj, what, cls._fields)
        return cls(sandbox_path(obj["source"], what),
                   nix_store_path(obj["store_path"], f"{what}.store_path"),
                   sha256_digest(obj["nar_hash"], f"{what}.nar_hash"))


Item = Nar


def add(collector: Collector, context: LayerContext, nar: Nar, what: str) -> None:
    """The NAR's entries at the store path, once its sha256 is the spec's."""
    top = nar.store_path.lstrip("/")
    work = os.path.join(context.scratch(), what)
    os.makedirs(work)
    try:
        with open(context.path(nar.source), "rb") as f:
            reader = NarReader(f)
            found = nar_entries(reader, top, work, context.root)
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{what}: the NAR of {nar.store_path} ({nar.source}): {e}") from None
    digest = "sha256:" + reader.hexdigest()
    if digest != nar.nar_hash:
        raise InvalidInput(f"{what}: the NAR of {nar.store_path} ({nar.source}) has sha256 "
                           f"{digest}, not the {nar.nar_hash} Nix recorded for it")
    origin = f"{what} ({nar.store_path})"
    for entry in found:
        entries.add(collector, context, entry, origin)
