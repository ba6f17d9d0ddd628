"""`python -m strata.core SUBCOMMAND ...`: the program Pants Processes run (see strata.core.cli),
but for layers, which run `python -m strata.core.build` with only `layer_sources()`."""

import sys

# What a layer Process's sandbox holds of the core (strata.rules.tool; build-support/bench lays
# out its sandbox likewise): the package's __init__, the error hierarchy a layer's failures
# belong to, and the package holding exactly what `python -m strata.core.build` imports
# (strata.core.build.__main__ says why). So a change anywhere else in the core, this module and
# the CLI's table included, leaves cached layers valid.
LAYER_MODULES = ("__init__.py", "errors.py")
LAYER_PACKAGE = "build"


def layer_sources(core_dir) -> list:
    """The files, relative to the core's directory, that a layer Process gets."""
    import os

    modules = [
        os.path.relpath(os.path.join(directory, name), core_dir).replace(os.sep, "/")
        for directory, _, names in os.walk(os.path.join(core_dir, LAYER_PACKAGE))
        for name in names if name.endswith(".py")
    ]
    return sorted([*LAYER_MODULES, *modules])


if __name__ == "__main__":
    from strata.core.cli import main

    sys.exit(main())
