"""Licence names as SPDX license expressions: Debian's DEP-5 short names, Python packaging's
metadata and classifiers, and the expressions other SBOMs hold, checked against one list of
SPDX ids (those packages use; an id not listed here becomes a LicenseRef, never a guess)."""

import re
from typing import Dict, List, Optional, Set, Tuple

LICENSE_IDS = {
    id.lower(): id for id in (
        "0BSD AFL-2.1 AFL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.0 Apache-1.1 Apache-2.0 "
        "APSL-2.0 Artistic-1.0 Artistic-1.0-Perl Artistic-2.0 Beerware blessing BSD-1-Clause "
        "BSD-2-Clause BSD-3-Clause BSD-4-Clause BSL-1.0 bzip2-1.0.6 CC-BY-3.0 CC-BY-4.0 "
        "CC-BY-SA-3.0 CC-BY-SA-4.0 CC0-1.0 CDDL-1.0 curl EPL-1.0 EPL-2.0 EUPL-1.2 FSFAP FSFUL "
        "FSFULLR FTL GFDL-1.2-only GFDL-1.2-or-later GFDL-1.3-only GFDL-1.3-or-later "
        "GPL-1.0-only GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later GPL-3.0-only "
        "GPL-3.0-or-later HPND ICU IJG ISC LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only "
        "LGPL-2.1-or-later LGPL-3.0-only LGPL-3.0-or-later Libpng libpng-2.0 MIT MIT-0 MPL-1.1 "
        "MPL-2.0 NCSA OFL-1.1 OpenSSL PostgreSQL PSF-2.0 Python-2.0 Ruby Sleepycat "
        "Unicode-DFS-2016 Unlicense Vim W3C WTFPL X11 Zlib ZPL-2.1"
    ).split()
}
EXCEPTION_IDS = {
    id.lower(): id for id in (
        "Autoconf-exception-2.0 Autoconf-exception-3.0 Bison-exception-2.2 "
        "Classpath-exception-2.0 Font-exception-2.0 GCC-exception-2.0 GCC-exception-3.1 "
        "Libtool-exception Linux-syscall-note LLVM-exception OCaml-LGPL-linking-exception "
        "openvpn-openssl-exception Qt-LGPL-exception-1.1 u-boot-exception-2.0 "
        "WxWindows-exception-3.1"
    ).split()
}

# DEP-5 short names whose SPDX id is not the name itself (the GNU family is a pattern below).
_DEBIAN_NAMES = {
    "expat": "MIT", "zope-2.1": "ZPL-2.1", "cc0": "CC0-1.0", "perl": "Artistic-1.0-Perl OR "
    "GPL-1.0-or-later", "psf-2": "PSF-2.0", "artistic": "Artistic-1.0-Perl",
}
_GNU = re.compile(r"^(A|L)?GPL-(\d)(?:\.(\d))?(\+)?$|^GFDL-(\d)\.(\d)(\+)?$", re.IGNORECASE)

# Trove classifiers (after `License :: OSI Approved :: `, or `License :: `) with one SPDX id.
_CLASSIFIERS = {
    "MIT License": "MIT", "Apache Software License": "Apache-2.0",
    "Python Software Foundation License": "PSF-2.0", "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib", "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0", "CC0 1.0 Universal (CC0 1.0) Public "
    "Domain Dedication": "CC0-1.0",
}


def license_ref(name: str) -> str:
    """A LicenseRef id for a licence SPDX has no id for: its name, sanitised."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "-", name.replace("+", "-plus")).strip("-.")
    return f"LicenseRef-{cleaned or 'unnamed'}"


def _spdx_id(name: str) -> Optional[str]:
    """The SPDX id of one licence name (case-insensitive, `Apache-2` as `Apache-2.0`), or None."""
    key = name.lower()
    return LICENSE_IDS.get(key) or LICENSE_IDS.get(f"{key}.0")


def _debian_license(name: str) -> Optional[str]:
    gnu = _GNU.match(name)
    if gnu:
        family, major, minor, plus, fdl_major, fdl_minor, fdl_plus = gnu.groups()
        base = (f"GFDL-{fdl_major}.{fdl_minor}" if fdl_major
                else f"{(family or '').upper()}GPL-{major}.{minor or 0}")
        return LICENSE_IDS.get(f"{base}-{'or-later' if plus or fdl_plus else 'only'}".lower())
    if name.lower() in _DEBIAN_NAMES:
        return _DEBIAN_NAMES[name.lower()]
    if name.endswith("+") and _spdx_id(name[:-1]):
        return _spdx_id(name[:-1]) + "+"
    return _spdx_id(name)


def _exception_id(name: str) -> Optional[str]:
    """`Classpath` (of DEP-5's `with Classpath exception`) or an exception id, if unambiguous."""
    key = name.lower()
    if key in EXCEPTION_IDS:
        return EXCEPTION_IDS[key]
    matches = [id for lower, id in EXCEPTION_IDS.items() if lower.startswith(f"{key}-exception")]
    return matches[0] if len(matches) == 1 else None


def debian_expression(name: str, refs: Dict[str, str]) -> str:
    """A DEP-5 `License:` short name (`GPL-2+ or Artistic, and BSD-3-clause`, `GPL-2+ with
    Font exception`) as an SPDX expression. A licence without an SPDX id becomes a LicenseRef,
    recorded in `refs` (LicenseRef id -> the DEP-5 name it stands for)."""

    def term(words: str) -> str:
        base, with_, exception = words.partition(" with ")
        license = _debian_license(base.strip())
        if with_:
            exception_id = _exception_id(exception.strip()[: -len(" exception")]
                                         if exception.strip().endswith(" exception")
                                         else exception.strip())
            if license and exception_id:
                return f"{license} WITH {exception_id}"
            license = None
        if license is None:
            license = license_ref(words.strip())
            refs[license] = words.strip()
        return license

    def join(parts: List[str], operator: str) -> str:
        parts = sorted(set(parts))
        if len(parts) == 1:
            return parts[0]
        return f" {operator} ".join(f"({p})" if " AND " in p or " OR " in p else p
                                    for p in parts)

    return join([join([join([term(t) for t in alternative.split(" and ")], "AND")
                       for alternative in group.split(" or ")], "OR")
                 for group in re.split(r",\s*and\s+", name.strip())], "AND")


def classifier_license(classifiers: List[str]) -> Tuple[Optional[str], List[str]]:
    """(the SPDX expression of a distribution's licence classifiers or None, the classifiers
    without an SPDX id). Several classifiers are alternatives (dual licensing): OR."""
    ids, unknown = [], []
    for classifier in classifiers:
        parts = [part.strip() for part in classifier.split("::")]
        if parts[0] != "License" or len(parts) < 2:
            continue
        name = parts[-1]
        license = _CLASSIFIERS.get(name) or _spdx_id(name)
        if license:
            ids.append(license)
        else:
            unknown.append(classifier)
    if unknown or not ids:
        return None, unknown
    return " OR ".join(sorted(set(ids))), unknown


_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.:+-]+)")


def parse_expression(text: str) -> Tuple[str, Set[str]]:
    """An SPDX license expression with known ids only, written canonically, and the
    LicenseRefs it uses; ValueError for anything else."""
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match:
            raise ValueError(f"not an SPDX license expression: {text!r}")
        tokens.append(match.group(1))
        position = match.end()
    refs: Set[str] = set()

    def peek_operator(operator: str) -> bool:
        return bool(tokens) and tokens[0].upper() == operator

    def expression() -> str:
        parts = [conjunction()]
        while peek_operator("OR"):
            tokens.pop(0)
            parts.append(conjunction())
        return " OR ".join(parts)

    def conjunction() -> str:
        parts = [atom()]
        while peek_operator("AND"):
            tokens.pop(0)
            parts.append(atom())
        return " AND ".join(parts)

    def atom() -> str:
        if not tokens:
            raise ValueError(f"not an SPDX license expression: {text!r}")
        token = tokens.pop(0)
        if token == "(":
            inner = expression()
            if not tokens or tokens.pop(0) != ")":
                raise ValueError(f"unbalanced parentheses in {text!r}")
            return f"({inner})"
        plus = token.endswith("+") and len(token) > 1
        name = token[:-1] if plus else token
        if name.startswith("LicenseRef-") and not plus:
            refs.add(name)
            license = name
        elif name.lower() in LICENSE_IDS:
            license = LICENSE_IDS[name.lower()] + ("+" if plus else "")
        else:
            raise ValueError(f"{token!r} is not an SPDX license id Strata knows")
        if peek_operator("WITH"):
            tokens.pop(0)
            exception = tokens.pop(0).lower() if tokens else ""
            if exception not in EXCEPTION_IDS:
                raise ValueError(f"unknown licence exception in {text!r}")
            license += f" WITH {EXCEPTION_IDS[exception]}"
        return license

    result = expression()
    if tokens:
        raise ValueError(f"not an SPDX license expression: {text!r}")
    return result, refs


class LicenseTable:
    """The LicenseRefs of one document and their texts. A LicenseRef that two packages use with
    different texts (two Debian packages' `public-domain`) is renamed for the later one
    (`LicenseRef-public-domain-2`): a document gives each LicenseRef one text."""

    def __init__(self) -> None:
        self.texts: Dict[str, str] = {}

    def add(self, expression: Optional[str], texts: Dict[str, str]) -> Optional[str]:
        """`expression` as this document writes it, its LicenseRefs' texts recorded."""
        if expression is None:
            return None
        for ref in sorted(set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", expression))):
            text = texts.get(ref) or f"{ref}: no text was recorded for this licence"
            name, number = ref, 1
            while self.texts.get(name, text) != text:
                number += 1
                name = f"{ref}-{number}"
            self.texts[name] = text
            if name != ref:
                expression = re.sub(rf"{re.escape(ref)}(?![A-Za-z0-9.-])", name, expression)
        return expression
