"""The SPDX 2.3 JSON document of an image (strata.core.sbom.model.Model): the image package
DESCRIBES by the document, CONTAINS its layers, its components (each also CONTAINED by its
layer, DEPENDS_ON what it depends on, CONTAINS its files) and its bases (CONTAINING the
packages their own SBOMs list)."""

import hashlib
import re
from typing import List, Optional

from strata.core.sbom.model import Model, oci_purl, web_url
from strata.core.sbom.spec import PackageFacts

NOASSERTION = "NOASSERTION"
# The document namespace's host: reserved (RFC 2606), so the URI names no real place.
NAMESPACE = "https://strata.invalid/spdx"


def _id(*parts) -> str:
    """An SPDX id (`SPDXRef-` then letters, digits, `.` and `-` only)."""
    return "SPDXRef-" + "-".join(re.sub(r"[^A-Za-z0-9.]+", "-", str(p)).strip("-") for p in parts)


def _actor(kind: str, value: Optional[str]) -> Optional[str]:
    """`Name <email>` as an SPDX actor: `Organization: Name (email)`."""
    if not value:
        return None
    name, _, email = value.partition("<")
    name = re.sub(r"[()\n]", " ", name).strip()
    email = email.rstrip(">").strip()
    if not name:
        return None
    return f"{kind}: {name} ({email})" if email else f"{kind}: {name}"


def _package(spdx_id: str, name: str, version: Optional[str] = None,
             license: Optional[str] = None, purl: Optional[str] = None, **fields) -> dict:
    package = {
        "SPDXID": spdx_id,
        "name": name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": license or NOASSERTION,
        "copyrightText": NOASSERTION,
        **{key: value for key, value in fields.items() if value is not None},
    }
    if version:
        package["versionInfo"] = version
    if purl:
        package["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER",
                                    "referenceType": "purl", "referenceLocator": purl}]
    return package


def _relationship(element: str, kind: str, related: str) -> dict:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _component_package(spdx_id: str, facts: PackageFacts, license: Optional[str]) -> dict:
    source = facts.source
    return _package(
        spdx_id, facts.name, facts.version, license, facts.purl,
        primaryPackagePurpose="APPLICATION" if facts.kind == "files" else "LIBRARY",
        supplier=_actor("Person" if facts.kind == "python" else "Organization", facts.supplier),
        homepage=web_url(facts.homepage),
        sourceInfo=f"built from Debian source package {source.name} {source.version}"
        if source else None,
        comment="\n".join(facts.warnings) or None,
    )


def document(sbom: Model) -> dict:
    spec = sbom.spec
    subject = spec.subject
    image = "SPDXRef-Image"
    packages: List[dict] = [_package(
        image, subject.name, subject.tag, purl=sbom.image_purl(),
        primaryPackagePurpose="CONTAINER", comment=f"platform {sbom.platform()}",
    )]
    files: List[dict] = []
    relationships = [_relationship("SPDXRef-DOCUMENT", "DESCRIBES", image)]
    layers = [_id("Layer", index) for index in range(len(spec.layers))]
    for index, (spdx_id, layer) in enumerate(zip(layers, spec.layers)):
        packages.append(_package(
            spdx_id, f"{subject.name} layer {index}",
            primaryPackagePurpose="ARCHIVE", comment=layer.comment or None,
            checksums=[{"algorithm": "SHA256", "checksumValue": layer.diff_id.split(":")[1]}],
        ))
        relationships.append(_relationship(image, "CONTAINS", spdx_id))
    ids = {c.node: _id("Package", index, c.facts.name) for index, c in enumerate(sbom.components)}
    for index, component in enumerate(sbom.components):
        spdx_id = ids[component.node]
        package = _component_package(spdx_id, component.facts, sbom.licenses[component.node])
        packages.append(package)
        relationships.append(_relationship(image, "CONTAINS", spdx_id))
        if component.layer is not None:
            relationships.append(_relationship(layers[component.layer], "CONTAINS", spdx_id))
        for dependency in sorted(set(component.depends)):
            if dependency in ids:
                relationships.append(_relationship(spdx_id, "DEPENDS_ON", ids[dependency]))
        for number, (path, sha256, sha1) in enumerate(component.facts.files or ()):
            file_id = _id("File", index, number)
            files.append({
                "SPDXID": file_id, "fileName": f"./{path}",
                "checksums": [{"algorithm": "SHA1", "checksumValue": sha1},
                              {"algorithm": "SHA256", "checksumValue": sha256}],
                "licenseConcluded": NOASSERTION, "copyrightText": NOASSERTION,
            })
            relationships.append(_relationship(spdx_id, "CONTAINS", file_id))
        if component.facts.files:
            sha1s = "".join(sorted(sha1 for _, _, sha1 in component.facts.files))
            package["filesAnalyzed"] = True
            package["packageVerificationCode"] = {
                "packageVerificationCodeValue": hashlib.sha1(sha1s.encode()).hexdigest()}
    for index, (base, base_packages) in enumerate(sbom.bases):
        base_id = _id("Base", index)
        packages.append(_package(
            base_id, base.name, purl=oci_purl(base.name, base.digest),
            primaryPackagePurpose="CONTAINER",
            comment="layers (bottom first): " + " ".join(base.layers) if base.layers else None,
        ))
        relationships.append(_relationship(image, "CONTAINS", base_id))
        for number, foreign in enumerate(base_packages):
            foreign_id = _id("Base", index, "Package", number, foreign.name)
            packages.append(_package(foreign_id, foreign.name, foreign.version, foreign.license,
                                     foreign.purl,
                                     supplier=_actor("Organization", foreign.supplier)))
            relationships.append(_relationship(base_id, "CONTAINS", foreign_id))
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{subject.name}:{subject.tag}" if subject.tag else subject.name,
        "documentNamespace": f"{NAMESPACE}/{subject.name}/{subject.seed.split(':')[1]}",
        "creationInfo": {"created": spec.created, "creators": ["Tool: strata"]},
        "packages": packages,
        "relationships": relationships,
    }
    if files:
        document["files"] = files
    if sbom.texts:
        document["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "extractedText": text, "name": ref[len("LicenseRef-"):]}
            for ref, text in sorted(sbom.texts.items())]
    if sbom.warnings:
        document["comment"] = "\n".join(sbom.warnings)
    return document
