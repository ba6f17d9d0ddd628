"""`describe` on real .debs (built by dpkg-deb, and Debian's own when apt has one cached), on
wheels shaped like real ones, and on a directory tree, through the command line the rules run."""

import glob
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from strata.core.cli import main
from strata.core.sbom.describe import describe_contents
from strata.core.sbom.packages import (
    DEP5_FORMAT,
    dep5_license,
    describe_deb,
    describe_wheel,
    nix_facts,
)
from strata_harness.tools import require_tool

DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"

COPYRIGHT = DEP5 + """Upstream-Name: demo
License: Ignored-Header-Licence

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: lib/*
Copyright: 2020 Someone
License: LGPL-2.1+ or BSD-3-clause

Files: a/* b/*
Copyright: 2020 Someone
License: Expat

Files: c/*
Copyright: 2020 Someone
License: public-domain

Files: d/*
Copyright: 2020 Someone
License: GPL-2+ with Font exception

Files: e/*
Copyright: 2020 Someone
License: GPL-2+ with OpenSSL exception

Files: f/*
Copyright: 2020 Someone
License: Apache-2.0

Files: g/*
Copyright: 2020 Someone
License: GPL-2+

License: public-domain
 The author placed this in the public domain.
 .
 Really.
"""


def build_deb(tmp_path: Path, package: str, files: dict, control: str = "") -> str:
    """A .deb built by dpkg-deb: `files` maps image paths to contents, or to ("symlink",
    target)."""
    dpkg_deb = require_tool("dpkg-deb")
    root = tmp_path / package
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: 1:2.36-9+deb12u1\nArchitecture: amd64\n"
        f"Maintainer: Demo Maintainers <demo@example.invalid>\n{control}"
        f"Description: a test package\n")
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            os.symlink(content[1], root / path)
        else:
            (root / path).write_text(content)
    out = tmp_path / f"{package}.deb"
    subprocess.run([dpkg_deb, "--root-owner-group", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    return str(out)


def describe(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "facts.json"
    assert main(["describe", "--out", str(out), *args]) == 0
    return json.loads(out.read_text())


def test_a_dep5_deb(tmp_path):
    deb = build_deb(tmp_path, "demo", {"usr/share/doc/demo/copyright": COPYRIGHT},
                    "Source: glibc (2.36-9)\nHomepage: https://example.invalid/demo\n")
    facts = describe(tmp_path, "--deb", deb)
    assert facts == {
        "kind": "deb", "name": "demo", "version": "1:2.36-9+deb12u1", "architecture": "amd64",
        "source": {"name": "glibc", "version": "2.36-9"},
        "supplier": "Demo Maintainers <demo@example.invalid>",
        "homepage": "https://example.invalid/demo",
        "license": "Apache-2.0 AND (BSD-3-Clause OR LGPL-2.1-or-later) AND GPL-2.0-or-later "
                   "AND GPL-2.0-or-later WITH Font-exception-2.0 AND "
                   "LicenseRef-GPL-2-plus-with-OpenSSL-exception AND LicenseRef-public-domain "
                   "AND MIT",
        "license_texts": {
            "LicenseRef-GPL-2-plus-with-OpenSSL-exception": "See /usr/share/doc/demo/copyright",
            "LicenseRef-public-domain": "The author placed this in the public domain.\n\n"
                                        "Really.",
        },
        "purl": "pkg:deb/debian/demo@1:2.36-9%2Bdeb12u1?arch=amd64",
        "warnings": [],
    }


@pytest.mark.parametrize("files, warning", [
    ({"usr/share/doc/demo/copyright": "This is demo, by Someone.\nGPL, see common-licenses.\n"},
     "demo: /usr/share/doc/demo/copyright is not machine-readable (DEP-5): licence unknown"),
    ({"usr/bin/demo": "#!/bin/sh\n"},
     "demo: the .deb has no /usr/share/doc/demo/copyright: licence unknown"),
    ({"usr/share/doc/demo": ("symlink", "demo-common")},
     "demo: /usr/share/doc/demo/copyright is in another package's doc directory (a symlink to "
     "demo-common): licence unknown"),
])
def test_a_deb_whose_licence_is_unknown_is_kept_with_a_warning(tmp_path, files, warning):
    facts = describe(tmp_path, "--deb", build_deb(tmp_path, "demo", files))
    assert (facts["name"], facts["version"], facts["source"]) == ("demo", "1:2.36-9+deb12u1", None)
    assert (facts["license"], facts["license_texts"], facts["warnings"]) == (None, {}, [warning])


def cached_deb(pattern: str) -> str:
    found = sorted(glob.glob(f"/var/cache/apt/archives/{pattern}"))
    if not found:
        pytest.skip(f"no /var/cache/apt/archives/{pattern}: Debian's .deb is not cached here")
    return found[-1]


def test_debians_own_debs():
    dateutil = describe_deb(cached_deb("python3-dateutil_*_all.deb"))
    assert (dateutil.name, dateutil.license, dateutil.warnings) == (
        "python3-dateutil", "BSD-3-Clause", ())
    assert dateutil.purl == f"pkg:deb/debian/python3-dateutil@{dateutil.version}?arch=all"
    assert dateutil.source.name == "python-dateutil"
    stdlib = describe_deb(cached_deb("libpython3.11-stdlib_*_amd64.deb"))
    assert stdlib.license is None
    assert stdlib.warnings == (
        "libpython3.11-stdlib: /usr/share/doc/libpython3.11-stdlib/copyright is in another "
        "package's doc directory (a symlink to libpython3.11-minimal): licence unknown",)
    assert "%2B" in stdlib.purl and stdlib.source.name == "python3.11"


SIX_METADATA = """Metadata-Version: 2.1
Name: six
Version: 1.17.0
Summary: Python 2 and 3 compatibility utilities
Home-page: https://github.com/benjaminp/six
Author: Benjamin Peterson
Author-email: benjamin@python.org
License: MIT
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: MIT License
Requires-Python: >=2.7, !=3.0.*, !=3.1.*, !=3.2.*

Six is a Python 2 and 3 compatibility library.
"""

DATEUTIL_METADATA = """Metadata-Version: 2.1
Name: python-dateutil
Version: 2.9.0.post0
Summary: Extensions to the standard Python datetime module
Home-page: https://github.com/dateutil/dateutil
Author: Gustavo Niemeyer
Author-email: gustavo@niemeyer.net
Maintainer: Paul Ganssle
Maintainer-email: dateutil@python.org
License: Dual License
Project-URL: Documentation, https://dateutil.readthedocs.io/en/stable/
Project-URL: Source, https://github.com/dateutil/dateutil
Classifier: License :: OSI Approved :: BSD License
Classifier: License :: OSI Approved :: Apache Software License
Requires-Dist: six >=1.5

dateutil - powerful extensions to datetime
"""

PEP639_METADATA = """Metadata-Version: 2.4
Name: Demo_Package
Version: 1.0+local
Author-email: Demo People <demo@example.invalid>
License-Expression: mit OR Apache-2.0
Project-URL: Homepage, https://example.invalid/demo
"""


def wheel(tmp_path: Path, file_name: str, metadata) -> str:
    """A wheel zip (`.deps/<wheel>` of a PEX has the same shape: dist-info at the top)."""
    path = tmp_path / file_name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("module.py", "")
        if metadata is not None:
            archive.writestr(f"{file_name.split('-')[0]}-x.dist-info/METADATA", metadata)
    return str(path)


def test_wheels(tmp_path):
    six = describe(tmp_path, "--wheel", wheel(tmp_path, "six-1.17.0-py2.py3-none-any.whl",
                                              SIX_METADATA))
    assert six == {
        "kind": "python", "name": "six", "version": "1.17.0", "architecture": None,
        "source": None, "supplier": "Benjamin Peterson <benjamin@python.org>",
        "homepage": "https://github.com/benjaminp/six", "license": "MIT",
        "license_texts": {}, "purl": "pkg:pypi/six@1.17.0", "warnings": [],
    }
    dateutil = describe_wheel(wheel(tmp_path, "python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
                                    DATEUTIL_METADATA))
    assert (dateutil.name, dateutil.purl, dateutil.license, dateutil.homepage) == (
        "python-dateutil", "pkg:pypi/python-dateutil@2.9.0.post0", None,
        "https://github.com/dateutil/dateutil")
    assert dateutil.warnings == (
        "python-dateutil: no SPDX licence in its metadata (License 'Dual License', classifier "
        "'License :: OSI Approved :: BSD License'): licence unknown",)
    pep639 = describe_wheel(wheel(tmp_path, "Demo_Package-1.0+local-py3-none-any.whl",
                                  PEP639_METADATA))
    assert (pep639.license, pep639.purl, pep639.supplier, pep639.homepage) == (
        "MIT OR Apache-2.0", "pkg:pypi/demo-package@1.0%2Blocal",
        "Demo People <demo@example.invalid>", "https://example.invalid/demo")


def test_a_wheel_without_metadata_is_named_by_its_file(tmp_path):
    facts = describe_wheel(wheel(tmp_path, "six-1.17.0-py2.py3-none-any.whl", None))
    assert (facts.name, facts.version, facts.purl, facts.license) == (
        "six", "1.17.0", "pkg:pypi/six@1.17.0", None)
    assert facts.warnings == ("six: six-1.17.0-py2.py3-none-any.whl has no "
                              "<name>.dist-info/METADATA: name and version from its file name, "
                              "licence unknown",)


def test_a_tree(tmp_path):
    root = tmp_path / "node"
    (root / "hello").mkdir(parents=True)
    (root / "hello/main.py").write_bytes(b"print('hello')\n")
    (root / "z.txt").write_bytes(b"")
    os.symlink("z.txt", root / "link")
    os.symlink("hello", root / "linked-dir")
    facts = describe(tmp_path, "--tree", str(root), "--name", "app/hello:main",
                     "--dest", "/app/venv/lib/python3.11/site-packages")

    def digests(data: bytes) -> list:
        return [hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest()]

    assert facts["kind"] == "files" and facts["name"] == "app/hello:main"
    assert facts["files"] == [
        ["app/venv/lib/python3.11/site-packages/hello/main.py", *digests(b"print('hello')\n")],
        ["app/venv/lib/python3.11/site-packages/z.txt", *digests(b"")],
    ]
    # The rules hash a small node's contents in pantsd: the same facts.
    in_pantsd = describe_contents(
        "app/hello:main", "/app/venv/lib/python3.11/site-packages",
        [("z.txt", b""), ("hello/main.py", b"print('hello')\n")],
    )
    assert json.loads(json.dumps(in_pantsd.to_json())) == facts


@pytest.mark.parametrize("args, message", [
    (["--deb", "FILE"], "error: not a .deb: no ar archive signature"),
    (["--wheel", "FILE"], "error: FILE: not a wheel: File is not a zip file"),
    (["--deb", "FILE", "--wheel", "FILE"],
     "error: describe takes exactly one of --deb, --wheel and --tree"),
    (["--tree", "FILE"], "error: --name (and --dest) go with --tree, and --tree needs --name"),
])
def test_what_describe_refuses(tmp_path, capfd, args, message):
    path = tmp_path / "not-a-package"
    path.write_text("plain text\n")
    args = [str(path) if arg == "FILE" else arg for arg in args]
    code = main(["describe", "--out", str(tmp_path / "facts.json"), *args])
    assert code in (1, 2)
    assert capfd.readouterr().err.strip().endswith(message.replace("FILE", str(path)))
    assert not (tmp_path / "facts.json").exists()


def test_the_describe_process_as_the_rules_run_it(tmp_path):
    """`python -m strata.core describe` with the core on the path only (no site-packages)."""
    deb = build_deb(tmp_path, "demo", {"usr/share/doc/demo/copyright": COPYRIGHT})
    core = Path(sys.modules["strata.core"].__file__).parent.parent.parent
    done = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-B", "-m", "strata.core", "describe", "--deb", deb,
         "--out", str(tmp_path / "facts.json")],
        cwd=core, env={}, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads((tmp_path / "facts.json").read_text())["name"] == "demo"


def test_a_licence_several_files_paragraphs_name_is_listed_once():
    """libdb5.3's copyright names `BSD-3-clause and Sleepycat` and `BSD-3-clause` alone: the
    package's expression says BSD-3-Clause once, its AND terms sorted as one list."""
    copyright = (
        f"Format: https://{DEP5_FORMAT}/\n\n"
        "Files: *\nCopyright: 1996 Oracle\nLicense: BSD-3-clause and Sleepycat\n\n"
        "Files: a/*\nCopyright: 2000 Someone\nLicense: BSD-3-clause\n\n"
        "Files: b/*\nCopyright: 2001 Someone\nLicense: Artistic or GPL-2, and Zlib\n"
    )
    license, texts, warnings = dep5_license("libdb", copyright)
    assert license == "(Artistic-1.0-Perl OR GPL-2.0-only) AND BSD-3-Clause AND Sleepycat AND Zlib"
    assert (texts, warnings) == ({}, [])


@pytest.mark.parametrize(("store_path", "name", "version"), [
    ("/nix/store/" + "a" * 32 + "-hello-2.12", "hello", "2.12"),
    ("/nix/store/" + "b" * 32 + "-python3.11-six-1.16.0", "python3.11-six", "1.16.0"),
    ("/nix/store/" + "c" * 32 + "-demo-lib-1.0", "demo-lib", "1.0"),
    ("/nix/store/" + "d" * 32 + "-builder.sh", "builder.sh", None),
    ("/nix/store/" + "e" * 32 + "-glibc-2.38-44-bin", "glibc", "2.38-44-bin"),
])
def test_a_nix_store_path_is_named_as_nix_parses_derivation_names(store_path, name, version):
    facts = nix_facts(store_path)
    assert (facts.kind, facts.name, facts.version, facts.license) == ("nix", name, version, None)
