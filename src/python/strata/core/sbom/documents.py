"""An image's SBOM, SPDX 2.3 and CycloneDX 1.5 JSON, from the closure Strata resolved (a
`strata.core.sbom.spec.SbomSpec`), never from scanning the image: `documents(spec)` for the rules,
the `sbom` subcommand for a Process. The same spec gives the same bytes: no clock, no
randomness, a fixed order."""

import json
import sys
from json.encoder import encode_basestring  # json's C one, as json.dumps uses
from typing import List, Tuple

from strata.core.atomic import write_bytes_atomically
from strata.core.sbom import cyclonedx, spdx
from strata.core.sbom.model import Model, model
from strata.core.sbom.spec import SbomSpec


def serialise(document: dict) -> bytes:
    return dumps_indented(document).encode() + b"\n"


def dumps_indented(value) -> str:
    """`json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)`, character for
    character, about twice as fast: json's C encoder cannot indent, and its pure-Python one
    yields every token through nested generators. An SBOM lists every file of a first-party
    tree, and both documents are written again at every change of the image."""
    parts: list = []
    _encode(value, parts, "\n")
    return "".join(parts)


def _encode(value, parts: list, newline: str) -> None:
    if isinstance(value, str):
        parts.append(encode_basestring(value))
    elif value is None or value is True or value is False:
        parts.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, (int, float)):
        parts.append(json.dumps(value))
    elif isinstance(value, (dict, list, tuple)) and not value:
        parts.append("{}" if isinstance(value, dict) else "[]")
    elif isinstance(value, dict):
        inner = newline + "  "
        parts.append("{" + inner)
        for i, key in enumerate(sorted(value)):
            if i:
                parts.append("," + inner)
            parts.append(encode_basestring(key) if isinstance(key, str) else json.dumps(str(key)))
            parts.append(": ")
            _encode(value[key], parts, inner)
        parts.append(newline + "}")
    elif isinstance(value, (list, tuple)):
        inner = newline + "  "
        parts.append("[" + inner)
        for i, item in enumerate(value):
            if i:
                parts.append("," + inner)
            _encode(item, parts, inner)
        parts.append(newline + "]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def all_warnings(sbom: Model) -> List[str]:
    """Every warning the documents hold: each component's, then the document-wide ones."""
    return [w for c in sbom.components for w in c.facts.warnings] + sbom.warnings


def documents(spec: SbomSpec) -> Tuple[bytes, bytes]:
    """(the SPDX 2.3 JSON document, the CycloneDX 1.5 JSON document) of `spec`."""
    return _render(model(spec))


def _render(sbom: Model) -> Tuple[bytes, bytes]:
    return serialise(spdx.document(sbom)), serialise(cyclonedx.document(sbom))


def sbom_command(options) -> None:
    """`sbom --spec FILE --spdx OUT --cyclonedx OUT`: both documents, each written atomically
    (nothing is written if either cannot be made); each warning on stderr."""
    with open(options.spec, encoding="utf-8") as f:
        spec = SbomSpec.from_json(json.load(f))
    sbom = model(spec)
    spdx_bytes, cyclonedx_bytes = _render(sbom)
    write_bytes_atomically(options.spdx, spdx_bytes)
    write_bytes_atomically(options.cyclonedx, cyclonedx_bytes)
    for warning in all_warnings(sbom):
        sys.stderr.write(f"warning: {warning}\n")
