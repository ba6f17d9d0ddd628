"""Debian packages as store nodes, as both the Pants shell and the registry that builds on pull
lay them out: one node per package, keyed by its name, referencing what its dependencies
resolved to; its `.deb` at one sandbox path. One definition, so that the two give the same
layers, digest for digest."""

from typing import Dict, Iterable, Mapping, Tuple

from strata.core.build.parts.debs import Deb

_DEB_DIR = "debs"


def node_key(package: str) -> str:
    """One node per package name across every source of Debian packages in an image."""
    return f"debian:{package}"


def deb_path(package: str) -> str:
    """Where a package's `.deb` is in a layer Process's sandbox (and its node's digest)."""
    return f"{_DEB_DIR}/{package}.deb"


def package_graph(packages: Mapping[str, dict]) -> Dict[str, Tuple[str, ...]]:
    """The store-node graph of one architecture's locked packages (`lock.resolve`)."""
    return {node_key(name): tuple(node_key(dep) for dep in locked["depends"])
            for name, locked in packages.items()}


def debs_part(packages: Iterable[str]) -> Tuple[str, Tuple[Deb, ...]]:
    """The layer spec's `debs` part writing `packages`, in the order every layer lists them."""
    return ("debs", tuple(Deb(deb_path(p), p) for p in sorted(packages)))
