"""Image names as package lists: `shell/curl/python3.11` is the image of those Debian packages
(and the meta-package `shell`), `arm64/shell/curl` the same for one architecture only.

A repository name's components are `[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*` (the distribution
spec); Debian package names are lowercase letters, digits, `+`, `-` and `.`. Only `+` needs an
escape, and `_`, which no Debian name holds, makes it unambiguous: `_p` is `+`
(`libstdc_p_p6` is libstdc++6, `g_p_p-12` is g++-12). The order of the components, and
repeats, do not matter: `curl/shell` is `shell/curl`, one image.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional, Tuple

from strata.core.debian.architectures import ARCHITECTURES
from strata.core.debian_registry.config import PACKAGE_NAME, RegistryConfig
from strata.core.errors import InvalidInput

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
PLUS_ESCAPE = "_p"


class NameInvalid(InvalidInput):
    """Not an image name this registry can read (the registry's 400 NAME_INVALID)."""


class ImageName(NamedTuple):
    architecture: Optional[str]  # None: every configured architecture (an index, if several)
    packages: Tuple[str, ...]  # sorted, meta-packages expanded, each once
    requested: Tuple[str, ...]  # the components as read (meta-packages unexpanded), sorted


def escape(package: str) -> str:
    """A Debian package name as an image-name component."""
    return package.replace("+", PLUS_ESCAPE)


def unescape(component: str) -> str:
    package = component.replace(PLUS_ESCAPE, "+")
    if "_" in package:
        raise NameInvalid(f"{component!r}: `_` is only used in `{PLUS_ESCAPE}`, which stands for "
                          "`+` (libstdc++6 is `libstdc_p_p6`)")
    return package


def parse_name(name: str, config: RegistryConfig) -> ImageName:
    components = name.split("/")
    for component in components:
        if not _COMPONENT.fullmatch(component):
            raise NameInvalid(f"{component!r} is not a repository name component "
                              "([a-z0-9] runs joined by `.`, `_`, `__` or dashes)")
    if components[0] in ARCHITECTURES and components[0] not in config.architectures:
        raise NameInvalid(f"{components[0]!r} is an architecture this registry does not serve "
                          f"(it serves {', '.join(config.architectures)})")
    architecture = components[0] if components[0] in config.architectures else None
    if architecture is not None:
        components = components[1:]
    if not components:
        raise NameInvalid(f"{name!r} names no package after the architecture")
    requested, packages = set(), set()
    for component in components:
        if component in config.meta_packages:
            requested.add(component)
            packages.update(config.meta_packages[component])
            continue
        package = unescape(component)
        if not PACKAGE_NAME.fullmatch(package):
            raise NameInvalid(f"{component!r} is not a Debian package name")
        requested.add(package)
        packages.add(package)
    return ImageName(architecture, tuple(sorted(packages)), tuple(sorted(requested)))
