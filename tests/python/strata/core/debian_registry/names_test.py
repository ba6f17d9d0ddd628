import pytest

from strata.core.debian_registry.config import RegistryConfig
from strata.core.debian_registry.names import NameInvalid, escape, parse_name, unescape
from strata.core.errors import InvalidInput

CONFIG = RegistryConfig(
    target="app:registry", suite="bookworm", architectures=("amd64", "arm64"),
    meta_packages={"shell": ("bash", "coreutils"), "py": ("python3.11", "bash")},
    max_layers=100, compression="gzip", created="1970-01-01T00:00:01Z",
)


@pytest.mark.parametrize("package", ["libstdc++6", "g++-12", "dvd+rw-tools", "c++", "a+p",
                                     "python3.11", "lib+x+y", "curl"])
def test_every_debian_name_escapes_to_a_component_that_reads_back(package):
    component = escape(package)
    assert "+" not in component
    assert unescape(component) == package
    assert parse_name(component, CONFIG).packages == (package,)


def test_plus_is_spelt_p():
    assert escape("libstdc++6") == "libstdc_p_p6"
    assert parse_name("g_p_p-12", CONFIG).packages == ("g++-12",)
    assert parse_name("libstdc_p_p6/curl", CONFIG).packages == ("curl", "libstdc++6")


def test_order_and_repeats_do_not_make_another_image():
    names = [parse_name(n, CONFIG) for n in ("curl/shell", "shell/curl", "shell/curl/curl/shell")]
    assert {n.requested for n in names} == {("curl", "shell")}
    assert len(set(names)) == 1


def test_meta_packages_stand_for_their_packages():
    name = parse_name("shell/curl", CONFIG)
    assert name.packages == ("bash", "coreutils", "curl")
    assert name.requested == ("curl", "shell")
    # Two meta-packages sharing a package, and a package a meta-package holds too: each once.
    assert parse_name("py/shell/bash", CONFIG).packages == (
        "bash", "coreutils", "python3.11")


def test_an_architecture_prefix_picks_one_architecture():
    name = parse_name("arm64/shell", CONFIG)
    assert (name.architecture, name.packages) == ("arm64", ("bash", "coreutils"))
    assert parse_name("shell", CONFIG).architecture is None
    # Only the first component is a prefix, and only of a configured architecture.
    assert parse_name("curl/arm64", CONFIG).architecture is None
    with pytest.raises(NameInvalid, match="'i386' is an architecture this registry does not "
                       "serve"):
        parse_name("i386/curl", CONFIG)


@pytest.mark.parametrize("name, message", [
    ("shell//curl", "'' is not a repository name component"),
    ("Curl", "'Curl' is not a repository name component"),
    ("-curl", "'-curl' is not a repository name component"),
    ("curl_", "'curl_' is not a repository name component"),
    ("a___b", "'a___b' is not a repository name component"),
    ("a..b", "'a..b' is not a repository name component"),
    ("shell/../curl", "'..' is not a repository name component"),
    ("lib_x", "'lib_x': `_` is only used in `_p`"),
    ("a__pb", "'a__pb': `_` is only used in `_p`"),
    ("x", "'x' is not a Debian package name"),
    ("amd64", "'amd64' names no package after the architecture"),
])
def test_a_name_that_is_no_package_list_says_why(name, message):
    with pytest.raises(NameInvalid) as raised:
        parse_name(name, CONFIG)
    assert message in str(raised.value)
    assert isinstance(raised.value, InvalidInput)  # the server's 400, the CLI's exit code 1
