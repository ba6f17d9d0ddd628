"""Part `venvs`: a virtualenv's skeleton (pyvenv.cfg, its python links, console-script
launchers); its distributions and code are the `wheels` and `python_sources` parts
(strata.core.build.python)."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
import posixpath
from collections import namedtuple

from strata.core.build import python
from strata.core.build.collector import Collector, LayerContext, LayerEntry
from strata.core.build.spec import JsonTuple, check_keys, image_path, json_list

# distlib's console script (pip's `ScriptMaker`), so that a launcher behaves as pip's would.
_ENTRY_POINT_SCRIPT = """\
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {import_name}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({function}())
"""
# A bare module entry point runs the module as `__main__`, as `python -m` and pex do.
_MODULE_SCRIPT = """\
# -*- coding: utf-8 -*-
import runpy
if __name__ == '__main__':
    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)
"""


class Venv(JsonTuple, namedtuple("Venv", "path python version launchers")):
    """A virtualenv's skeleton at image path `path`: `pyvenv.cfg`, and `bin/python`,
    `bin/python3` and `bin/pythonX.Y` as symlinks to the image's interpreter at image path
    `python`, of `version`; each launcher (name, entry point `module:function` or
    `module`) is a console script `bin/<name>` run by the venv's python."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Venv:
        check_keys(obj, what, cls._fields)
        launchers = []
        for item in json_list(obj["launchers"], f"{what}: launchers"):
            if not (isinstance(item, list) and len(item) == 2
                    and all(isinstance(part, str) and part for part in item)
                    and "/" not in item[0]):
                raise ValueError(f"{what}: a launcher is [name, entry point]: {item!r}")
            launchers.append(tuple(item))
        return cls(image_path(obj["path"], what), image_path(obj["python"], what),
                   python.python_version(obj["version"], what), tuple(launchers))


Item = Venv


def _entry_point_script(entry: str, what: str) -> str:
    module, colon, function = entry.partition(":")
    names = module.split(".") + (function.split(".") if colon else [])
    if not all(name.isidentifier() for name in names):
        raise ValueError(f"{what}: entry point {entry!r} is not `module` or `module:function` "
                         f"(dotted Python identifiers)")
    if not colon:
        return _MODULE_SCRIPT.format(module=module)
    return _ENTRY_POINT_SCRIPT.format(module=module, import_name=function.split(".")[0],
                                      function=function)


def add(collector: Collector, context: LayerContext, venv: Venv, what: str) -> None:
    """The venv's skeleton: `pyvenv.cfg`, `bin/python*` symlinks to the image's interpreter and
    the launchers. pyvenv.cfg's `version` is MAJOR.MINOR (the micro version is the image's
    business), so it does not change when the interpreter's package is updated."""
    work = os.path.join(context.scratch(), what)
    interpreter = f"/{venv.python}"
    config = (f"home = {posixpath.dirname(interpreter)}\n"
              f"include-system-site-packages = false\n"
              f"version = {venv.version}\n")
    collector.add(LayerEntry(f"{venv.path}/bin", "dir", 0o755, what))
    collector.add(LayerEntry(python.site_packages(venv.path, venv.version), "dir", 0o755, what))
    cfg = f"{venv.path}/pyvenv.cfg"
    collector.add(LayerEntry(cfg, "file", 0o644, what, python.write_file(work, cfg, config.encode())))
    for name in ("python", "python3", f"python{venv.version}"):
        collector.add(LayerEntry(f"{venv.path}/bin/{name}", "symlink", 0o777, what,
                             target=interpreter))
    for name, entry in venv.launchers:
        origin = f"{what} launcher {name!r}"
        script = f"{python.venv_python(venv.path)}\n{_entry_point_script(entry, origin)}"
        path = f"{venv.path}/bin/{name}"
        collector.add(LayerEntry(path, "file", 0o755, origin,
                             python.write_file(work, path, script.encode())))
