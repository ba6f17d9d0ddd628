"""What a `debian_registry` target bakes into its server: the suite, architectures,
meta-packages and image settings (`RegistryConfig`). The Pants shell writes it with `to_json()`;
the server reads it back with `from_json()`, the one place its shape is checked."""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Tuple

from strata.core.build.spec import json_strings
from strata.core.debian.architectures import check_architecture
from strata.core.debian.index import DEFAULT_GPGV, DEFAULT_KEYRING
from strata.core.errors import InvalidInput
from strata.core.oci.image import epoch_seconds

# Debian policy 5.6.1: lowercase letters, digits, `+`, `-`, `.`; two characters at least,
# starting with a letter or digit.
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# The layer compressions a registry serves: Docker reads neither zstd nor needs it here.
COMPRESSIONS = ("gzip", "none")


class RegistryConfig(NamedTuple):
    target: str  # the `debian_registry` target, for logs and errors
    suite: str
    architectures: Tuple[str, ...]  # Debian's names; several: an image index
    meta_packages: Dict[str, Tuple[str, ...]]
    max_layers: int
    compression: str
    created: str  # RFC 3339; the layers' mtime too
    keyring: str = DEFAULT_KEYRING
    gpgv: str = DEFAULT_GPGV
    mirror: str = ""  # empty: `--mirror`, else this machine's apt sources

    def to_json(self) -> dict:
        return {
            **self._asdict(),
            "architectures": list(self.architectures),
            "meta_packages": {k: list(v) for k, v in sorted(self.meta_packages.items())},
        }

    @classmethod
    def from_json(cls, obj) -> RegistryConfig:
        what = "the debian_registry configuration"
        if not isinstance(obj, dict):
            raise InvalidInput(f"{what} must be a JSON object")
        required = set(cls._fields) - set(cls._field_defaults)
        unknown, missing = set(obj) - set(cls._fields), required - set(obj)
        if unknown or missing:
            raise InvalidInput(f"{what}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
        for key in set(obj) - {"architectures", "meta_packages", "max_layers"}:
            if not isinstance(obj[key], str):
                raise InvalidInput(f"{key} must be a string: {obj[key]!r}")
        meta_packages = obj["meta_packages"]
        if not isinstance(meta_packages, dict):
            raise InvalidInput(f"meta_packages must be a JSON object: {meta_packages!r}")
        config = cls(**{**obj,
                        "architectures": json_strings(obj["architectures"], "architectures"),
                        "meta_packages": {k: json_strings(v, f"meta_packages: {k!r}")
                                          for k, v in meta_packages.items()}})
        config.check()
        return config

    def check(self) -> None:
        """A ValueError naming the setting that is wrong."""
        if not self.architectures:
            raise InvalidInput("architectures: at least one is needed")
        for arch in self.architectures:
            try:
                check_architecture(arch)
            except ValueError as e:
                raise InvalidInput(f"architectures: {e}") from None
        if len(set(self.architectures)) != len(self.architectures):
            raise InvalidInput(f"architectures: {list(self.architectures)} repeats one")
        for name, packages in self.meta_packages.items():
            check_meta_package(name, packages, self.architectures)
        if type(self.max_layers) is not int or self.max_layers < 1:
            raise InvalidInput(f"max_layers must be a positive integer: {self.max_layers!r}")
        if self.compression not in COMPRESSIONS:
            raise InvalidInput(f"compression must be one of {list(COMPRESSIONS)}: "
                               f"{self.compression!r}")
        if self.created == "now":  # every restart would serve other images under one name
            raise InvalidInput("created must be an RFC 3339 time, not \"now\": the registry's "
                               "images are reproducible")
        try:
            epoch_seconds(self.created)
        except ValueError as e:
            raise InvalidInput(f"created: {e}") from None


def check_meta_package(name: str, packages, architectures) -> None:
    """A meta-package is an image-name component of its own (lowercase letters and digits, so
    that it needs no escape) standing for Debian packages; it may not shadow an architecture
    prefix."""
    if not re.fullmatch(r"[a-z0-9]+", name):
        raise InvalidInput(f"meta_packages: the name {name!r} must be lowercase letters and "
                           "digits only")
    if name in architectures:
        raise InvalidInput(f"meta_packages: {name!r} is also an architecture prefix")
    if not packages:
        raise InvalidInput(f"meta_packages: {name!r} names no package")
    for package in packages:
        if not isinstance(package, str) or not PACKAGE_NAME.fullmatch(package):
            raise InvalidInput(f"meta_packages: {name!r}: {package!r} is not a Debian package "
                               "name")
