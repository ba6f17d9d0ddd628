"""Part `python_sources`: first-party modules and resources in a venv's site-packages, with
their pycs (strata.core.build.python)."""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
from collections import namedtuple

from strata.core.build import python
from strata.core.build.collector import Collector, LayerContext
from strata.core.build.parts import trees
from strata.core.build.spec import JsonTuple, check_keys, image_path, sandbox_path


class PythonSources(JsonTuple, namedtuple("PythonSources", "source venv version bytecode")):
    """First-party modules and resources, source roots stripped, in sandbox directory `source`:
    placed in the site-packages of the venv at image path `venv` (CPython `version`), where
    its python imports them, with `bytecode` pycs."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> PythonSources:
        check_keys(obj, what, cls._fields)
        return cls(sandbox_path(obj["source"], what), image_path(obj["venv"], what),
                   python.python_version(obj["version"], what),
                   python.bytecode_mode(obj["bytecode"], what))


Item = PythonSources


def add(collector: Collector, context: LayerContext, sources: PythonSources,
        what: str) -> None:
    """The sandbox directory's files in the venv's site-packages (0644), and their pycs."""
    python.check_interpreter(sources.version, sources.bytecode, what)
    site = python.site_packages(sources.venv, sources.version)
    tree = Collector()
    trees.add(tree, context, trees.Tree(sources.source, site, ()), what)
    files = [(entry.path, entry.source) for entry in tree.entries.values()
             if entry.kind == "file"]
    work = os.path.join(context.scratch(), what)
    for entry in [*tree.entries.values(),
                  *python.compile_pycs(files, work, sources.version, sources.bytecode, what)]:
        collector.add(entry)
