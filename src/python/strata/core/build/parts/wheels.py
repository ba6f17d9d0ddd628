"""Part `wheels`: one distribution installed into a venv as pip would
(strata.core.build.python)."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
import zipfile
import zlib
from collections import namedtuple

from strata.core.build import python
from strata.core.build.collector import Collector, LayerContext
from strata.core.build.spec import JsonTuple, check_keys, image_path, sandbox_path


class Wheel(JsonTuple, namedtuple("Wheel", "source venv version machine bytecode")):
    """One distribution as pex installs it into a chroot (a packed PEX's `.deps/<wheel>` zip:
    importable files at the top, scripts, headers and data under `.prefix/`) at sandbox path
    `source`, installed into the venv at image path `venv` for CPython `version` on `machine`
    (`x86_64`, `aarch64`, ...) as pip would, with `bytecode` pycs."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Wheel:
        check_keys(obj, what, cls._fields)
        if not isinstance(obj["machine"], str) or not obj["machine"]:
            raise ValueError(f"{what}: machine must be a machine name such as 'x86_64'")
        return cls(sandbox_path(obj["source"], what), image_path(obj["venv"], what),
                   python.python_version(obj["version"], what), obj["machine"],
                   python.bytecode_mode(obj["bytecode"], what))


Item = Wheel


def add(collector: Collector, context: LayerContext, wheel: Wheel, what: str) -> None:
    """Pex's chroot of the distribution installed into the venv as pip would, with RECORD,
    INSTALLER and `bytecode` pycs."""
    python.check_interpreter(wheel.version, wheel.bytecode, what)
    work = os.path.join(context.scratch(), what)
    try:
        with zipfile.ZipFile(context.path(wheel.source)) as chroot:
            entries = python.wheel_entries(chroot, wheel, work, f"{what} ({wheel.source})")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{what}: cannot read {wheel.source!r}: {e}") from None
    for entry in entries:
        collector.add(entry)
