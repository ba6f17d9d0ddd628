import pytest

from strata.core.debian_registry.config import RegistryConfig

VALID = {"target": "app:registry", "suite": "bookworm", "architectures": ["amd64", "arm64"],
         "meta_packages": {"shell": ["bash", "coreutils"], "dev": ["g++-12"]},
         "max_layers": 100, "compression": "gzip", "created": "1970-01-01T00:00:01Z"}


def test_to_json_reads_back_as_the_same_config():
    config = RegistryConfig.from_json(VALID)
    assert config.architectures == ("amd64", "arm64")
    assert config.meta_packages == {"shell": ("bash", "coreutils"), "dev": ("g++-12",)}
    assert RegistryConfig.from_json(config.to_json()) == config
    assert list(config.to_json()["meta_packages"]) == ["dev", "shell"]  # sorted: stable bytes


@pytest.mark.parametrize("change, message", [
    ({"suites": "bookworm"}, "unknown keys ['suites']"),
    ({"suite": None}, "suite must be a string"),
    ({"target": 7}, "target must be a string"),
    ({"architectures": []}, "architectures: at least one is needed"),
    ({"architectures": "amd64"}, "architectures must be a list"),
    ({"architectures": ["amd65"]}, "architectures: 'amd65' is not a Debian architecture"),
    ({"architectures": ["amd64", "amd64"]}, "architectures: ['amd64', 'amd64'] repeats one"),
    ({"meta_packages": ["bash"]}, "meta_packages must be a JSON object"),
    ({"meta_packages": {"shell": "bash"}}, "meta_packages: 'shell' must be a list"),
    ({"meta_packages": {"Shell": ["bash"]}}, "meta_packages: the name 'Shell'"),
    ({"meta_packages": {"my_shell": ["bash"]}}, "meta_packages: the name 'my_shell'"),
    ({"meta_packages": {"arm64": ["bash"]}}, "meta_packages: 'arm64' is also an architecture"),
    ({"meta_packages": {"shell": []}}, "meta_packages: 'shell' names no package"),
    ({"meta_packages": {"shell": ["Bash"]}}, "meta_packages: 'shell': 'Bash' is not a Debian"),
    ({"max_layers": 0}, "max_layers must be a positive integer"),
    ({"max_layers": "100"}, "max_layers must be a positive integer"),
    ({"max_layers": True}, "max_layers must be a positive integer"),
    ({"compression": "zstd"}, "compression must be one of ['gzip', 'none']"),
    ({"created": "yesterday"}, "created must be an RFC 3339 time"),
    ({"created": "now"}, "created must be an RFC 3339 time"),
    ({"created": "2300-01-01T00:00:00Z"}, "created: the time '2300-01-01T00:00:00Z'"),
])
def test_each_refusal_names_the_setting(change, message):
    with pytest.raises(ValueError) as raised:
        RegistryConfig.from_json({**VALID, **change})
    assert message in str(raised.value)


def test_a_missing_setting_is_named():
    config = dict(VALID)
    del config["suite"]
    with pytest.raises(ValueError, match=r"missing \['suite'\]"):
        RegistryConfig.from_json(config)
    with pytest.raises(ValueError, match="must be a JSON object"):
        RegistryConfig.from_json([VALID])
