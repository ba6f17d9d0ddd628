"""The SBOM documents of a spec holding every kind of component and a base with its own SBOMs:
valid by `pyspdxtools -i` and the CycloneDX 1.5 JSON schema, reproducible, and keeping every
warning."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from strata.core.cli import main
from strata.core.sbom.documents import documents
from strata.core.sbom.spec import SbomSpec
from strata_harness.sbom import assert_valid_cyclonedx, assert_valid_spdx, pyspdxtools

DIGEST = "sha256:" + "ab" * 32
SEED = DIGEST
BASE_DIGEST = "sha256:" + "cd" * 32


def facts(kind, name, **fields):
    return {"kind": kind, "name": name, "version": None, "architecture": None, "source": None,
            "supplier": None, "homepage": None, "license": None, "license_texts": {},
            "purl": None, "warnings": [], **fields}


BASE_SPDX = {
    "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
    "name": "debian", "documentNamespace": "https://example.invalid/debian",
    "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: other"]},
    "packages": [
        {"SPDXID": "SPDXRef-image", "name": "debian", "primaryPackagePurpose": "CONTAINER",
         "downloadLocation": "NOASSERTION"},
        {"SPDXID": "SPDXRef-zlib", "name": "zlib1g", "versionInfo": "1:1.2.13.dfsg-1",
         "licenseDeclared": "Zlib", "supplier": "Organization: Mark Brown",
         "downloadLocation": "NOASSERTION",
         "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                           "referenceLocator": "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1"}]},
        {"SPDXID": "SPDXRef-foo", "name": "libfoo", "versionInfo": "1",
         "licenseDeclared": "LicenseRef-Foo AND MIT", "downloadLocation": "NOASSERTION"},
        {"SPDXID": "SPDXRef-odd", "name": "libodd", "versionInfo": "2",
         "licenseDeclared": "GPL version 2", "downloadLocation": "NOASSERTION"},
    ],
    "hasExtractedLicensingInfos": [{"licenseId": "LicenseRef-Foo", "extractedText": "Foo."}],
}

BASE_CYCLONEDX = {
    "bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1,
    "components": [
        {"type": "library", "name": "zlib1g", "version": "1:1.2.13.dfsg-1",
         "purl": "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1"},
        {"type": "library", "name": "base-files", "version": "12.4",
         "licenses": [{"license": {"name": "Debian base files licence"}}],
         "components": [{"type": "library", "name": "nested", "version": "3",
                         "licenses": [{"license": {"id": "Apache-2.0"}}]}]},
    ],
}


def make_spec(seed=SEED, digest=DIGEST) -> dict:
    public_domain = {"LicenseRef-public-domain": "Public domain, says libc."}
    return {
        "subject": {"name": "localhost:5000/strata/hello", "tag": "1.0", "digest": digest,
                    "seed": seed},
        "created": "2024-05-06T07:08:09Z",
        "platform": {"os": "linux", "architecture": "amd64", "variant": None},
        "layers": [{"diff_id": "sha256:" + "01" * 32, "comment": "//app:python (2 nodes)"},
                   {"diff_id": "sha256:" + "02" * 32, "comment": "//app:wheels"},
                   {"diff_id": "sha256:" + "03" * 32, "comment": "//app/hello:main"}],
        "components": [
            {"node": "app:python#libc6", "layer": 0, "depends": ["app:python#libgcc-s1"],
             "facts": facts("deb", "libc6", version="2.36-9+deb12u14", architecture="amd64",
                            source={"name": "glibc", "version": "2.36-9+deb12u14"},
                            supplier="GNU Libc Maintainers <debian-glibc@example.invalid>",
                            homepage="https://www.gnu.org/software/libc/libc.html",
                            license="GPL-2.0-or-later AND LicenseRef-public-domain",
                            license_texts=public_domain,
                            purl="pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64")},
            {"node": "app:python#libgcc-s1", "layer": 0, "depends": ["app:python#absent"],
             "facts": facts("deb", "libgcc-s1", version="12.2.0-14", architecture="amd64",
                            license="LicenseRef-public-domain",
                            license_texts={"LicenseRef-public-domain": "Public domain, gcc."},
                            purl="pkg:deb/debian/libgcc-s1@12.2.0-14?arch=amd64",
                            warnings=["libgcc-s1: made-up warning for the test"])},
            {"node": "app:wheels#six", "layer": 1, "depends": [],
             "facts": facts("python", "six", version="1.17.0", license="MIT",
                            supplier="Benjamin Peterson <benjamin@python.org>",
                            purl="pkg:pypi/six@1.17.0")},
            {"node": "app:wheels#python-dateutil", "layer": 1, "depends": ["app:wheels#six"],
             "facts": facts("python", "python-dateutil", version="2.9.0.post0",
                            purl="pkg:pypi/python-dateutil@2.9.0.post0",
                            warnings=["python-dateutil: no SPDX licence: licence unknown"])},
            {"node": "app/hello:main", "layer": 2, "depends": ["app:wheels#python-dateutil"],
             "facts": facts("files", "app/hello:main", files=[
                 ["app/venv/lib/python3.11/site-packages/hello/main.py", "aa" * 32, "bb" * 20],
                 ["app/venv/lib/python3.11/site-packages/hello/__init__.py", "cc" * 32,
                  "dd" * 20]])},
            {"node": "app:config", "layer": None, "depends": [],
             "facts": facts("files", "app:config", files=[])},
        ],
        "bases": [{"name": "registry.example.com/library/debian", "digest": BASE_DIGEST,
                   "layers": ["sha256:" + "0f" * 32],
                   "documents": [BASE_SPDX, BASE_CYCLONEDX, {"neither": True}]}],
        "warnings": ["the rules could not describe //app:mystery"],
    }


def write_documents(tmp_path, spec: dict):
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    spdx, cdx = tmp_path / "out.spdx.json", tmp_path / "out.cdx.json"
    code = main(["sbom", "--spec", str(tmp_path / "spec.json"), "--spdx", str(spdx),
                 "--cyclonedx", str(cdx)])
    assert code == 0
    return spdx, cdx


def test_pyspdxtools_finds_an_invalid_document(tmp_path, caplog):
    """The check below is a real one: a LicenseRef the document does not declare fails it."""
    spdx = json.loads(documents(SbomSpec.from_json(make_spec()))[0])
    spdx["packages"][1]["licenseDeclared"] = "LicenseRef-Undeclared"
    (tmp_path / "bad.spdx.json").write_text(json.dumps(spdx))
    assert pyspdxtools("-i", str(tmp_path / "bad.spdx.json")) == 1
    assert "Unrecognized license reference: LicenseRef-Undeclared" in caplog.text


@pytest.mark.parametrize("digest", [DIGEST, None])
def test_both_documents_are_valid(tmp_path, capfd, digest):
    spdx, cdx = write_documents(tmp_path, make_spec(digest=digest))
    assert_valid_spdx(spdx)
    assert_valid_cyclonedx(cdx)


def test_what_the_documents_say(tmp_path, capfd):
    spdx_path, cdx_path = write_documents(tmp_path, make_spec())
    spdx, cdx = json.loads(spdx_path.read_text()), json.loads(cdx_path.read_text())
    packages = {p["SPDXID"]: p for p in spdx["packages"]}
    image = packages["SPDXRef-Image"]
    assert image["externalRefs"][0]["referenceLocator"] == (
        f"pkg:oci/hello@{DIGEST}?repository_url=localhost:5000/strata&tag=1.0")
    assert spdx["creationInfo"] == {"created": "2024-05-06T07:08:09Z", "creators": ["Tool: strata"]}
    assert spdx["documentNamespace"] == (
        f"https://strata.invalid/spdx/localhost:5000/strata/hello/{'ab' * 32}")
    relations = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
                 for r in spdx["relationships"]}
    names = {p["name"]: p["SPDXID"] for p in spdx["packages"]}
    libc, libgcc = names["libc6"], names["libgcc-s1"]
    assert {("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"),
            ("SPDXRef-Image", "CONTAINS", "SPDXRef-Layer-0"),
            ("SPDXRef-Image", "CONTAINS", libc), ("SPDXRef-Layer-0", "CONTAINS", libc),
            ("SPDXRef-Image", "CONTAINS", "SPDXRef-Base-0"),
            ("SPDXRef-Base-0", "CONTAINS", names["zlib1g"]),
            (libc, "DEPENDS_ON", libgcc)} <= relations
    assert not any(r[0] == names["app:config"] and r[1] == "CONTAINS" for r in relations)
    # Two packages' `public-domain` texts differ: the later one's LicenseRef is renamed.
    assert packages[libc]["licenseDeclared"] == "GPL-2.0-or-later AND LicenseRef-public-domain"
    assert packages[libgcc]["licenseDeclared"] == "LicenseRef-public-domain-2"
    texts = {info["licenseId"]: info["extractedText"]
             for info in spdx["hasExtractedLicensingInfos"]}
    assert texts["LicenseRef-public-domain-2"] == "Public domain, gcc."
    assert texts["LicenseRef-Foo"] == "Foo."
    files = {f["fileName"] for f in spdx["files"]}
    assert "./app/venv/lib/python3.11/site-packages/hello/main.py" in files
    # The base's packages: both its SBOMs read, zlib1g once, what is not understood unknown.
    base = {p["name"]: p for p in spdx["packages"] if p["SPDXID"].startswith("SPDXRef-Base-0-")}
    assert sorted(base) == ["base-files", "libfoo", "libodd", "nested", "zlib1g"]
    assert (base["zlib1g"]["licenseDeclared"], base["libodd"]["licenseDeclared"]) == (
        "Zlib", "NOASSERTION")
    assert base["base-files"]["licenseDeclared"] == "LicenseRef-Debian-base-files-licence"

    assert cdx["metadata"]["timestamp"] == "2024-05-06T07:08:09Z"
    assert cdx["metadata"]["component"]["type"] == "container"
    by_ref = {c["bom-ref"]: c for c in cdx["components"]}
    assert {"name": "strata:layer", "value": "sha256:" + "01" * 32} in (
        by_ref["app:python#libc6"]["properties"])
    assert by_ref["app:python#libc6"]["licenses"] == [
        {"expression": "GPL-2.0-or-later AND LicenseRef-public-domain"}]
    dependencies = {d["ref"]: d["dependsOn"] for d in cdx["dependencies"]}
    assert dependencies["app:python#libc6"] == ["app:python#libgcc-s1"]
    assert dependencies["app:python#libgcc-s1"] == []  # `absent` is no component
    base_component = next(c for c in cdx["components"] if c["type"] == "container")
    assert sorted(c["name"] for c in base_component["components"]) == sorted(base)


def test_warnings_are_kept_in_both_documents_and_printed(tmp_path, capfd):
    spdx_path, cdx_path = write_documents(tmp_path, make_spec())
    printed = capfd.readouterr().err.splitlines()
    expected = [
        "libgcc-s1: made-up warning for the test",
        "python-dateutil: no SPDX licence: licence unknown",
        "the rules could not describe //app:mystery",
        "base registry.example.com/library/debian: attached SBOM 0: some licences left unknown ('GPL' is "
        "not an SPDX license id Strata knows)",
        "base registry.example.com/library/debian: attached SBOM 2 is neither SPDX 2.x nor CycloneDX JSON: "
        "skipped",
    ]
    assert sorted(printed) == sorted(f"warning: {w}" for w in expected)
    spdx, cdx = spdx_path.read_text(), cdx_path.read_text()
    for warning in expected:
        assert json.dumps(warning)[1:-1] in spdx and json.dumps(warning)[1:-1] in cdx


def test_the_same_spec_gives_the_same_bytes_and_the_seed_names_the_documents():
    spec = make_spec()
    shuffled = copy.deepcopy(spec)
    shuffled["components"].reverse()
    first = documents(SbomSpec.from_json(spec))
    assert documents(SbomSpec.from_json(spec)) == first
    assert documents(SbomSpec.from_json(shuffled)) == first
    other = [json.loads(d) for d in documents(SbomSpec.from_json(
        make_spec(seed="sha256:" + "ef" * 32)))]
    spdx, cdx = (json.loads(d) for d in first)
    assert spdx["documentNamespace"] != other[0]["documentNamespace"]
    assert cdx["serialNumber"] != other[1]["serialNumber"]
    assert cdx["serialNumber"].startswith("urn:uuid:")


@pytest.mark.parametrize("change, message", [
    (lambda s: s["subject"].pop("seed"), "subject: missing keys ['seed']"),
    (lambda s: s.update(created="yesterday"), "created must be an RFC 3339 UTC time"),
    (lambda s: s["components"][0].update(layer=7), "components[0]: layer must be an index"),
    (lambda s: s["components"][0]["facts"].update(kind="rpm"), "components[0].facts: kind"),
    (lambda s: s["bases"][0].update(digest="latest"), "bases[0].digest: not a sha256 digest"),
])
def test_a_bad_spec_is_refused_naming_the_field(tmp_path, capfd, change, message):
    spec = make_spec()
    change(spec)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    code = main(["sbom", "--spec", str(tmp_path / "spec.json"), "--spdx",
                 str(tmp_path / "a.spdx.json"), "--cyclonedx", str(tmp_path / "a.cdx.json")])
    assert code == 1 and message in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "spec.json"]


def test_the_spec_survives_its_json():
    spec = SbomSpec.from_json(make_spec(digest=None))
    assert SbomSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_the_sbom_process_as_the_rules_run_it(tmp_path):
    """`python -m strata.core sbom` with the core on the path only: the standard library."""
    (tmp_path / "spec.json").write_text(json.dumps(make_spec()))
    src = Path(sys.modules["strata.core"].__file__).parent.parent.parent
    done = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-B", "-m", "strata.core", "sbom", "--spec",
         str(tmp_path / "spec.json"), "--spdx", str(tmp_path / "a.spdx.json"), "--cyclonedx",
         str(tmp_path / "a.cdx.json")],
        cwd=src, env={}, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.count("warning: ") == 5, done.stderr
    assert ((tmp_path / "a.spdx.json").read_bytes(), (tmp_path / "a.cdx.json").read_bytes()) == (
        documents(SbomSpec.from_json(make_spec())))


def test_the_documents_are_json_dumps_indented_character_for_character() -> None:
    """`dumps_indented` is `json.dumps(sort_keys=True, indent=2, ensure_ascii=False)`, only
    faster: on nested values of every JSON type, escapes, non-ASCII and empty containers."""
    import random

    from strata.core.sbom.documents import dumps_indented

    rng = random.Random(29)
    leaves = [None, True, False, 0, -5, 10**20, 1.5, 1e-7, "", 'é"\\\n\x00日本\u2028', "plain"]

    def value(depth: int = 0):
        roll = rng.random()
        if depth > 4 or roll < 0.3:
            return rng.choice(leaves)
        if roll < 0.65:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(["a", "b", "é", "zz", "1"]) + str(i): value(depth + 1)
                for i in range(rng.randint(0, 4))}

    for _ in range(5000):
        v = value()
        assert dumps_indented(v) == json.dumps(v, sort_keys=True, indent=2, ensure_ascii=False)
