"""An image's SBOM, SPDX 2.3 and CycloneDX 1.5 JSON, from the closure Strata resolved (a
`strata.core.sbom.spec.SbomSpec`), never from scanning the image: `documents(spec)` for the rules,
the `sbom` subcommand for a Process. The same spec gives the same bytes: no clock, no
randomness, a fixed order."""

import json
import sys
from typing import List, Tuple

from strata.core.atomic import write_bytes_atomically
from strata.core.sbom import cyclonedx, spdx
from strata.core.sbom.model import Model, model
from strata.core.sbom.spec import SbomSpec


def serialise(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"


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
