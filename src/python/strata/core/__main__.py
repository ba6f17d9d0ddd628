"""`python -m strata.core SUBCOMMAND ...`: the program Pants Processes run (see strata.core.cli)."""

import sys

# What a layer Process's sandbox holds of the core (strata.rules.tool; build-support/bench lays
# out its sandbox likewise): the entry modules every subcommand loads, and the package holding
# exactly what `layer` imports. So a change anywhere else in the core leaves cached layers valid.
ENTRY_MODULES = ("__init__.py", "__main__.py", "cli.py", "errors.py")
LAYER_PACKAGE = "build"


def layer_sources(core_dir) -> list:
    """The files, relative to the core's directory, that a layer Process gets."""
    import os

    modules = [
        os.path.relpath(os.path.join(directory, name), core_dir).replace(os.sep, "/")
        for directory, _, names in os.walk(os.path.join(core_dir, LAYER_PACKAGE))
        for name in names if name.endswith(".py")
    ]
    return sorted([*ENTRY_MODULES, *modules])


if __name__ == "__main__":
    from strata.core.cli import main

    sys.exit(main())
