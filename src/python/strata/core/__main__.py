"""`python -m strata.core {layer,assemble,stream} ...`: the program Pants Processes run.

Subcommands import their module lazily, so a Process only loads what it uses.
"""

import sys
from typing import List, Optional

_USAGE = "usage: python -m strata.core {layer,assemble,stream} [options]"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "layer":
        from strata.core.layer import layer_main

        return layer_main(rest)
    if command == "assemble":
        from strata.core.writers import assemble_main

        return assemble_main(rest)
    if command == "stream":
        from strata.core.writers import stream_main

        return stream_main(rest)
    print(_USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
