"""The registry's small JSON records (the pinned snapshot, a built layer, a built image), each
written by temporary file and rename, after the blobs it names: a record that exists is
whole, and everything it names is in the blob store."""

from __future__ import annotations

import json
import os
from typing import Optional

from strata.core.atomic import write_bytes_atomically


def write_record(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_bytes_atomically(path, json.dumps(record, sort_keys=True).encode())


def read_record(path: str) -> Optional[dict]:
    """The record, or None if there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
