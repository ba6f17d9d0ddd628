"""What an image's two SBOM documents say, gathered once from its spec."""

import re
from collections import namedtuple
from typing import List, Optional, Tuple
from urllib.parse import quote

from strata.core.sbom.bases import ForeignPackage, read_base_documents
from strata.core.sbom.licenses import LicenseTable
from strata.core.sbom.spec import SbomBase, SbomComponent, SbomSpec


class Model(namedtuple("Model", "spec components licenses bases texts warnings")):
    """What both documents say: the spec, its components sorted by node, each one's licence as
    the documents write it (`licenses`: node -> expression or None), each base with the
    packages its own SBOMs list, the LicenseRef texts, and the document-wide warnings (the
    rules', and those about the bases' SBOMs)."""

    __slots__ = ()

    def image_purl(self):
        """`pkg:oci/<name>@<digest>?repository_url=...&tag=...` of the image, or None before
        it has a digest."""
        subject = self.spec.subject
        if subject.digest is None:
            return None
        return oci_purl(subject.name, subject.digest, subject.tag)

    def platform(self) -> str:
        """`os/architecture[/variant]`."""
        return "/".join(part for part in self.spec.platform if part)


def web_url(value: Optional[str]) -> Optional[str]:
    """A homepage as both formats accept it (an http(s) URL), or None."""
    return value if value and re.fullmatch(r"https?://[^\s<>\"]+", value) else None


def oci_purl(name: str, digest: str, tag: Optional[str] = None) -> str:
    """The purl of an image by digest (a repository's last component is the purl's name)."""
    repository, _, last = name.rpartition("/")
    qualifiers = [f"repository_url={quote(repository, safe='/:')}"] if repository else []
    if tag:
        qualifiers.append(f"tag={quote(tag, safe='')}")
    purl = f"pkg:oci/{quote(last.lower(), safe='')}@{quote(digest, safe=':')}"
    return f"{purl}?{'&'.join(qualifiers)}" if qualifiers else purl


def model(spec: SbomSpec) -> Model:
    """The spec's components in a fixed order, with their licences and the bases' packages
    under one table of LicenseRefs."""
    table = LicenseTable()
    components: List[SbomComponent] = sorted(spec.components, key=lambda c: c.node)
    licenses = {c.node: table.add(c.facts.license, c.facts.license_texts) for c in components}
    warnings = list(spec.warnings)
    bases: List[Tuple[SbomBase, List[ForeignPackage]]] = []
    for base in spec.bases:
        packages, texts, base_warnings = read_base_documents(base.name, base.documents)
        bases.append((base, [p._replace(license=table.add(p.license, texts)) for p in packages]))
        warnings += base_warnings
    return Model(spec, components, licenses, bases, table.texts, warnings)
