"""Part `debs`: a Debian package's files as dpkg installs them, read from its .deb
(strata.core.build.deb)."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
from collections import namedtuple

from strata.core.build.deb import deb_entries
from strata.core.build.collector import Collector, LayerContext
from strata.core.build.parts import entries
from strata.core.build.spec import JsonTuple, check_keys, sandbox_path


class Deb(JsonTuple, namedtuple("Deb", "source package")):
    """A Debian package's .deb in the sandbox, whose files the layer holds as dpkg installs
    them (merged-/usr), with its dpkg status entry."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Deb:
        check_keys(obj, what, cls._fields)
        if not isinstance(obj["package"], str) or not obj["package"]:
            raise ValueError(f"{what}: package must be a package name")
        return cls(sandbox_path(obj["source"], what), obj["package"])


Item = Deb


def add(collector: Collector, context: LayerContext, deb: Deb, what: str) -> None:
    """The .deb's files as dpkg installs them, on merged-/usr, and its dpkg status entry."""
    work = os.path.join(context.scratch(), what)
    try:
        found = deb_entries(context.path(deb.source), deb.package, work, context.root,
                            context.settings.zstd)
    except (OSError, ValueError) as e:
        raise ValueError(f"{what} ({deb.source}): {e}") from None
    for index, entry in enumerate(found):
        origin = f"{what} ({deb.package})"
        entries.add(collector, context, entries.Entry.from_json(entry, f"{origin} entry {index}"),
                    origin)
