"""A Debian archive's package index, trusted the way apt trusts it.

The InRelease file is verified with gpgv against a keyring; its SHA256 list then pins the
Packages file, which is checked before it is parsed. Everything works on bytes the caller
fetched, so the only network code is `fetch_url` and `fetch_indexes`, given a mirror URL (by
default the one the machine's apt uses: `debian_mirror`).
"""

import glob
import gzip
import hashlib
import io
import lzma
import os
import subprocess
import tempfile
import urllib.request
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

from strata.core.build.deb822 import parse_deb822

DEFAULT_GPGV = "/usr/bin/gpgv"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# The Packages fields resolution and locking use; the rest (descriptions, mostly) is dropped
# while parsing, which keeps a full index to a fraction of its text's memory.
INDEX_FIELDS = frozenset({
    "Package", "Version", "Architecture", "Multi-Arch", "Priority", "Depends", "Pre-Depends",
    "Provides", "Filename", "Size", "SHA256",
})

# Debian's release codenames and aliases: what tells a Debian source apart from third-party
# repositories and from -security/-updates, which carry no full index of the release.
DEBIAN_SUITES = frozenset({
    "jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable", "experimental",
})

# OpenPGP hash algorithms apt no longer accepts for signatures: MD5, SHA1, RIPEMD160.
_WEAK_HASHES = {"1", "2", "3"}


class Release(NamedTuple):
    suite: str  # the codename when the Release has one: it stays the same for a release's life
    date: str
    sha256: str  # of the InRelease file
    architectures: Tuple[str, ...]
    components: Tuple[str, ...]
    by_hash: bool
    files: Dict[str, Tuple[str, int]]  # path under dists/<suite>/ -> (sha256, size)


class Index(NamedTuple):
    """What `resolve` needs: the Packages paragraphs and where they came from."""

    suite: str
    date: str
    release_sha256: str
    packages: List[Dict[str, str]]


def verify_inrelease(data: bytes, keyring: str = DEFAULT_KEYRING,
                     gpgv: str = DEFAULT_GPGV) -> str:
    """The signed text of a clearsigned InRelease, or ValueError.

    Like apt: at least one good signature by a key in `keyring` with a strong hash, and no bad
    one; signatures by keys missing from the keyring are ignored. Only the text gpgv extracts
    is returned, so nothing outside the signature can be smuggled in.
    """
    with tempfile.TemporaryDirectory() as tmp:
        signed = os.path.join(tmp, "InRelease")
        plain = os.path.join(tmp, "Release")
        with open(signed, "wb") as f:
            f.write(data)
        result = subprocess.run(
            [gpgv, "--homedir", tmp, "--status-fd", "1", "--keyring", keyring,
             "--output", plain, signed],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
        )
        status = result.stdout.decode("utf-8", "replace")
        signatures = [block.splitlines() for block in status.split("[GNUPG:] NEWSIG")[1:]]
        bad = any(line.startswith("[GNUPG:] BADSIG") for lines in signatures for line in lines)
        good = [lines for lines in signatures if _good_signature(lines)]
        if bad or not good:
            detail = " ".join(result.stderr.decode("utf-8", "replace").split())
            raise ValueError(f"InRelease signature check against {keyring} failed: "
                             f"{'a bad signature' if bad else 'no good signature'} ({detail})")
        with open(plain, encoding="utf-8") as f:
            return f.read()


def _good_signature(status_lines: List[str]) -> bool:
    fields = {line.split()[1]: line.split()[2:] for line in status_lines if len(line.split()) > 1}
    valid = fields.get("VALIDSIG", [])
    return "GOODSIG" in fields and len(valid) > 7 and valid[7] not in _WEAK_HASHES


def parse_release(text: str, sha256: str, suite: Optional[str] = None) -> Release:
    """Release fields; `suite`, when given, must be the Release's Suite or Codename (a mirror
    must not answer one suite with another's signed Release)."""
    paragraphs = parse_deb822(text.splitlines())
    if len(paragraphs) != 1:
        raise ValueError(f"a Release has one paragraph, this one has {len(paragraphs)}")
    fields = paragraphs[0]
    names = {fields.get("Suite"), fields.get("Codename")} - {None}
    if suite is not None and suite not in names:
        raise ValueError(f"asked for suite {suite!r}, got the Release of {sorted(names)}")
    if not names or "Date" not in fields or "SHA256" not in fields:
        raise ValueError("the Release lacks Suite/Codename, Date or SHA256")
    files = {}
    for line in fields["SHA256"].splitlines()[1:]:
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit():
            raise ValueError(f"malformed Release SHA256 line: {line.strip()!r}")
        files[parts[2]] = (parts[0].lower(), int(parts[1]))
    return Release(
        suite=fields.get("Codename") or fields["Suite"],
        date=fields["Date"],
        sha256=sha256,
        architectures=tuple(fields.get("Architectures", "").split()),
        components=tuple(fields.get("Components", "").split()),
        by_hash=fields.get("Acquire-By-Hash", "no").lower() == "yes",
        files=files,
    )


def read_release(inrelease: bytes, suite: Optional[str] = None, keyring: str = DEFAULT_KEYRING,
                 gpgv: str = DEFAULT_GPGV) -> Release:
    """Verifies and parses an InRelease file's bytes."""
    text = verify_inrelease(inrelease, keyring, gpgv)
    return parse_release(text, hashlib.sha256(inrelease).hexdigest(), suite)


def packages_file(release: Release, component: str, arch: str) -> str:
    """The Packages file to fetch for `component` and `arch`: .xz, else .gz, else plain."""
    if arch not in release.architectures or component not in release.components:
        raise ValueError(f"the {release.suite} Release has no {component}/binary-{arch} "
                         f"(architectures {list(release.architectures)}, components "
                         f"{list(release.components)})")
    base = f"{component}/binary-{arch}/Packages"
    for path in (base + ".xz", base + ".gz", base):
        if path in release.files:
            return path
    raise ValueError(f"the {release.suite} Release lists no {base}[.xz|.gz]")


def index_file_url(mirror: str, release: Release, path: str) -> str:
    """Where to fetch `path`: by hash when the archive offers it, so a mirror update between
    fetching InRelease and the file cannot pair them wrongly."""
    base = f"{mirror.rstrip('/')}/dists/{release.suite}"
    if release.by_hash:
        directory = path.rsplit("/", 1)[0]
        return f"{base}/{directory}/by-hash/SHA256/{release.files[path][0]}"
    return f"{base}/{path}"


def read_packages(release: Release, path: str, data: bytes) -> List[Dict[str, str]]:
    """The paragraphs (INDEX_FIELDS only) of the Packages file `path`, whose bytes must match
    the Release's SHA256 and size."""
    if path not in release.files:
        raise ValueError(f"{path} is not listed in the {release.suite} Release")
    expected, size = release.files[path]
    actual = hashlib.sha256(data).hexdigest()
    if (actual, len(data)) != (expected, size):
        raise ValueError(f"{path} does not match the {release.suite} Release: sha256 {actual} "
                         f"({len(data)} bytes), expected {expected} ({size} bytes)")
    raw = io.BytesIO(data)
    stream = (lzma.LZMAFile(raw) if path.endswith(".xz")
              else gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw)
    with io.TextIOWrapper(stream, encoding="utf-8") as text:
        return parse_deb822(_lines(text), INDEX_FIELDS)


def _lines(text: Iterable[str]) -> Iterable[str]:
    return (line.rstrip("\n") for line in text)


def fetch_url(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def fetch_indexes(mirror: str, suite: str, architectures: Iterable[str],
                  component: str = "main", keyring: str = DEFAULT_KEYRING,
                  gpgv: str = DEFAULT_GPGV) -> Iterator[Tuple[str, Index]]:
    """Fetches, verifies and parses `suite`'s Packages index for each architecture from
    `mirror`, all pinned by one InRelease (one snapshot of the archive), one at a time: a
    parsed index is large. Every architecture is checked against the Release first."""
    inrelease = fetch_url(f"{mirror.rstrip('/')}/dists/{suite}/InRelease")
    release = read_release(inrelease, suite, keyring, gpgv)
    paths = {arch: packages_file(release, component, arch) for arch in architectures}
    for arch, path in paths.items():
        packages = read_packages(release, path, fetch_url(index_file_url(mirror, release, path)))
        yield arch, Index(release.suite, release.date, release.sha256, packages)


def debian_mirror(sources_dir: str = "/etc/apt/sources.list.d",
                  sources_list: str = "/etc/apt/sources.list") -> str:
    """The first Debian archive URI in the machine's apt sources (deb822 `*.sources` first, then
    one-line `sources.list` and `*.list`), as build-support/bootstrap.sh finds it."""
    for path in sorted(glob.glob(os.path.join(sources_dir, "*.sources"))):
        with open(path, encoding="utf-8") as f:
            paragraphs = parse_deb822(_lines(f))
        for source in paragraphs:
            if ("deb" in source.get("Types", "").split()
                    and source.get("Enabled", "yes").lower() != "no"
                    and DEBIAN_SUITES.intersection(source.get("Suites", "").split())
                    and source.get("URIs", "").split()):
                return source["URIs"].split()[0].rstrip("/")
    for path in [sources_list] + sorted(glob.glob(os.path.join(sources_dir, "*.list"))):
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if words[:1] != ["deb"]:
                    continue
                if words[1:2] and words[1].startswith("["):  # [option=value ...]
                    end = next((i for i, w in enumerate(words) if w.endswith("]")), len(words))
                    words = words[:1] + words[end + 1:]
                if len(words) >= 3 and words[2] in DEBIAN_SUITES:
                    return words[1].rstrip("/")
    raise ValueError(f"no Debian archive URI in {sources_dir}/*.sources, {sources_list} or "
                     f"{sources_dir}/*.list")
