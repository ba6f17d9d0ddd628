"""The demo app that Strata images: prints a greeting and the image's build date."""

import sys

from dateutil import parser


def greeting(name: str) -> str:
    epoch = parser.isoparse("1970-01-01T00:00:01Z")
    return f"Hello from Strata, {name}! (layers dated {epoch:%Y-%m-%d})"


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "world"
    print(greeting(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
