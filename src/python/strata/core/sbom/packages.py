"""The facts an SBOM lists of a third-party package: a .deb's control fields and its licence
from a DEP-5 copyright file, a wheel's METADATA, a Nix store path's name; purls.

Metadata that cannot be read never fails: what is known is kept and a warning says what is
missing. Only a file that is not a .deb, or not a zip, is an error.
"""

import email.parser
import os
import re
import zipfile
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

from strata.core.build.deb import control_fields, open_deb
from strata.core.build.deb822 import parse_deb822
from strata.core.sbom.licenses import classifier_license, debian_expression, parse_expression
from strata.core.build.spec import normalise_path
from strata.core.sbom.spec import PackageFacts, SourcePackage

DEP5_FORMAT = "www.debian.org/doc/packaging-manuals/copyright-format/1.0"


def _purl_version(version: str) -> str:
    """A version as purl (and packageurl-python) writes it: `+` as %2B, `:` and `~` kept."""
    return quote(version, safe=":")


def deb_purl(name: str, version: str, architecture: Optional[str]) -> str:
    purl = f"pkg:deb/debian/{quote(name, safe='')}@{_purl_version(version)}"
    return f"{purl}?arch={quote(architecture, safe='')}" if architecture else purl


def nix_facts(store_path: str) -> PackageFacts:
    """A Nix store path as a package: its name and version split as Nix's `parseDrvName`
    splits them (at the first `-` not followed by a letter: `hello-2.12` is `hello` 2.12,
    `python3.11-six-1.16.0` is `python3.11-six` 1.16.0). Nix keeps no licence in the store."""
    name = store_path.rsplit("/", 1)[-1].split("-", 1)[1]
    for i, char in enumerate(name[:-1]):
        if char == "-" and not name[i + 1].isalpha():
            return PackageFacts("nix", name[:i], name[i + 1:])
    return PackageFacts("nix", name)


def pypi_name(name: str) -> str:
    """A distribution's name as PyPI (and purl) normalise it: lowercase, runs of `-_.` as `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_purl(name: str, version: Optional[str]) -> str:
    purl = f"pkg:pypi/{pypi_name(name)}"
    return f"{purl}@{_purl_version(version)}" if version else purl


def _paragraph_text(value: str) -> str:
    """A deb822 multi-line value's continuation lines as text (` .` lines are blank lines)."""
    lines = [line.strip() for line in value.split("\n")[1:]]
    return "\n".join("" if line == "." else line for line in lines)


def dep5_license(package: str, copyright: str) -> Tuple[Optional[str], Dict[str, str], List[str]]:
    """(the SPDX expression of a DEP-5 copyright file's Files paragraphs, the texts of the
    LicenseRefs it uses, warnings): None and a warning when the file is not DEP-5."""
    try:
        paragraphs = parse_deb822(copyright.splitlines())
    except ValueError:  # free text, as most non-DEP-5 copyright files are
        paragraphs = []
    if not paragraphs or DEP5_FORMAT not in paragraphs[0].get("Format", ""):
        return None, {}, [f"{package}: /usr/share/doc/{package}/copyright is not "
                          f"machine-readable (DEP-5): licence unknown"]
    standalone = {p["License"].split("\n")[0].strip(): _paragraph_text(p["License"])
                  for p in paragraphs[1:] if "License" in p and "Files" not in p}
    files = [p for p in paragraphs[1:] if "Files" in p]
    names = sorted({p["License"].split("\n")[0].strip() for p in files if "License" in p})
    refs: Dict[str, str] = {}
    expressions = [debian_expression(name, refs) for name in names if name]
    if not expressions:
        return None, {}, [f"{package}: /usr/share/doc/{package}/copyright names no licence in "
                          f"its Files paragraphs: licence unknown"]
    inline = {p["License"].split("\n")[0].strip(): _paragraph_text(p["License"]) for p in files
              if "License" in p}
    texts = {ref: standalone.get(name) or inline.get(name)
             or f"See /usr/share/doc/{package}/copyright" for ref, name in refs.items()}
    parts = sorted({term for expression in expressions for term in _and_terms(expression)})
    license = " AND ".join(f"({p})" if " OR " in p else p for p in parts)
    return license, texts, []


def _and_terms(expression: str) -> List[str]:
    """The top-level AND terms of an expression, so that the file's licences are listed once
    (`BSD-3-clause and Sleepycat` and `BSD-3-clause` name BSD-3-Clause once), parentheses
    around a term dropped (they are added back where it needs them)."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(expression):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and expression.startswith(" AND ", i):
            terms.append(expression[start:i])
            start = i + len(" AND ")
    terms.append(expression[start:])
    return [t[1:-1] if _parenthesised(t) else t for t in terms]


def _parenthesised(term: str) -> bool:
    """`(a OR b)`, not `(a AND b) OR (c AND d)`."""
    depth = 0
    for i, char in enumerate(term):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return i == len(term) - 1 and term.startswith("(")
    return False


def describe_deb(path: str) -> PackageFacts:
    """A .deb's control fields, and its licence from its DEP-5 copyright file."""
    with open(path, "rb") as f, open_deb(f) as (control, tar):
        fields = control_fields(control)
        package = fields["Package"]
        doc_dir = f"usr/share/doc/{package}"
        copyright, linked_to = None, None
        for info in tar:
            name = normalise_path(info.name, "data.tar")
            if name in (doc_dir, f"{doc_dir}/copyright") and info.issym():
                linked_to = info.linkname
            elif name == f"{doc_dir}/copyright" and info.isreg():
                copyright = tar.extractfile(info).read().decode("utf-8", "replace")
    version = fields.get("Version")
    architecture = fields.get("Architecture")
    source_name, _, source_version = fields.get("Source", "").partition("(")
    source = (SourcePackage(source_name.strip(), source_version.strip(" )") or version)
              if source_name.strip() else None)
    if copyright is not None:
        license, texts, warnings = dep5_license(package, copyright)
    elif linked_to is not None:
        license, texts, warnings = None, {}, [
            f"{package}: /{doc_dir}/copyright is in another package's doc directory (a symlink "
            f"to {linked_to}): licence unknown"]
    else:
        license, texts, warnings = None, {}, [
            f"{package}: the .deb has no /{doc_dir}/copyright: licence unknown"]
    return PackageFacts(
        "deb", package, version=version, architecture=architecture, source=source,
        supplier=fields.get("Maintainer"), homepage=fields.get("Homepage"), license=license,
        license_texts=texts, warnings=tuple(warnings),
        purl=deb_purl(package, version, architecture) if version else None,
    )


def _person(name: Optional[str], email: Optional[str]) -> Optional[str]:
    if name and email and "<" not in email:
        return f"{name} <{email}>"
    return name or email or None


def _homepage(metadata) -> Optional[str]:
    if metadata.get("Home-page", "").strip() not in ("", "UNKNOWN"):
        return metadata["Home-page"].strip()
    urls = [url.partition(",") for url in metadata.get_all("Project-URL", [])]
    for label, _, url in urls:
        if label.strip().lower().replace("-", "") in ("homepage", "home", "source"):
            return url.strip()
    return urls[0][2].strip() if urls else None


def _python_license(name: str, metadata) -> Tuple[Optional[str], List[str]]:
    """License-Expression, else License if it is an SPDX expression, else the classifiers."""
    for field in ("License-Expression", "License"):
        value = (metadata.get(field) or "").strip()
        if value:
            try:
                expression, refs = parse_expression(value)
            except ValueError:
                continue
            if not refs:  # a wheel carries no text for a LicenseRef
                return expression, []
    classifiers = metadata.get_all("Classifier", [])
    license, unknown = classifier_license(classifiers)
    if license:
        return license, []
    said = metadata.get("License-Expression") or metadata.get("License") or ""
    details = [f"License {said.splitlines()[0]!r}" if said.strip() else "no License field"]
    details += [f"classifier {c!r}" for c in unknown]
    return None, [f"{name}: no SPDX licence in its metadata ({', '.join(details)}): "
                  f"licence unknown"]


def describe_wheel(path: str) -> PackageFacts:
    """A distribution's METADATA, from a zip holding `<name>.dist-info/` at its top."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a wheel: {e}") from None
    with archive:
        metadata_files = sorted(n for n in archive.namelist()
                                if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        text = (archive.read(metadata_files[0]).decode("utf-8", "replace")
                if metadata_files else None)
    stem = os.path.basename(path)
    stem = stem[: -len(".whl")] if stem.endswith(".whl") else stem
    guessed_name, _, rest = stem.partition("-")
    guessed_version = rest.partition("-")[0] or None
    if text is None:
        return PackageFacts(
            "python", guessed_name, version=guessed_version,
            purl=pypi_purl(guessed_name, guessed_version),
            warnings=(f"{guessed_name}: {os.path.basename(path)} has no "
                      f"<name>.dist-info/METADATA: name and version from its file name, "
                      f"licence unknown",),
        )
    metadata = email.parser.HeaderParser().parsestr(text)
    name = (metadata.get("Name") or guessed_name).strip()
    version = (metadata.get("Version") or guessed_version or "").strip() or None
    license, warnings = _python_license(name, metadata)
    supplier = (_person(metadata.get("Author"), metadata.get("Author-email"))
                or _person(metadata.get("Maintainer"), metadata.get("Maintainer-email")))
    return PackageFacts(
        "python", name, version=version, supplier=supplier, homepage=_homepage(metadata),
        license=license, purl=pypi_purl(name, version), warnings=tuple(warnings),
    )
