"""`python -m strata.core SUBCOMMAND ...`: the program Pants Processes run (see strata.core.cli)."""

import sys

# Every core module the `layer` and `deb-layer` subcommands import, and no other: layer processes
# get only these (strata.rules.tool; build-support/bench copies them likewise), so a change to the
# image writers does not invalidate every cached layer.
LAYER_MODULES = ("__init__.py", "__main__.py", "cli.py", "compression.py", "deb.py", "errors.py",
                 "hashing.py", "layer.py", "tarstream.py")

if __name__ == "__main__":
    from strata.core.cli import main

    sys.exit(main())
