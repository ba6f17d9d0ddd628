"""The CycloneDX 1.5 JSON document of an image (strata.core.sbom.model.Model): the image as the
metadata's component, a component per node of its closure (its layer's diff_id as the property
`strata:layer`, warnings as `strata:warning`), its bases with the packages their own SBOMs list
nested, and the dependency graph."""

import uuid
from typing import List, Optional

from strata.core.sbom.model import Model, oci_purl, web_url
from strata.core.sbom.spec import SbomComponent

# The serial number's UUID namespace (uuid5 of it and the seed): no real host, like SPDX's.
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://strata.invalid/cyclonedx")


def _properties(*pairs) -> List[dict]:
    return [{"name": name, "value": value} for name, value in pairs]


def _component(component: SbomComponent, license: Optional[str], diff_id: Optional[str]) -> dict:
    facts = component.facts
    result = {"type": "application" if facts.kind == "files" else "library",
              "bom-ref": component.node, "name": facts.name}
    if facts.version:
        result["version"] = facts.version
    if facts.purl:
        result["purl"] = facts.purl
    if license:
        result["licenses"] = [{"expression": license}]
    if facts.supplier:
        result["supplier"] = {"name": facts.supplier}
    if web_url(facts.homepage):
        result["externalReferences"] = [{"type": "website", "url": facts.homepage}]
    properties = _properties(
        *([("strata:layer", diff_id)] if diff_id else []),
        *([("strata:source-package", f"{facts.source.name} {facts.source.version}")]
          if facts.source else []),
        *(("strata:warning", warning) for warning in facts.warnings),
    )
    if properties:
        result["properties"] = properties
    if facts.files:
        result["components"] = [
            {"type": "file", "bom-ref": f"{component.node}#{path}", "name": path,
             "hashes": [{"alg": "SHA-1", "content": sha1}, {"alg": "SHA-256", "content": sha256}]}
            for path, sha256, sha1 in facts.files]
    return result


def document(sbom: Model) -> dict:
    spec = sbom.spec
    subject = spec.subject
    image = {"type": "container", "bom-ref": "image", "name": subject.name,
             **({"version": subject.tag} if subject.tag else {}),
             "properties": _properties(
                 ("strata:platform", sbom.platform()),
                 *(("strata:layer", layer.diff_id) for layer in spec.layers))}
    if sbom.image_purl():
        image["purl"] = sbom.image_purl()
    nodes = {component.node for component in sbom.components}
    components = [
        _component(c, sbom.licenses[c.node],
                   None if c.layer is None else spec.layers[c.layer].diff_id)
        for c in sbom.components]
    dependencies = [{"ref": c.node, "dependsOn": sorted(set(c.depends) & nodes)}
                    for c in sbom.components]
    for index, (base, packages) in enumerate(sbom.bases):
        base_ref = f"base:{index}:{base.name}@{base.digest}"
        nested = []
        for number, package in enumerate(packages):
            nested_component = {"type": "library", "bom-ref": f"{base_ref}#{number}",
                                "name": package.name}
            for key, value in (("version", package.version), ("purl", package.purl)):
                if value:
                    nested_component[key] = value
            if package.license:
                nested_component["licenses"] = [{"expression": package.license}]
            if package.supplier:
                nested_component["supplier"] = {"name": package.supplier}
            nested.append(nested_component)
        base_component = {"type": "container", "bom-ref": base_ref, "name": base.name,
                          "version": base.digest, "purl": oci_purl(base.name, base.digest),
                          "properties": _properties(*(("strata:layer", layer)
                                                      for layer in base.layers))}
        if nested:
            base_component["components"] = nested
        components.append(base_component)
        dependencies.append({"ref": base_ref, "dependsOn": []})
    dependencies.insert(0, {"ref": "image",
                            "dependsOn": sorted(item["bom-ref"] for item in components)})
    metadata = {"timestamp": spec.created, "component": image,
                "tools": {"components": [{"type": "application", "name": "strata"}]}}
    if sbom.warnings:
        metadata["properties"] = _properties(*(("strata:warning", w) for w in sbom.warnings))
    serial = uuid.uuid5(SERIAL_NAMESPACE, f"{subject.name}/{subject.seed}")
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": dependencies,
    }
