"""Reading what `pants publish` (the `strata.core push` processes) reports, and what the
registry logged."""

from __future__ import annotations

import re
from dataclasses import dataclass

# "host[:port]/repository:tag@digest", one line per tag pushed.
_TAG_LINE = re.compile(r"^([^/\s]+)/([a-z0-9._/-]+):([\w.-]+)@(sha256:[0-9a-f]{64})$")
_BLOBS_LINE = re.compile(
    r"^  blobs: (\d+) uploaded \((\d+) bytes\), (\d+) mounted, (\d+) already present$"
)


@dataclass
class Push:
    """What `strata.core push` printed for one repository."""

    tags: dict[str, str]  # tag -> manifest digest
    uploaded: int = 0
    uploaded_bytes: int = 0
    mounted: int = 0
    present: int = 0


def pushes(output: str) -> dict[str, Push]:
    """The push reports in a `pants publish` output, by "host/repository"."""
    found: dict[str, Push] = {}
    name = None
    for line in output.splitlines():
        if tag := _TAG_LINE.match(line):
            name = f"{tag[1]}/{tag[2]}"
            found.setdefault(name, Push({})).tags[tag[3]] = tag[4]
        elif (blobs := _BLOBS_LINE.match(line)) and name is not None:
            push = found[name]
            push.uploaded, push.uploaded_bytes, push.mounted, push.present = map(
                int, blobs.groups()
            )
    return found


def upload_posts(log: str, repository: str) -> int:
    """Blob uploads the registry completed for `repository` (the closing PUT of an upload
    session; a cross-repository mount completes without one)."""
    pattern = rf'"PUT /v2/{re.escape(repository)}/blobs/uploads/\S* HTTP/1.1" 201'
    return len(re.findall(pattern, log))
