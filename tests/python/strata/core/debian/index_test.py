import contextlib
import gzip
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterator

import pytest

from strata.core.build.deb822 import parse_deb822
from strata.core.cli import main as strata_core
from strata.core.debian.index import (
    INDEX_FIELDS,
    debian_mirror,
    index_file_url,
    packages_file,
    parse_release,
    read_packages,
    read_release,
    verify_inrelease,
)
from strata.core.debian.lock import read_lock
from strata_harness import serve_directory
from strata_harness.tools import unavailable

PACKAGES = """\
Package: libc6
Version: 2.36-9+deb12u4
Architecture: amd64
Priority: optional
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb
Size: 2757936
SHA256: 39a3f6c6b8ad0ef3b0ff3ab8fbba46bb2d1f5ebea5d7e4b0b2b7afe81c3e6a25
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: python3.11
Version: 3.11.2-6+deb12u2
Architecture: amd64
Depends: python3.11-minimal (= 3.11.2-6+deb12u2),
 libpython3.11-stdlib (= 3.11.2-6+deb12u2), media-types | mime-support
Filename: pool/main/p/python3.11/python3.11_3.11.2-6+deb12u2_amd64.deb
Size: 573920
SHA256: 5f0f02b8d7b1b1bfa2ef4c2d0b76d8bca9bbb5ff3c6e9c1ad8d0a1e2f1d4c3b2
"""


def release_text(files: Dict[str, bytes], suite="stable", codename="bookworm") -> str:
    sha256 = "".join(f" {hashlib.sha256(data).hexdigest()} {len(data):8} {path}\n"
                     for path, data in sorted(files.items()))
    return (f"Origin: Debian\nSuite: {suite}\nCodename: {codename}\n"
            f"Date: Sat, 10 Jun 2023 08:53:33 UTC\nAcquire-By-Hash: yes\n"
            f"Architectures: all amd64 arm64\nComponents: main contrib\n"
            f"MD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 main/binary-amd64/Release\n"
            f"SHA256:\n{sha256}")


class Gpg:
    """A throwaway GnuPG home with signing keys, and a keyring file holding only `trusted`."""

    def __init__(self, home: str):
        self.home = home
        self.env = {**os.environ, "GNUPGHOME": home}
        for user in ("trusted", "stranger"):
            self.run("--quick-generate-key", f"{user} <{user}@example.invalid>", "ed25519",
                     "sign", "never")
        self.keyring = os.path.join(home, "trusted.gpg")
        with open(self.keyring, "wb") as f:
            f.write(self.run("--export", "trusted@example.invalid"))

    def run(self, *args: str, data: bytes = b"") -> bytes:
        return subprocess.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback",
                               "--passphrase", "", *args], input=data, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout

    def clearsign(self, text: str, user: str = "trusted") -> bytes:
        return self.run("--clearsign", "--digest-algo", "SHA256", "--local-user",
                        f"{user}@example.invalid", data=text.encode())


@pytest.fixture(scope="module")
def gpg() -> Iterator[Gpg]:
    if not (shutil.which("gpg") and shutil.which("gpgv")):
        unavailable("gpg and gpgv (Debian packages gnupg, gpgv) are not on PATH")
    # A short path: gpg-agent's socket lives in the home, and socket paths are short.
    home = tempfile.mkdtemp(prefix="gpg-", dir="/tmp")
    try:
        yield Gpg(home)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": home},
                       check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_parse_deb822_keeps_continuations_and_filters_fields():
    paragraphs = parse_deb822(PACKAGES.splitlines())
    assert [p["Package"] for p in paragraphs] == ["libc6", "python3.11"]
    assert paragraphs[1]["Depends"] == (
        "python3.11-minimal (= 3.11.2-6+deb12u2),\n"
        " libpython3.11-stdlib (= 3.11.2-6+deb12u2), media-types | mime-support")
    assert paragraphs[0]["Description"].endswith("\n the system.")
    kept = parse_deb822(PACKAGES.splitlines(), INDEX_FIELDS)
    assert "Description" not in kept[0] and kept[0]["Size"] == "2757936"
    for bad, error in [(" orphan", "continuation line outside"), ("NoColon", "not a 'Field"),
                       ("A: 1\nA: 2", "repeated")]:
        with pytest.raises(ValueError, match=error):
            parse_deb822(bad.splitlines())


def test_signed_release_and_packages_are_accepted(gpg: Gpg):
    packages = PACKAGES.encode()
    files = {"main/binary-amd64/Packages.xz": lzma.compress(packages),
             "main/binary-amd64/Packages.gz": gzip.compress(packages),
             "main/binary-amd64/Packages": packages}
    inrelease = gpg.clearsign(release_text(files))
    release = read_release(inrelease, "bookworm", keyring=gpg.keyring)
    assert release.suite == "bookworm" and release.by_hash
    assert release.sha256 == hashlib.sha256(inrelease).hexdigest()
    assert release.date == "Sat, 10 Jun 2023 08:53:33 UTC"
    assert release == read_release(inrelease, "stable", keyring=gpg.keyring)
    path = packages_file(release, "main", "amd64")
    assert path == "main/binary-amd64/Packages.xz"
    for name, data in files.items():
        assert read_packages(release, name, data) == parse_deb822(PACKAGES.splitlines(),
                                                                  INDEX_FIELDS)
    digest = hashlib.sha256(files[path]).hexdigest()
    assert index_file_url("http://mirror.example/debian/", release, path) == (
        f"http://mirror.example/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{digest}")
    unhashed = release._replace(by_hash=False)
    assert index_file_url("http://m/debian", unhashed, path) == (
        "http://m/debian/dists/bookworm/main/binary-amd64/Packages.xz")


def test_packages_file_falls_back_and_checks_the_release(gpg: Gpg):
    release = parse_release(release_text({"main/binary-amd64/Packages.gz": b""}), "0" * 64)
    assert packages_file(release, "main", "amd64") == "main/binary-amd64/Packages.gz"
    with pytest.raises(ValueError, match="lists no main/binary-arm64/Packages"):
        packages_file(release, "main", "arm64")
    with pytest.raises(ValueError, match="has no non-free/binary-amd64"):
        packages_file(release, "non-free", "amd64")
    with pytest.raises(ValueError, match="has no main/binary-riscv64"):
        packages_file(release, "main", "riscv64")


def test_tampered_packages_index_is_rejected(gpg: Gpg):
    data = lzma.compress(PACKAGES.encode())
    release = read_release(gpg.clearsign(release_text({"main/binary-amd64/Packages.xz": data})),
                           keyring=gpg.keyring)
    evil = lzma.compress(PACKAGES.replace("2757936", "2757937").encode())
    with pytest.raises(ValueError, match="Packages.xz does not match the bookworm Release"):
        read_packages(release, "main/binary-amd64/Packages.xz", evil)
    with pytest.raises(ValueError, match="does not match"):
        read_packages(release, "main/binary-amd64/Packages.xz", data + b"\0")
    with pytest.raises(ValueError, match="not listed"):
        read_packages(release, "main/binary-amd64/Packages.gz", gzip.compress(PACKAGES.encode()))


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving `root`, as a Debian mirror does: its URL."""
    with serve_directory(root) as url:
        yield f"{url}/debian"


def test_debian_lock_resolves_each_architecture_from_one_release(gpg: Gpg, tmp_path: Path,
                                                                 capsys):
    """`debian-lock` with two `--arch`: one InRelease, each architecture's Packages by hash."""
    indexes = {arch: lzma.compress(PACKAGES.replace("amd64", arch).encode())
               for arch in ("amd64", "arm64")}
    files = {f"main/binary-{arch}/Packages.xz": data for arch, data in indexes.items()}
    dists = tmp_path / "mirror/debian/dists/bookworm"
    for path, data in files.items():
        by_hash = dists / path.rsplit("/", 1)[0] / "by-hash/SHA256"
        by_hash.mkdir(parents=True)
        (by_hash / hashlib.sha256(data).hexdigest()).write_bytes(data)
    inrelease = gpg.clearsign(release_text(files))
    (dists / "InRelease").write_bytes(inrelease)
    (dists.parent / "stable").symlink_to("bookworm")  # as on a mirror: the suite's alias
    out = tmp_path / "debian.lock.json"
    with serve(tmp_path / "mirror") as mirror:
        def lock(*arches: str) -> int:
            return strata_core(["debian-lock", "--mirror", mirror, "--suite", "stable",
                                "--keyring", gpg.keyring, "--package", "libc6", "--out", str(out),
                                *(a for arch in arches for a in ("--arch", arch))])

        assert lock("arm64", "amd64") == 0
        written = read_lock(out)
        assert (written["suite"], written["requested"]) == ("bookworm", ["libc6"])
        assert list(written["architectures"]) == ["amd64", "arm64"]
        snapshot = {"release_sha256": hashlib.sha256(inrelease).hexdigest(),
                    "date": "Sat, 10 Jun 2023 08:53:33 UTC"}
        for arch, resolution in written["architectures"].items():
            assert resolution["snapshot"] == snapshot
            assert resolution["packages"]["libc6"]["path"] == (
                f"pool/main/g/glibc/libc6_2.36-9+deb12u4_{arch}.deb")
        before = out.read_bytes()
        assert lock("amd64", "riscv64") == 1  # checked before any Packages file is fetched
        assert "the bookworm Release has no main/binary-riscv64" in capsys.readouterr().err
        assert lock("aarch64") == 1
        assert "'aarch64' is not a Debian architecture" in capsys.readouterr().err
        assert lock() == 1
        assert "at least one --arch is needed" in capsys.readouterr().err
        assert out.read_bytes() == before
    assert json.loads(before)["lock_version"] == 2


def test_bad_inrelease_signatures_are_rejected(gpg: Gpg):
    text = release_text({"main/binary-amd64/Packages": b""})
    signed = gpg.clearsign(text)
    tampered = signed.replace(b"Codename: bookworm", b"Codename: bookwarm")
    with pytest.raises(ValueError, match="failed: a bad signature"):
        verify_inrelease(tampered, gpg.keyring)
    with pytest.raises(ValueError, match="failed: no good signature"):
        verify_inrelease(gpg.clearsign(text, "stranger"), gpg.keyring)
    with pytest.raises(ValueError, match="failed: no good signature"):
        verify_inrelease(text.encode(), gpg.keyring)  # not signed at all
    # Unsigned text around the signed part is never returned.
    smuggled = b"Codename: evil\n\n" + signed + b"\nSHA256:\n 00 1 main/evil\n"
    assert verify_inrelease(smuggled, gpg.keyring) == text
    with pytest.raises(ValueError, match="asked for suite 'trixie'"):
        read_release(signed, "trixie", keyring=gpg.keyring)


def fake_gpgv(tmp_path: Path, status: str) -> str:
    script = tmp_path / "gpgv"
    script.write_text("#!/bin/sh\n"
                      "while [ $# -gt 1 ]; do [ \"$1\" = --output ] && out=$2; shift; done\n"
                      f"cp \"$1\" \"$out\"\nprintf '%s' '{status}'\n")
    script.chmod(0o755)
    return str(script)


def test_weak_and_partial_signatures(tmp_path: Path):
    def status(hash_algo: str, extra: str = "") -> str:
        return (f"[GNUPG:] NEWSIG\n{extra}[GNUPG:] GOODSIG 1234 key\n"
                f"[GNUPG:] VALIDSIG FPR 2023-06-10 1686387213 0 4 0 22 {hash_algo} 01 FPR\n")

    assert verify_inrelease(b"text\n", "k", fake_gpgv(tmp_path, status("8"))) == "text\n"
    with pytest.raises(ValueError, match="no good signature"):
        verify_inrelease(b"text\n", "k", fake_gpgv(tmp_path, status("2")))  # SHA1
    missing_key = "[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG 99 1 8 01 0 9 FPR\n[GNUPG:] NO_PUBKEY 99\n"
    assert verify_inrelease(b"t\n", "k", fake_gpgv(tmp_path, missing_key + status("10"))) == "t\n"
    with pytest.raises(ValueError, match="no good signature"):
        verify_inrelease(b"t\n", "k", fake_gpgv(tmp_path, missing_key))


def test_debian_mirror_from_apt_sources(tmp_path: Path):
    sources_d = tmp_path / "sources.list.d"
    sources_d.mkdir()
    (sources_d / "a-node.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
        "Components: main\n")
    (sources_d / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src deb\nURIs: http://mirror.example/debian/ http://other.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    sources_list = tmp_path / "sources.list"
    sources_list.write_text("deb http://list.example/debian bookworm main\n")
    assert debian_mirror(str(sources_d), str(sources_list)) == "http://mirror.example/debian"

    (sources_d / "debian.sources").write_text(
        "Enabled: no\nTypes: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\n")
    sources_list.write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://list.example/debian/ bookworm main\n")
    assert debian_mirror(str(sources_d), str(sources_list)) == "http://list.example/debian"

    sources_list.unlink()
    (sources_d / "extra.list").write_text("deb http://dotlist.example/debian trixie main\n")
    assert debian_mirror(str(sources_d), str(sources_list)) == "http://dotlist.example/debian"
    (sources_d / "extra.list").unlink()
    with pytest.raises(ValueError, match="no Debian archive URI"):
        debian_mirror(str(sources_d), str(sources_list))
