"""A layer's kinds of content, one module each: `parts/<name>.py` is the part `<name>` of a
layer spec (its key in the spec's JSON, a list of items; `strata.core.build.spec.LayerSpec`).

To add a kind of content, add one module here; nothing else names it. It defines:
- `Item`, the type of one item: a `JsonTuple` namedtuple whose `from_json(obj, what)` checks
  everything the JSON holds (`what` names the item in messages, as in `debs[0]`);
- `add(collector, context, item, what)`, which puts the item's entries into the layer
  (strata.core.build.collector): `collector.add(LayerEntry(...))` (checked as they come, sorted
  and written later), its sandbox files at `context.path(source)`, files it makes in
  `context.scratch()`.
A spec names a part only if its module is here, so no other module is imported by a spec,
and a layer imports only the parts it uses (a .deb's reader loads tarfile, lzma and bz2, which
a tree's layer does not need). The order parts are added in changes no byte.
"""

import importlib
import os

# The parts are this directory's modules: `exists` reads it, `load` imports from it alone. An
# absolute path, so that a spec read after a chdir (tests do) finds them all the same.
_DIR = os.path.dirname(os.path.abspath(__file__))
__path__ = [_DIR]


def exists(name: str) -> bool:
    """Whether `name` is a part: a module of this package (never a private one)."""
    return (name.isidentifier() and not name.startswith("_")
            and os.path.isfile(os.path.join(_DIR, f"{name}.py")))


def load(name: str):
    """The part `name`'s module (its `Item` and `add`); `exists(name)` must hold."""
    return importlib.import_module(f"{__name__}.{name}")
