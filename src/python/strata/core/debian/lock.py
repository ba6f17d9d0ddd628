"""Debian packages as store nodes: version comparison, dependency resolution and the lockfile.

`resolve` closes a set of requested packages over Pre-Depends and Depends the way apt picks
packages, deterministically; each locked package is a store node that references the packages
its dependencies resolved to, so the popularity contest puts libc6 at the bottom.

Essential packages are not special: like every package, one is in the closure only when it is
requested or a followed dependency names it. Debian policy lets packages use Essential ones
(a shell, coreutils, ...) without declaring it, since a Debian system always has them; an image
built from a lock has only what the lock holds, so whatever relies on an undeclared Essential
package (maintainer scripts, shell-outs to /bin/sh) needs it requested explicitly.
"""

import json
import re
from collections import deque
from typing import Dict, Iterable, List, NamedTuple, Optional, Set

from strata.core.atomic import write_bytes_atomically
from strata.core.debian.architectures import check_architecture
from strata.core.debian.index import DEFAULT_GPGV, DEFAULT_KEYRING, Index, fetch_indexes

# 2: one resolution per architecture (`architectures`); 1 had a single `architecture`.
LOCK_VERSION = 2

# --- Versions (deb-version(7), as dpkg's verrevcmp compares them) ---


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _order(char: str) -> int:
    if not char or _is_digit(char):
        return 0
    if char.isascii() and char.isalpha():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating non-digit runs (letters < others, `~` before everything,
    even the end) and numeric runs compared as numbers."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            ac, bc = _order(a[i : i + 1]), _order(b[j : j + 1])
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while a[i : i + 1] == "0":
            i += 1
        while b[j : j + 1] == "0":
            j += 1
        while _is_digit(a[i : i + 1]) and _is_digit(b[j : j + 1]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if _is_digit(a[i : i + 1]):
            return 1
        if _is_digit(b[j : j + 1]):
            return -1
        if first_diff:
            return first_diff
    return 0


class Version(NamedTuple):
    epoch: int
    upstream: str
    revision: str

    @classmethod
    def parse(cls, text: str) -> "Version":
        version = text.strip()
        epoch, colon, rest = version.partition(":")
        if not colon:
            epoch, rest = "0", version
        upstream, dash, revision = rest.rpartition("-")
        if not dash:
            upstream, revision = rest, ""
        if not (epoch.isdigit() and re.fullmatch(r"[A-Za-z0-9.+~:-]+", upstream)
                and re.fullmatch(r"[A-Za-z0-9.+~]+" if dash else "", revision)):
            raise ValueError(f"invalid Debian version {text!r}")
        return cls(int(epoch), upstream, revision)


def compare_versions(a: str, b: str) -> int:
    """<0, 0 or >0 as Debian version `a` sorts before, with or after `b`."""
    va, vb = Version.parse(a), Version.parse(b)
    if va.epoch != vb.epoch:
        return va.epoch - vb.epoch
    return _compare_part(va.upstream, vb.upstream) or _compare_part(va.revision, vb.revision)


# --- Relations (Depends, Pre-Depends, Provides) ---

_OPERATORS = {"<<": "<<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">>",
              "<": "<=", ">": ">="}  # the obsolete `<` and `>` mean `<=` and `>=`
_RELATION = re.compile(
    r"\s*(?P<name>[a-z0-9][a-z0-9+.-]*)(?::(?P<arch>[a-z0-9-]+))?"
    r"\s*(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^\s)]+)\s*\))?\s*"
)


class Relation(NamedTuple):
    name: str
    arch: Optional[str]  # "any", "native", an architecture, or None
    op: Optional[str]
    version: Optional[str]

    def __str__(self) -> str:
        arch = f":{self.arch}" if self.arch else ""
        version = f" ({self.op} {self.version})" if self.op else ""
        return f"{self.name}{arch}{version}"


def parse_relations(text: str) -> List[List[Relation]]:
    """`a (>= 1) | b, c:any` -> [[a (>= 1), b], [c:any]]: groups of alternatives."""
    groups = []
    for group in text.split(","):
        if not group.strip():
            continue
        alternatives = []
        for alternative in group.split("|"):
            match = _RELATION.fullmatch(alternative)
            if match is None:
                raise ValueError(f"cannot parse the relation {alternative.strip()!r} in "
                                 f"{' '.join(text.split())!r}")
            op = match["op"] and _OPERATORS[match["op"]]
            alternatives.append(Relation(match["name"], match["arch"], op, match["version"]))
        groups.append(alternatives)
    return groups


def version_satisfies(version: str, op: Optional[str], required: Optional[str]) -> bool:
    if op is None:
        return True
    cmp = compare_versions(version, required)
    return {"<<": cmp < 0, "<=": cmp <= 0, "=": cmp == 0, ">=": cmp >= 0, ">>": cmp > 0}[op]


# --- Resolution ---

_PRIORITIES = ("required", "important", "standard", "optional", "extra")


class _Pool:
    """The index's candidates for one architecture: per name the highest version of the
    packages built for it or for `all` (apt's candidate), and who provides each name."""

    def __init__(self, paragraphs: Iterable[Dict[str, str]], arch: str):
        self.arch = arch
        self.packages: Dict[str, Dict[str, str]] = {}
        for paragraph in paragraphs:
            if paragraph.get("Architecture") not in (arch, "all"):
                continue
            name = paragraph["Package"]
            old = self.packages.get(name)
            if old is None or compare_versions(paragraph["Version"], old["Version"]) > 0:
                self.packages[name] = paragraph
        self.providers: Dict[str, List[tuple]] = {}  # name -> [(rank, provider, version)]
        for name in sorted(self.packages):
            paragraph = self.packages[name]
            priority = paragraph.get("Priority", "optional")
            rank = _PRIORITIES.index(priority) if priority in _PRIORITIES else len(_PRIORITIES)
            for group in parse_relations(paragraph.get("Provides", "")):
                provided = group[0]
                if len(group) > 1 or provided.op not in (None, "="):
                    raise ValueError(f"{name}: invalid Provides {paragraph['Provides']!r}")
                self.providers.setdefault(provided.name, []).append(
                    (rank, name, provided.version))
        for providers in self.providers.values():
            providers.sort()

    def _arch_ok(self, paragraph: Dict[str, str], relation: Relation) -> bool:
        """dpkg's rule for arch-qualified relations, on a pool of one architecture."""
        if relation.arch == "any":
            return paragraph.get("Multi-Arch") == "allowed"
        return relation.arch in (None, "native", self.arch)

    def satisfiers(self, relation: Relation) -> List[str]:
        """Packages satisfying `relation`, best first: the real package, then providers by
        priority and name. A versioned relation needs a versioned Provides."""
        found = []
        real = self.packages.get(relation.name)
        if real is not None and self._arch_ok(real, relation) and version_satisfies(
                real["Version"], relation.op, relation.version):
            found.append(relation.name)
        for _, provider, version in self.providers.get(relation.name, ()):
            if self._arch_ok(self.packages[provider], relation) and (
                    relation.op is None
                    or version is not None and version_satisfies(version, relation.op,
                                                                 relation.version)):
                found.append(provider)
        return found

    def why_not(self, relation: Relation) -> str:
        real = self.packages.get(relation.name)
        offers = [f"{relation.name} {real['Version']}"
                  + ("" if self._arch_ok(real, relation) else " (not Multi-Arch: allowed)")
                  ] if real else []
        offers += [f"{provider} provides {relation.name}" + (f" (= {version})" if version else "")
                   for _, provider, version in self.providers.get(relation.name, ())]
        if not offers:
            return f"no package or provider of {relation.name} for {self.arch} in the index"
        return f"the index for {self.arch} has only {', '.join(offers)}"


def resolve(index: Index, requested: Iterable[str], arch: str) -> dict:
    """One architecture's part of a lock (see `make_lock`): `requested` and its
    Pre-Depends/Depends closure in `index`, and the snapshot it came from.

    Like apt: an alternative group is satisfied by the first alternative that an already
    selected package satisfies, else by the first satisfiable one; a name is satisfied by the
    real package, else by a provider. Groups with a choice wait until every unconditional
    dependency is in, so that they see as many selected packages as possible. Recommends and
    Suggests are not followed, Conflicts and Breaks not checked. `requested` entries may carry
    a version relation: "python3.11 (>= 3.11.2)".
    """
    pool = _Pool(index.packages, arch)
    selected: Dict[str, Set[str]] = {}  # name -> the names its dependencies resolved to
    pending: deque = deque()
    choices: deque = deque()  # (needer, field, group) with more than one alternative

    def select(name: str) -> None:
        if name not in selected:
            selected[name] = set()
            pending.append(name)

    def chosen(group: List[Relation]) -> Optional[str]:
        for relation in group:
            for name in pool.satisfiers(relation):
                if name in selected:
                    return name
        return None

    def unsatisfiable(needer: str, field: str, group: List[Relation]) -> ValueError:
        package = pool.packages[needer]
        reasons = "; ".join(pool.why_not(relation) for relation in group)
        return ValueError(f"{needer} {package['Version']} {field}: "
                          f"{' | '.join(map(str, group))}, which cannot be satisfied: {reasons}")

    requested = sorted(set(requested))
    for text in requested:
        groups = parse_relations(text)
        if len(groups) != 1 or len(groups[0]) != 1:
            raise ValueError(f"requested package {text!r} must be one name, optionally with "
                             f"a version relation")
        (relation,) = groups[0]
        found = pool.satisfiers(relation)
        if not found:
            raise ValueError(f"requested package {text!r}: {pool.why_not(relation)}")
        select(found[0])
    while pending or choices:
        if pending:
            needer = pending.popleft()
            for field in ("Pre-Depends", "Depends"):
                for group in parse_relations(pool.packages[needer].get(field, "")):
                    name = chosen(group)
                    if name is None and len(group) > 1:
                        choices.append((needer, field, group))
                        continue
                    if name is None:
                        found = pool.satisfiers(group[0])
                        if not found:
                            raise unsatisfiable(needer, field, group)
                        name = found[0]
                        select(name)
                    selected[needer].add(name)
        else:
            needer, field, group = choices.popleft()
            name = chosen(group)
            if name is None:
                name = next((found[0] for found in map(pool.satisfiers, group) if found), None)
                if name is None:
                    raise unsatisfiable(needer, field, group)
                select(name)
            selected[needer].add(name)
    return {
        "snapshot": {"release_sha256": index.release_sha256, "date": index.date},
        "packages": {name: _locked(pool.packages[name], deps - {name})
                     for name, deps in sorted(selected.items())},
    }


def make_lock(suite: str, requested: Iterable[str], resolutions: Dict[str, dict]) -> dict:
    """The lock: `requested` from `suite`, resolved for each architecture by `resolve`."""
    return {
        "lock_version": LOCK_VERSION,
        "suite": suite,
        "requested": sorted(set(requested)),
        "architectures": dict(sorted(resolutions.items())),
    }


def _locked(paragraph: Dict[str, str], depends: Set[str]) -> dict:
    name = paragraph["Package"]
    missing = [f for f in ("Filename", "SHA256", "Size") if f not in paragraph]
    if missing or not paragraph.get("Size", "").isdigit():
        raise ValueError(f"the index entry of {name} lacks a valid {', '.join(missing) or 'Size'}")
    return {
        "version": paragraph["Version"],
        "architecture": paragraph["Architecture"],
        "path": paragraph["Filename"],
        "sha256": paragraph["SHA256"].lower(),
        "size": int(paragraph["Size"]),
        "depends": sorted(depends),
    }


# --- Lockfile ---

_PACKAGE_KEYS = {"version": str, "architecture": str, "path": str, "sha256": str, "size": int,
                 "depends": list}


def lock_bytes(lock: dict) -> bytes:
    """The lock as stable JSON: sorted keys, two-space indent, ASCII, final newline."""
    return (json.dumps(lock, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def write_lock(lock: dict, path) -> None:
    check_lock(lock, str(path))
    write_bytes_atomically(path, lock_bytes(lock))


def read_lock(path) -> dict:
    """A lock written by `write_lock`, checked (see `check_lock`)."""
    with open(path, encoding="utf-8") as f:
        lock = json.load(f)
    check_lock(lock, str(path))
    return lock


def check_lock(lock, what: str) -> None:
    """A ValueError naming `what` unless `lock` has the shape `make_lock` gives it: each
    architecture's packages of that architecture or `all`, every depends entry locked, every
    path under pool/."""
    if not isinstance(lock, dict) or "lock_version" not in lock:
        raise ValueError(f"{what}: a Debian lock must be a JSON object with a lock_version")
    if lock["lock_version"] != LOCK_VERSION:
        raise ValueError(f"{what}: lock_version {lock['lock_version']!r} is not "
                         f"{LOCK_VERSION}, the version this Strata reads")
    expected = {"lock_version", "suite", "requested", "architectures"}
    if set(lock) != expected:
        raise ValueError(f"{what}: a Debian lock needs exactly the keys {sorted(expected)}")
    if not isinstance(lock["requested"], list):
        raise ValueError(f"{what}: requested must be a list")
    resolutions = lock["architectures"]
    if not isinstance(resolutions, dict) or not resolutions:
        raise ValueError(f"{what}: architectures must be an object with at least one "
                         f"architecture")
    for arch, resolution in resolutions.items():
        try:
            check_architecture(arch)
        except ValueError as e:
            raise ValueError(f"{what}: architectures: {e}") from None
        _check_resolution(resolution, arch, f"{what}: architectures.{arch}")


def _check_resolution(resolution, arch: str, what: str) -> None:
    if not isinstance(resolution, dict) or set(resolution) != {"snapshot", "packages"}:
        raise ValueError(f"{what} needs exactly the keys ['packages', 'snapshot']")
    if (not isinstance(resolution["snapshot"], dict)
            or set(resolution["snapshot"]) != {"release_sha256", "date"}):
        raise ValueError(f"{what}: snapshot needs exactly release_sha256 and date")
    packages = resolution["packages"]
    if not isinstance(packages, dict):
        raise ValueError(f"{what}: packages must be an object")
    for name, package in packages.items():
        if not isinstance(package, dict) or set(package) != set(_PACKAGE_KEYS) or any(
                not isinstance(package[key], kind) for key, kind in _PACKAGE_KEYS.items()):
            raise ValueError(f"{what}: package {name!r} needs exactly "
                             f"{sorted(_PACKAGE_KEYS)} with the right types")
        if package["architecture"] not in (arch, "all"):
            raise ValueError(f"{what}: {name} is built for {package['architecture']}, "
                             f"not {arch} or all")
        unknown = [dep for dep in package["depends"] if dep not in packages]
        if unknown:
            raise ValueError(f"{what}: {name} depends on {unknown}, which are not locked")
        if not package["path"].startswith("pool/") or ".." in package["path"].split("/"):
            raise ValueError(f"{what}: {name} has path {package['path']!r}, not under pool/")


def debian_lock_command(options) -> None:
    """`python -m strata.core debian-lock`: fetch and verify a suite's index for each
    architecture (one snapshot), resolve each, lock them together."""
    if not options.arch:
        raise ValueError("at least one --arch is needed")
    architectures = sorted({check_architecture(arch) for arch in options.arch})
    suite, resolutions = options.suite, {}
    for arch, index in fetch_indexes(options.mirror, options.suite, architectures,
                                     keyring=options.keyring or DEFAULT_KEYRING,
                                     gpgv=options.gpgv or DEFAULT_GPGV):
        suite = index.suite  # the Release's codename, when `suite` is an alias (`stable`)
        resolutions[arch] = resolve(index, options.package, arch)
    write_lock(make_lock(suite, options.package, resolutions), options.out)
