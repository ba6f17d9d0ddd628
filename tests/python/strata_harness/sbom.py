"""SBOM documents checked by real validators: `pyspdxtools` (PyPI's spdx-tools) and the
CycloneDX 1.5 JSON schema (PyPI's cyclonedx-python-lib)."""

from __future__ import annotations

import json
import os

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.clitools.pyspdxtools import main as pyspdxtools_command


def pyspdxtools(*args: str) -> int:
    """`pyspdxtools ARGS`, in this process (a child Python would not see the test's
    requirements): its exit code; it logs what it finds invalid."""
    try:
        pyspdxtools_command.main(args=list(args), standalone_mode=False)
    except SystemExit as exit:
        return exit.code
    return 0


def assert_valid_spdx(path: str | os.PathLike[str]) -> dict:
    """`pyspdxtools -i PATH` accepts the document; returns it parsed."""
    assert pyspdxtools("-i", str(path)) == 0, f"pyspdxtools -i {path} failed (see the log)"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def assert_valid_cyclonedx(path: str | os.PathLike[str]) -> dict:
    """The document validates against the CycloneDX 1.5 JSON schema; returns it parsed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    assert error is None, f"{path} is not valid CycloneDX 1.5: {error and error.data.message}"
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
