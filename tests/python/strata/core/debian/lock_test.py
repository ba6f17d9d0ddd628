import hashlib
import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest

from strata.core.build.deb822 import parse_deb822
from strata.core.debian.architectures import (
    ARCHITECTURES,
    check_architecture,
    debian_architecture,
)
from strata.core.debian.lock import (
    Relation,
    compare_versions,
    lock_bytes,
    make_lock,
    parse_relations,
    read_lock,
    resolve,
    write_lock,
)
from strata.core.debian.index import (
    Index,
    debian_mirror,
    fetch_url,
    index_file_url,
    packages_file,
    read_packages,
    read_release,
)
from strata.core.graph.layering import order_by_popularity
from strata_harness.tools import unavailable

# --- Version comparison, checked against dpkg itself ---

KNOWN_PAIRS = [
    ("1.0", "1.0"), ("1.0", "1.0-0"), ("1.0~rc1", "1.0"), ("1.0~~", "1.0~"), ("1.0~", "1.0"),
    ("1.0", "1.0+"), ("1.0a", "1.0+"), ("1.0a", "1.0."), ("1:0.1", "2.0"), ("0:2.0", "2.0"),
    ("2.36-9+deb12u4", "2.36-9+deb12u10"), ("3.11.2-6", "3.11.2-6+deb12u2"),
    ("1.2.3-1~bpo12+1", "1.2.3-1"), ("10", "9"), ("1.01", "1.1"), ("1.001", "1.1"),
    ("1.0-1ubuntu1", "1.0-1"), ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
    ("1:9.18.24-1", "1:9.18.19-1~deb12u1"), ("1.0-a", "1.0-A"), ("1.0-~", "1.0"),
    ("1.0-1", "1.0-1.1"), ("0.0.0", "0"), ("1.0.0~beta", "1.0.0~alpha"), ("1~", "1"),
    ("5:1.0", "4:99"), ("1.2-3-4", "1.2-3"), ("1:2:3", "1:2.3"), ("3.0.2+dfsg", "3.0.2"),
]


def random_version(rng: random.Random) -> str:
    def part(alphabet: str, first: str = "") -> str:
        return first + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    digitish = "0123456789" * 4 + "ab.+~Z"
    epoch = rng.choice(["", "", "", "1:", "0:", "2:"])
    upstream = part(digitish, rng.choice("0123456789"))
    if rng.random() < 0.5:
        return epoch + upstream
    if rng.random() < 0.2:  # hyphens in the upstream version need a revision
        upstream += "-" + part(digitish, "1")
    return epoch + upstream + "-" + part(digitish, rng.choice("019a~"))


def dpkg_accepts(version: str) -> bool:
    """Valid, and without the leading non-digit dpkg warns about."""
    return re.fullmatch(r"(\d+:)?\d[A-Za-z0-9.+~]*(-[A-Za-z0-9.+~-]*[A-Za-z0-9.+~])?",
                        version) is not None


def dpkg_order(pairs: List[Tuple[str, str]]) -> List[int]:
    """dpkg --compare-versions for every pair, in one shell (one dpkg call or two per pair)."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        unavailable("dpkg is not on PATH")
    script = ("while read -r a b; do if dpkg --compare-versions \"$a\" lt \"$b\"; then echo -1;"
              " elif dpkg --compare-versions \"$a\" eq \"$b\"; then echo 0; else echo 1; fi;"
              " done")
    out = subprocess.run(["sh", "-c", script], input="".join(f"{a} {b}\n" for a, b in pairs),
                         capture_output=True, text=True, check=True)
    assert not out.stderr, out.stderr
    return [int(line) for line in out.stdout.split()]


def sign(n: int) -> int:
    return (n > 0) - (n < 0)


def test_compare_versions_agrees_with_dpkg():
    rng = random.Random(20240601)
    pairs = list(KNOWN_PAIRS)
    pairs += [(random_version(rng), random_version(rng)) for _ in range(400)]
    # Near misses matter most: pairs that differ in one character.
    for _ in range(200):
        a = random_version(rng)
        i = rng.randrange(len(a))
        b = a[:i] + rng.choice("0123456789~+.a") + a[i + 1:]
        if dpkg_accepts(b):
            pairs.append((a, b))
    pairs += [(b, a) for a, b in pairs[:50]]
    expected = dpkg_order(pairs)
    actual = [sign(compare_versions(a, b)) for a, b in pairs]
    wrong = [(a, b, e, g) for (a, b), e, g in zip(pairs, expected, actual) if e != g]
    assert not wrong, wrong[:10]
    assert len(pairs) > 600


@pytest.mark.parametrize("version", ["", "1.0 beta", "a:1.0", "1.0-r/1", "-1", "2.0-"])
def test_invalid_versions(version: str):
    with pytest.raises(ValueError, match="invalid Debian version"):
        compare_versions(version, "1.0")


def test_parse_relations():
    assert parse_relations("libc6 (>= 2.34), a:any | b (<< 2~) , c:native,\n d (> 1)") == [
        [Relation("libc6", None, ">=", "2.34")],
        [Relation("a", "any", None, None), Relation("b", None, "<<", "2~")],
        [Relation("c", "native", None, None)],
        [Relation("d", None, ">=", "1")],  # the obsolete `>` means `>=`
    ]
    assert parse_relations("") == []
    with pytest.raises(ValueError, match=re.escape("cannot parse the relation 'b (=> 1)'")):
        parse_relations("a, b (=> 1)")


# --- Resolution on hand-written indexes ---


def stanza(name: str, version: str = "1.0", arch: str = "amd64", **fields: str) -> str:
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}"]
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in fields.items()]
    digest = hashlib.sha256(f"{name} {version} {arch}".encode()).hexdigest()
    lines += [f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb",
              f"Size: {len(name) * 100}", f"SHA256: {digest}"]
    return "\n".join(lines) + "\n"


def index_of(*stanzas: str) -> Index:
    text = "\n".join(stanzas)
    return Index("bookworm", "Sat, 10 Jun 2023 08:53:33 UTC", "ab" * 32,
                 parse_deb822(text.splitlines()))


def closure(index: Index, *requested: str) -> dict:
    lock = resolve(index, requested, "amd64")
    return {name: package["depends"] for name, package in lock["packages"].items()}


def base(arch: str) -> List[str]:
    return [
        stanza("libc6", "2.36-9", arch, Depends="libgcc-s1", Priority="optional"),
        stanza("libgcc-s1", "12.2.0-14", arch,
               Depends="gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)"),
        stanza("gcc-12-base", "12.2.0-14", arch, Multi_Arch="same"),
    ]


BASE = base("amd64")


def test_closure_with_a_cycle_and_pre_depends():
    index = index_of(*BASE, stanza("app", Pre_Depends="libc6 (>= 2.36)", Depends="libz"),
                     stanza("libz", "1:1.2.13", Depends="libc6 (>= 2.14)"))
    assert closure(index, "app") == {
        "app": ["libc6", "libz"],
        "gcc-12-base": [],
        "libc6": ["libgcc-s1"],
        "libgcc-s1": ["gcc-12-base", "libc6"],
        "libz": ["libc6"],
    }
    # libc6's dependencies sit below it; it is the most popular package with content.
    assert order_by_popularity(closure(index, "app"))[:3] == ["gcc-12-base", "libgcc-s1",
                                                              "libc6"]


def test_lock_contents():
    resolution = resolve(index_of(*BASE), ["libc6"], "amd64")
    lock = make_lock("bookworm", ["libc6", "libc6"], {"amd64": resolution})
    assert lock == {"lock_version": 2, "suite": "bookworm", "requested": ["libc6"],
                    "architectures": {"amd64": resolution}}
    assert resolution["snapshot"] == {"release_sha256": "ab" * 32,
                                      "date": "Sat, 10 Jun 2023 08:53:33 UTC"}
    assert resolution["packages"]["libc6"] == {
        "version": "2.36-9", "architecture": "amd64",
        "path": "pool/main/l/libc6/libc6_2.36-9_amd64.deb",
        "sha256": hashlib.sha256(b"libc6 2.36-9 amd64").hexdigest(), "size": 500,
        "depends": ["libgcc-s1"],
    }


def test_alternatives_take_the_first_satisfiable():
    index = index_of(stanza("app", Depends="missing | old (>= 2) | b | c"), stanza("old"),
                     stanza("b"), stanza("c"))
    assert closure(index, "app") == {"app": ["b"], "b": []}


def test_alternatives_prefer_selected_packages():
    # `app` comes first, but its choice waits until `tool`'s plain dependency selected `y`.
    index = index_of(stanza("app", Depends="x | y"), stanza("tool", Depends="y"), stanza("x"),
                     stanza("y"))
    assert closure(index, "app", "tool") == {"app": ["y"], "tool": ["y"], "y": []}
    assert closure(index, "app") == {"app": ["x"], "x": []}
    assert closure(index, "app", "x", "y") == {"app": ["x"], "x": [], "y": []}


@pytest.mark.parametrize("relation, satisfied", [
    ("lib (<< 2.0)", False), ("lib (<< 2.0.1)", True), ("lib (<= 2.0)", True),
    ("lib (<= 1.9)", False), ("lib (= 2.0)", True), ("lib (= 2.0-0)", True),
    ("lib (= 2.0-1)", False), ("lib (>= 2.0)", True), ("lib (>= 2.0.1)", False),
    ("lib (>> 1.9)", True), ("lib (>> 2.0)", False), ("lib (>= 2.0~rc1)", True),
    ("lib (>= 1:1.0)", False),
])
def test_version_constraints(relation: str, satisfied: bool):
    index = index_of(stanza("app", Depends=relation), stanza("lib", "2.0"))
    if satisfied:
        assert closure(index, "app") == {"app": ["lib"], "lib": []}
    else:
        with pytest.raises(ValueError, match=r"app 1.0 Depends: lib .*the index for amd64 "
                                             r"has only lib 2.0"):
            closure(index, "app")


def test_missing_dependency_names_who_needs_it():
    index = index_of(*BASE, stanza("app", Depends="libc6, libssl3 (>= 3)"))
    with pytest.raises(ValueError) as error:
        closure(index, "app")
    assert str(error.value) == (
        "app 1.0 Depends: libssl3 (>= 3), which cannot be satisfied: no package or provider of "
        "libssl3 for amd64 in the index")
    with pytest.raises(ValueError, match="app 1.0 Pre-Depends: a | b, which cannot be satisfied: "
                                         "no package or provider of a .*; no package .* of b"):
        closure(index_of(stanza("app", Pre_Depends="a | b")), "app")
    with pytest.raises(ValueError, match="requested package 'nope': no package or provider"):
        closure(index, "nope")


def test_virtual_packages():
    index = index_of(
        stanza("app", Depends="awk, mail-transport-agent, pyabi (>= 2), real"),
        stanza("gawk", Provides="awk", Priority="optional"),
        stanza("mawk", Provides="awk", Priority="required"),
        stanza("exim", Provides="mail-transport-agent"),
        stanza("a-mta", Provides="mail-transport-agent"),
        stanza("py1", Provides="pyabi (= 1)"), stanza("py3", Provides="pyabi (= 3)"),
        stanza("py-unversioned", Provides="pyabi"),
        stanza("real"), stanza("fake-real", Provides="real"),
    )
    # Priority first, then name; a versioned relation needs a versioned Provides; real first.
    assert closure(index, "app")["app"] == ["a-mta", "mawk", "py3", "real"]
    # An already selected provider satisfies the virtual name, even over a real package.
    assert closure(index, "app", "gawk", "fake-real")["app"] == ["a-mta", "fake-real", "gawk",
                                                                 "py3"]
    assert list(closure(index, "awk")) == ["mawk"]


def test_arch_qualifiers_and_architectures():
    index = index_of(
        stanza("app", Depends="python3:any, tool:native, data, lib:amd64"),
        stanza("python3", "3.11.2-1", Multi_Arch="allowed"),
        stanza("tool"), stanza("lib"),
        stanza("data", "2.0", arch="all"),
        stanza("data", "3.0", arch="i386"),  # another architecture's newer version: ignored
        stanza("lib", "9.0", arch="arm64"),
    )
    lock = resolve(index, ["app"], "amd64")
    assert lock["packages"]["app"]["depends"] == ["data", "lib", "python3", "tool"]
    assert lock["packages"]["data"]["architecture"] == "all"
    assert lock["packages"]["data"]["version"] == "2.0"
    assert lock["packages"]["lib"]["version"] == "1.0"
    with pytest.raises(ValueError, match=r"tool:any.*has only tool 1.0 \(not Multi-Arch: "
                                         r"allowed\)"):
        closure(index_of(stanza("app", Depends="tool:any"), stanza("tool")), "app")
    with pytest.raises(ValueError, match="lib:i386"):
        closure(index_of(stanza("app", Depends="lib:i386"), stanza("lib")), "app")


def test_highest_version_is_the_candidate():
    index = index_of(stanza("lib", "1.0"), stanza("lib", "1.0+b1"), stanza("lib", "1.0~rc"))
    assert resolve(index, ["lib"], "amd64")["packages"]["lib"]["version"] == "1.0+b1"
    assert resolve(index, ["lib (>= 1.0+b1)"], "amd64")["packages"]["lib"]["version"] == "1.0+b1"
    with pytest.raises(ValueError, match="requested package 'lib .<< 1.0.'"):
        resolve(index, ["lib (<< 1.0)"], "amd64")


def test_essential_packages_only_when_named():
    index = index_of(*BASE, stanza("bash", Essential="yes", Priority="required"),
                     stanza("dash", Essential="yes", Depends="libc6"),
                     stanza("script", Depends="dash"), stanza("tool", Depends="libc6"))
    assert "bash" not in closure(index, "tool") and "dash" not in closure(index, "tool")
    assert "dash" in closure(index, "script")
    assert "bash" in closure(index, "bash")


def test_resolution_is_deterministic():
    stanzas = [*BASE, stanza("app", Depends="x | y, awk"), stanza("tool", Depends="y | x"),
               stanza("x", Depends="libc6"), stanza("y", Depends="libc6"),
               stanza("m", Provides="awk"), stanza("n", Provides="awk")]
    requested = ["tool", "app"]
    reference = lock_bytes(make_lock("bookworm", requested, {
        "amd64": resolve(index_of(*stanzas), requested, "amd64")}))
    rng = random.Random(7)
    for _ in range(10):
        rng.shuffle(stanzas)
        requested = rng.sample(["app", "tool", "app"], 3)
        lock = make_lock("bookworm", requested, {
            "amd64": resolve(index_of(*stanzas), requested, "amd64")})
        assert lock_bytes(lock) == reference


# --- Architectures ---

TWO_ARCHES = [
    *BASE, *base("arm64"),
    stanza("app", Depends="libc6, helper | fallback, data"),
    stanza("app", "1.1", arch="arm64", Depends="libc6, fallback"),  # newer, other deps
    stanza("helper", Depends="libc6"),  # amd64 only
    stanza("fallback", arch="arm64"),
    stanza("data", "2.0", arch="all"),
]


def test_each_architecture_resolves_on_its_own():
    index = index_of(*TWO_ARCHES)
    resolutions = {arch: resolve(index, ["app"], arch) for arch in ("arm64", "amd64")}
    lock = make_lock("bookworm", ["app"], resolutions)
    assert list(lock["architectures"]) == ["amd64", "arm64"]
    amd64, arm64 = (lock["architectures"][a]["packages"] for a in ("amd64", "arm64"))
    assert amd64["app"]["depends"] == ["data", "helper", "libc6"]
    assert (arm64["app"]["version"], arm64["app"]["depends"]) == ("1.1", ["fallback", "libc6"])
    assert amd64["libc6"]["path"] == "pool/main/l/libc6/libc6_2.36-9_amd64.deb"
    assert arm64["libc6"]["path"] == "pool/main/l/libc6/libc6_2.36-9_arm64.deb"
    assert amd64["libc6"]["sha256"] != arm64["libc6"]["sha256"]
    assert "data" in amd64 and "data" not in arm64 and "helper" not in arm64
    assert {p["architecture"] for p in arm64.values()} == {"arm64"}
    with pytest.raises(ValueError, match="no package or provider of app for i386"):
        resolve(index, ["app"], "i386")


@pytest.mark.parametrize("go_arch, variant, debian", [
    ("amd64", None, "amd64"), ("amd64", "v3", "amd64"), ("arm64", None, "arm64"),
    ("arm64", "v8", "arm64"), ("arm", "v7", "armhf"), ("arm", None, "armhf"),
    ("arm", "v6", "armel"), ("arm", "v5", "armel"), ("386", None, "i386"),
    ("ppc64le", None, "ppc64el"), ("s390x", None, "s390x"), ("riscv64", None, "riscv64"),
    ("mips64le", None, "mips64el"),
])
def test_debian_architecture_of_an_image_platform(go_arch, variant, debian):
    assert debian_architecture(go_arch, variant) == debian
    assert debian in ARCHITECTURES


def test_unknown_architectures():
    with pytest.raises(ValueError, match="'aarch64' is not a Debian architecture: use one of "
                                         "amd64, arm64, armel, armhf, i386"):
        check_architecture("aarch64")
    with pytest.raises(ValueError, match="the architecture 'x86_64' has no Debian architecture: "
                                         "Go's names 386, amd64, arm, arm64, "):
        debian_architecture("x86_64")
    with pytest.raises(ValueError, match="arm/v8 has no Debian architecture"):
        debian_architecture("arm", "v8")


def test_lock_file_round_trip(tmp_path: Path):
    index = index_of(*TWO_ARCHES)
    lock = make_lock("bookworm", ["app"],
                     {arch: resolve(index, ["app"], arch) for arch in ("amd64", "arm64")})
    write_lock(lock, tmp_path / "debian.lock.json")
    data = (tmp_path / "debian.lock.json").read_bytes()
    assert data == lock_bytes(lock) and data.endswith(b"}\n")
    assert json.dumps(json.loads(data), indent=2, sort_keys=True).encode() + b"\n" == data
    assert read_lock(tmp_path / "debian.lock.json") == lock
    arm64 = lock["architectures"]["arm64"]
    app = arm64["packages"]["app"]

    def with_arm64(**changes):
        return {**lock, "architectures": {**lock["architectures"], "arm64": {**arm64, **changes}}}

    v1 = {"lock_version": 1, "suite": "bookworm", "architecture": "amd64", "requested": ["app"],
          **lock["architectures"]["amd64"]}
    where = re.escape(f"{tmp_path / 'broken.json'}: architectures.arm64")
    for broken, error in [
        (v1, "lock_version 1 is not 2, the version this Strata reads"),
        ([], "must be a JSON object with a lock_version"),
        ({**lock, "extra": 1}, "exactly the keys"),
        ({**lock, "architectures": {}}, "at least one architecture"),
        ({**lock, "architectures": {"aarch64": arm64}},
         "architectures: 'aarch64' is not a Debian architecture"),
        (with_arm64(extra=1), f"{where} needs exactly the keys"),
        (with_arm64(snapshot={"date": "x"}), "snapshot needs exactly release_sha256 and date"),
        (with_arm64(packages={"app": {**app, "depends": ["ghost"]}}),
         rf"{where}: app depends on \['ghost'\], which are not locked"),
        (with_arm64(packages={"app": {**app, "depends": [], "size": "1"}}), "right types"),
        (with_arm64(packages={"app": {**app, "depends": [], "architecture": "amd64"}}),
         f"{where}: app is built for amd64, not arm64 or all"),
        (with_arm64(packages={"app": {**app, "depends": [], "path": "../etc/passwd"}}),
         "not under pool/"),
    ]:
        (tmp_path / "broken.json").write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=error):
            read_lock(tmp_path / "broken.json")


# --- The real archive ---


@pytest.fixture(scope="session", params=["amd64", "arm64"])
def bookworm_index(request, tmp_path_factory):
    """bookworm's InRelease and an architecture's Packages.xz from the machine's Debian mirror,
    fetched once per session into a temp dir: (dir, Packages path, architecture)."""
    try:
        mirror = debian_mirror()
    except (OSError, ValueError) as e:
        unavailable(f"no Debian mirror in the apt sources: {e}")
    cache = tmp_path_factory.mktemp("bookworm")

    def fetch(url: str) -> bytes:
        try:
            return fetch_url(url, timeout=60)
        except OSError as e:  # urllib.error.URLError included
            unavailable(f"the Debian mirror {mirror} is unreachable: {e}")

    inrelease = fetch(f"{mirror}/dists/bookworm/InRelease")
    release = read_release(inrelease, "bookworm")
    path = packages_file(release, "main", request.param)
    packages = fetch(index_file_url(mirror, release, path))
    (cache / "InRelease").write_bytes(inrelease)
    (cache / "Packages.xz").write_bytes(packages)
    return cache, path, request.param


def test_bookworm_python311_closure(bookworm_index):
    cache, path, arch = bookworm_index
    locks = []
    for order in (1, -1):  # parsed twice, the second time with the paragraphs reversed
        release = read_release((cache / "InRelease").read_bytes(), "bookworm")
        paragraphs = read_packages(release, path, (cache / "Packages.xz").read_bytes())
        index = Index(release.suite, release.date, release.sha256, paragraphs[::order])
        locks.append(lock_bytes(make_lock(index.suite, ["python3.11"], {
            arch: resolve(index, ["python3.11"], arch)})))
    assert locks[0] == locks[1]
    lock = json.loads(locks[0])
    packages = lock["architectures"][arch]["packages"]
    assert {"python3.11", "python3.11-minimal", "libpython3.11-stdlib", "libc6"} <= set(packages)
    assert lock["suite"] == "bookworm"
    assert lock["architectures"][arch]["snapshot"]["date"] == release.date
    assert all(p["path"].startswith("pool/main/") for p in packages.values())
    assert packages["libc6"]["path"].endswith(f"_{arch}.deb")
    assert {p["architecture"] for p in packages.values()} == {arch, "all"}
    graph = {name: package["depends"] for name, package in packages.items()}
    # At the bottom: libc6 and what it depends on (libgcc-s1, gcc-12-base).
    assert "libc6" in order_by_popularity(graph)[:3]
