"""`python -m strata.core SUBCOMMAND ...`: the program Pants Processes run.

Subcommands import their module lazily, so a Process only loads (and a layer process's sandbox
only needs) the modules its subcommand uses.
"""

from __future__ import annotations  # no `typing` import: start-up time is per Process

import importlib
import sys

# subcommand -> (module, function taking the remaining arguments and returning an exit code)
_COMMANDS = {
    "layer": ("strata.core.layer", "layer_main"),
    "deb-layer": ("strata.core.deb", "deb_layer_main"),
    "assemble": ("strata.core.writers", "assemble_main"),
    "stream": ("strata.core.writers", "stream_main"),
    "import-base": ("strata.core.baseimage", "import_base_main"),
    "ca-bundle": ("strata.core.deb", "ca_bundle_main"),
    "debian-lock": ("strata.core.debian", "debian_lock_main"),
    "pull": ("strata.core.pull", "pull_main"),
    "manifest": ("strata.core.publish", "manifest_main"),
    "push": ("strata.core.publish", "push_main"),
}
_USAGE = f"usage: python -m strata.core {{{','.join(_COMMANDS)}}} [options]"

# Every core module the `layer` and `deb-layer` subcommands import, and no other: layer processes
# get only these (strata.rules.tool; build-support/bench copies them likewise), so a change to the
# image writers does not invalidate every cached layer.
LAYER_MODULES = ("__init__.py", "__main__.py", "compression.py", "deb.py", "hashing.py",
                 "layer.py", "tarstream.py")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command not in _COMMANDS:
        print(_USAGE, file=sys.stderr)
        return 2
    module, function = _COMMANDS[command]
    return getattr(importlib.import_module(module), function)(rest)


if __name__ == "__main__":
    sys.exit(main())
