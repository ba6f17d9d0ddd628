"""SBOM documents checked by real validators: `pyspdxtools` (PyPI's spdx-tools) and the
CycloneDX 1.5 JSON schema (PyPI's cyclonedx-python-lib)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def assert_valid_spdx(path: str | os.PathLike[str]) -> dict:
    """`pyspdxtools -i PATH` accepts the document; returns it parsed."""
    result = subprocess.run(
        [sys.executable, "-m", "spdx_tools.spdx.clitools.pyspdxtools", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pyspdxtools -i {path}:\n{result.stdout}\n{result.stderr}"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def assert_valid_cyclonedx(path: str | os.PathLike[str]) -> dict:
    """The document validates against the CycloneDX 1.5 JSON schema; returns it parsed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    assert error is None, f"{path} is not valid CycloneDX 1.5: {error}"
    return json.loads(text)


def spdx_packages(document: dict) -> dict[str, str]:
    """{name: versionInfo} of an SPDX document's packages."""
    return {p["name"]: p.get("versionInfo", "") for p in document["packages"]}


def cyclonedx_components(document: dict) -> dict[str, str]:
    """{name: version} of a CycloneDX document's components, nested ones included."""
    found: dict[str, str] = {}
    todo = list(document.get("components", []))
    while todo:
        component = todo.pop()
        found[component["name"]] = component.get("version", "")
        todo.extend(component.get("components", []))
    return found
