"""`python -m strata.core.build --spec FILE --out DIR [--paths FILE]`: what a layer Process
runs, the `layer` step (strata.core.build.layer).

A layer Process's sandbox holds only what writing a layer needs, so that only a change to that
code changes a layer's cache key (`layer_sources()` in strata.core.__main__):
`strata/__init__.py`, `strata/core/__init__.py`, this package, and one module outside it,
`strata/core/errors.py`: the core's one error hierarchy, which a layer's failures belong to
(`InvalidInput`, which library callers catch, and the exit codes every core program uses).
"""

import sys

from strata.core.build.program import LAYER, run

if __name__ == "__main__":
    sys.exit(run("strata.core.build", LAYER, sys.argv[1:]))
