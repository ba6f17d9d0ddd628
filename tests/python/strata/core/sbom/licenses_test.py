import pytest

from strata.core.sbom.licenses import (
    LicenseTable, classifier_license, debian_expression, parse_expression,
)


@pytest.mark.parametrize("name, expression, refs", [
    ("GPL-2", "GPL-2.0-only", {}),
    ("GPL-3+", "GPL-3.0-or-later", {}),
    ("LGPL-2.1", "LGPL-2.1-only", {}),
    ("AGPL-3+", "AGPL-3.0-or-later", {}),
    ("GFDL-1.3+", "GFDL-1.3-or-later", {}),
    ("Apache-2", "Apache-2.0", {}),
    ("MPL-1.1+", "MPL-1.1+", {}),
    ("bsd-2-clause", "BSD-2-Clause", {}),
    ("Perl", "Artistic-1.0-Perl OR GPL-1.0-or-later", {}),
    ("GPL-2+ or Artistic, and BSD-3-clause",
     "(Artistic-1.0-Perl OR GPL-2.0-or-later) AND BSD-3-Clause", {}),
    ("GPL-3+ with Classpath exception", "GPL-3.0-or-later WITH Classpath-exception-2.0", {}),
    # Autoconf has two exceptions in SPDX's list: which one is not said, so no guess.
    ("GPL-2+ with Autoconf exception", "LicenseRef-GPL-2-plus-with-Autoconf-exception",
     {"LicenseRef-GPL-2-plus-with-Autoconf-exception": "GPL-2+ with Autoconf exception"}),
    ("SomeCompany's EULA", "LicenseRef-SomeCompany-s-EULA",
     {"LicenseRef-SomeCompany-s-EULA": "SomeCompany's EULA"}),
])
def test_debian_names(name, expression, refs):
    found = {}
    assert debian_expression(name, found) == expression
    assert found == refs


def test_classifiers():
    assert classifier_license(["License :: OSI Approved :: MIT License",
                               "Programming Language :: Python"]) == ("MIT", [])
    assert classifier_license(["License :: OSI Approved :: Apache Software License",
                               "License :: OSI Approved :: MIT License"]) == (
        "Apache-2.0 OR MIT", [])
    assert classifier_license(["License :: OSI Approved :: BSD License"]) == (
        None, ["License :: OSI Approved :: BSD License"])


@pytest.mark.parametrize("text, expression", [
    ("mit", "MIT"),
    ("(MIT OR apache-2.0) AND LicenseRef-X", "(MIT OR Apache-2.0) AND LicenseRef-X"),
    ("GPL-2.0-or-later WITH classpath-exception-2.0", "GPL-2.0-or-later WITH "
                                                      "Classpath-exception-2.0"),
])
def test_expressions(text, expression):
    assert parse_expression(text)[0] == expression


@pytest.mark.parametrize("text", ["GPL", "MIT OR", "(MIT", "MIT AND AND ISC", "Foo-1.0+ OR MIT",
                                  "MIT WITH Nothing-exception", "Dual License"])
def test_not_expressions(text):
    with pytest.raises(ValueError):
        parse_expression(text)


def test_one_text_per_license_ref():
    table = LicenseTable()
    assert table.add("LicenseRef-pd AND MIT", {"LicenseRef-pd": "one"}) == "LicenseRef-pd AND MIT"
    assert table.add("LicenseRef-pd", {"LicenseRef-pd": "one"}) == "LicenseRef-pd"
    assert table.add("LicenseRef-pd OR LicenseRef-pd-x", {"LicenseRef-pd": "two",
                                                           "LicenseRef-pd-x": "x"}) == (
        "LicenseRef-pd-2 OR LicenseRef-pd-x")
    assert table.texts == {"LicenseRef-pd": "one", "LicenseRef-pd-2": "two",
                           "LicenseRef-pd-x": "x"}
