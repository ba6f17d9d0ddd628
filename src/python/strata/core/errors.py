"""The core's failures, and the exit code each means: one hierarchy for every subcommand, so the
Pants rules read one contract (docs/architecture.md, "Exit codes").

`strata.core.cli` reports any of these as one line on stderr, plus `details()` as JSON on
stdout when there are any, and exits with `exit_code`.
"""

from __future__ import annotations  # no `typing` import: start-up time is per Process


class StrataError(Exception):
    """A failure the user can act on; its message says what is wrong and, where it can, how
    to fix it."""

    exit_code = 1

    def details(self) -> dict | None:
        """Structured facts for the rules (e.g. the platforms an image offers), or None."""
        return None


class UsageError(StrataError):
    """Bad command-line arguments: a bug in the caller (the Pants rules), not in user input."""

    exit_code = 2


class InvalidInput(StrataError, ValueError):
    """A spec, image, archive, package or lock that cannot be used as it is. A ValueError too,
    so that library callers can treat every bad value alike."""


class Interrupted(StrataError):
    """SIGINT (Ctrl-C, or Pants cancelling the run): the message says what was done."""

    exit_code = 130
