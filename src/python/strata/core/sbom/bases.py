"""The packages a base image's own SBOMs list (SPDX 2.x or CycloneDX 1.x JSON, attached to the
base), so that an image's SBOM covers what it inherits. Read tolerantly: what cannot be read is
skipped, with a warning."""

from collections import namedtuple
from typing import Dict, Iterator, List, Optional, Set, Tuple

from strata.core.sbom.licenses import license_ref, parse_expression


class ForeignPackage(namedtuple("ForeignPackage", "name version purl license supplier")):
    """A package a base's SBOM lists: name, version, purl, SPDX expression, supplier (or None)."""

    __slots__ = ()


class _Reader:
    """Reads one base's documents: the LicenseRef texts they declare, and what it could not read
    (a licence it does not understand leaves that package's licence unknown)."""

    def __init__(self) -> None:
        self.texts: Dict[str, str] = {}
        self.problems: Set[str] = set()

    def expression(self, value, declared: Dict[str, str]) -> Optional[str]:
        """A document's licence expression, None for NOASSERTION/NONE and for what is not an
        expression of known ids and declared LicenseRefs."""
        if not isinstance(value, str) or value in ("NOASSERTION", "NONE", ""):
            return None
        try:
            expression, refs = parse_expression(value)
        except ValueError as e:
            self.problems.add(str(e))
            return None
        if not refs <= set(declared):
            self.problems.add(f"licence {value!r} uses a LicenseRef it does not declare")
            return None
        self.texts.update({ref: declared[ref] for ref in refs})
        return expression

    def spdx(self, document: dict) -> Iterator[ForeignPackage]:
        declared = {info.get("licenseId"): str(info.get("extractedText", ""))
                    for info in document.get("hasExtractedLicensingInfos", [])
                    if isinstance(info, dict)}
        for package in document.get("packages", []):
            if package.get("primaryPackagePurpose") in ("CONTAINER", "ARCHIVE"):
                continue  # the image an SBOM describes, and its layers: not packages in it
            purls = [ref.get("referenceLocator") for ref in package.get("externalRefs", [])
                     if isinstance(ref, dict) and ref.get("referenceType") == "purl"]
            supplier = package.get("supplier")
            license = package.get("licenseDeclared")
            if license in (None, "NOASSERTION", "NONE"):
                license = package.get("licenseConcluded")
            yield ForeignPackage(
                str(package["name"]), package.get("versionInfo"), purls[0] if purls else None,
                self.expression(license, declared),
                supplier.partition(":")[2].strip() or None
                if isinstance(supplier, str) and supplier != "NOASSERTION" else None,
            )

    def _cyclonedx_license(self, licenses) -> Optional[str]:
        parts = []
        for choice in licenses or []:
            if "expression" in choice:
                parts.append(self.expression(choice["expression"], {}))
                continue
            license = choice.get("license", {})
            if "id" in license:
                parts.append(self.expression(license["id"], {}))
            elif license.get("name"):
                ref = license_ref(license["name"])
                content = license.get("text", {}).get("content")
                self.texts[ref] = content or f"Named in a base's CycloneDX SBOM: {license['name']}"
                parts.append(ref)
        parts = sorted({part for part in parts if part})
        # CycloneDX leaves a list's meaning open: every licence listed applies (AND) is the
        # reading that claims least.
        return " AND ".join(f"({p})" if " OR " in p else p for p in parts) or None

    def cyclonedx(self, components) -> Iterator[ForeignPackage]:
        for component in components or []:
            if component.get("type") not in ("container", "file"):
                supplier = component.get("supplier", {}).get("name") or component.get("author")
                yield ForeignPackage(str(component["name"]), component.get("version"),
                                     component.get("purl"),
                                     self._cyclonedx_license(component.get("licenses")),
                                     supplier)
            yield from self.cyclonedx(component.get("components"))


def read_base_documents(name: str, documents) -> Tuple[List[ForeignPackage], Dict[str, str],
                                                       List[str]]:
    """(the packages the base's documents list, one entry per (name, version, purl), sorted;
    the texts of the LicenseRefs they use; warnings about what could not be read)."""
    packages: Dict[Tuple, ForeignPackage] = {}
    reader = _Reader()
    warnings: List[str] = []
    for index, document in enumerate(documents):
        what = f"base {name}: attached SBOM {index}"
        if str(document.get("spdxVersion", "")).startswith("SPDX-2."):
            read = reader.spdx(document)
        elif document.get("bomFormat") == "CycloneDX":
            read = reader.cyclonedx(document.get("components"))
        else:
            warnings.append(f"{what} is neither SPDX 2.x nor CycloneDX JSON: skipped")
            continue
        try:
            for package in read:
                key = (package.name, package.version, package.purl)
                if key not in packages or packages[key].license is None:
                    packages[key] = package
        except (KeyError, TypeError, AttributeError) as e:
            warnings.append(f"{what} could not be read to its end ({type(e).__name__}: {e}): "
                            f"the packages before that are kept")
        if reader.problems:
            warnings.append(f"{what}: some licences left unknown "
                            f"({'; '.join(sorted(reader.problems))})")
            reader.problems.clear()
    ordered = sorted(packages.values(), key=lambda p: tuple(str(v) for v in p[:3]))
    return ordered, reader.texts, warnings
