"""Debian's architecture names, and the one an image's platform (as Go names it) runs.

The one place the two namings meet: the `debian_packages` field checks its names here, and the
store nodes of a `debian_packages` target in an image are the packages of the architecture
`debian_architecture` gives for the image's platform.
"""

from typing import Optional

# The architectures a lock may hold: Debian's official ports of bookworm and trixie.
ARCHITECTURES = ("amd64", "arm64", "armel", "armhf", "i386", "mips64el", "ppc64el", "riscv64",
                 "s390x")

_BY_GO_ARCH = {"amd64": "amd64", "arm64": "arm64", "386": "i386", "ppc64le": "ppc64el",
               "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el"}
# 32-bit ARM by variant: armhf needs ARMv7 (hard float), armel runs on ARMv5 and v6. No variant
# means v7, as containerd's platform normalisation has it.
_ARM_BY_VARIANT = {None: "armhf", "v7": "armhf", "v6": "armel", "v5": "armel"}
_ARM_VARIANT = {"armhf": "v7", "armel": "v5"}


def check_architecture(name: str) -> str:
    """`name` if Debian has an architecture of that name, else a ValueError listing them."""
    if name not in ARCHITECTURES:
        raise ValueError(f"{name!r} is not a Debian architecture: use one of "
                         f"{', '.join(ARCHITECTURES)}")
    return name


def image_platform(arch: str) -> dict:
    """The platform (Go's names, as an image config has them) of images of Debian packages for
    `arch`: `debian_architecture`'s inverse, variant only where Go's architecture needs one."""
    check_architecture(arch)
    if arch in _ARM_VARIANT:
        return {"architecture": "arm", "os": "linux", "variant": _ARM_VARIANT[arch]}
    (go_arch,) = [go for go, debian in _BY_GO_ARCH.items() if debian == arch]
    return {"architecture": go_arch, "os": "linux"}


def debian_architecture(go_arch: str, variant: Optional[str] = None) -> str:
    """The Debian architecture of an image of platform `go_arch` (+ `variant`): `arm64` ->
    `arm64`, `arm` v7 -> `armhf`, `386` -> `i386`, ... A ValueError for one Debian lacks."""
    if go_arch == "arm":
        if variant not in _ARM_BY_VARIANT:
            raise ValueError(f"the platform arm/{variant} has no Debian architecture: Debian "
                             f"has armhf (arm/v7) and armel (arm/v6, arm/v5)")
        return _ARM_BY_VARIANT[variant]
    if go_arch not in _BY_GO_ARCH:
        raise ValueError(f"the architecture {go_arch!r} has no Debian architecture: Go's names "
                         f"{', '.join(sorted([*_BY_GO_ARCH, 'arm']))} have one")
    return _BY_GO_ARCH[go_arch]
