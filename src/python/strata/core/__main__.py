"""`python -m strata.core {layer,assemble,stream,import-base} ...`: the program Pants Processes
run.

Subcommands import their module lazily, so a Process only loads what it uses.
"""

import sys
from typing import List, Optional

_USAGE = "usage: python -m strata.core {layer,assemble,stream,import-base} [options]"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "layer":
        from strata.core.layer import layer_main

        return layer_main(rest)
    if command == "deb-layer":
        from strata.core.deb import deb_layer_main

        return deb_layer_main(rest)
    if command == "assemble":
        from strata.core.writers import assemble_main

        return assemble_main(rest)
    if command == "stream":
        from strata.core.writers import stream_main

        return stream_main(rest)
    if command == "import-base":
        from strata.core.baseimage import import_base_main

        return import_base_main(rest)
    if command == "ca-bundle":
        from strata.core.deb import ca_bundle_main

        return ca_bundle_main(rest)
    if command == "debian-lock":
        from strata.core.debian import debian_lock_main

        return debian_lock_main(rest)
    if command == "pull":
        from strata.core.pull import pull_main

        return pull_main(rest)
    if command == "push":
        from strata.core.publish import push_main

        return push_main(rest)
    print(_USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
