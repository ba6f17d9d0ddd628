"""`debian_registry`: its defaults, its settings as the server reads them, and each bad field an
error naming the target and field."""

import re

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidTargetException

from strata.core.debian_registry.config import RegistryConfig
from strata.target_types.debian import DebianArchitecturesField, DebianSuiteField
from strata.target_types.debian_registry import (
    DebianRegistryCompressionField,
    DebianRegistryCreatedField,
    DebianRegistryMaxLayersField,
    DebianRegistryMetaPackagesField,
    DebianRegistryTarget,
)

REGISTRY = Address("app", target_name="registry")


def test_defaults_are_bookworm_amd64_gzip_and_no_meta_packages():
    target = DebianRegistryTarget({}, REGISTRY)
    assert target[DebianSuiteField].value == "bookworm"
    assert target[DebianArchitecturesField].value == ("amd64",)
    assert target[DebianRegistryMetaPackagesField].value is None
    assert target[DebianRegistryMaxLayersField].value == 100
    assert target[DebianRegistryCompressionField].value == "gzip"
    assert target[DebianRegistryCreatedField].value == "1970-01-01T00:00:01Z"


def test_the_demo_registry_passes():
    target = DebianRegistryTarget(
        {"meta_packages": {"shell": ["bash", "coreutils"]}, "architectures": ["amd64", "arm64"]},
        REGISTRY,
    )
    assert dict(target[DebianRegistryMetaPackagesField].value) == {"shell": ("bash", "coreutils")}
    config = target.registry_config(keyring="/keyring.gpg", mirror="http://127.0.0.1:9/debian")
    assert RegistryConfig.from_json(config.to_json()) == RegistryConfig(
        target="app:registry", suite="bookworm", architectures=("amd64", "arm64"),
        meta_packages={"shell": ("bash", "coreutils")}, max_layers=100, compression="gzip",
        created="1970-01-01T00:00:01Z", keyring="/keyring.gpg", mirror="http://127.0.0.1:9/debian")


@pytest.mark.parametrize("fields, message", [
    ({"meta_packages": {"Shell": ["bash"]}},
     "The debian_registry app:registry is invalid: meta_packages: the name "
     "'Shell' must be lowercase letters and digits only"),
    ({"meta_packages": {"shell": []}},
     "The debian_registry app:registry is invalid: meta_packages: 'shell' names "
     "no package"),
    ({"meta_packages": {"shell": ["Bash"]}},
     "The debian_registry app:registry is invalid: meta_packages: 'shell': "
     "'Bash' is not a Debian package name"),
    ({"meta_packages": {"arm64": ["bash"]}, "architectures": ["amd64", "arm64"]},
     "The debian_registry app:registry is invalid: meta_packages: 'arm64' is "
     "also an architecture prefix"),
    ({"meta_packages": {"shell": "bash"}},
     "The 'meta_packages' field in target app:registry must be a dictionary of string -> an "
     "iterable of strings"),
    ({"compression": "zstd"},
     "Values for the 'compression' field in target app:registry must be one of ['gzip', "
     "'none'], but 'zstd' was provided."),
    ({"max_layers": 0},
     "The 'max_layers' field in target app:registry must be at least 1, but was 0."),
    ({"created": "yesterday"}, "The 'created' field in target app:registry is invalid"),
    ({"created": "now"},
     'The debian_registry app:registry is invalid: created must be an RFC 3339 time, not "now"'),
    ({"architectures": ["amd64", "amd64"]},
     "The debian_registry app:registry is invalid: architectures: ['amd64', 'amd64'] repeats "
     "one"),
    ({"architectures": ["aarch64"]},
     "The 'architectures' field in target app:registry is invalid"),
    ({"architectures": []},
     "The 'architectures' field in target app:registry needs at least one architecture."),
])  # fmt: skip
def test_a_bad_field_is_an_error_naming_the_target_and_field(fields, message):
    with pytest.raises(InvalidTargetException, match=re.escape(message)):
        DebianRegistryTarget(fields, REGISTRY)
