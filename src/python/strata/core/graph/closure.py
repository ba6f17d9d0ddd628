"""Projecting a build graph onto store nodes, and checking that nodes agree on paths.

The Pants shell classifies each target of an image's closure as a store node or not; these pure
functions turn that into the node reference graph the layering works on, so the projection is
tested without Pants.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple


def reach(
    edges: Mapping[str, Iterable[str]], start: str, stop: Callable[[str], bool]
) -> Set[str]:
    """`start` and the targets reachable from it, not expanding past targets for which `stop`
    is true (they are reached, their dependencies are not)."""
    seen = {start}
    stack = list(edges.get(start, ()))
    while stack:
        address = stack.pop()
        if address in seen:
            continue
        seen.add(address)
        if not stop(address):
            stack.extend(edges.get(address, ()))
    return seen


def project_references(
    edges: Mapping[str, Iterable[str]], node_of: Mapping[str, Optional[str]]
) -> Dict[str, Set[str]]:
    """References between store nodes, passing through targets that are not nodes.

    `edges` maps each target to its dependencies; `node_of` maps a target to the node that holds
    its content, or None for metadata-only targets. A node references the nearest nodes reachable
    through non-node targets. Self-references disappear; cycles are fine (iterative, visited-set).
    """
    refs: Dict[str, Set[str]] = {node: set() for node in node_of.values() if node is not None}
    for target in sorted(edges):
        node = node_of.get(target)
        if node is None:
            continue
        seen: Set[str] = set()
        stack = sorted(edges[target], reverse=True)
        while stack:
            dep = stack.pop()
            if dep in seen:
                continue
            seen.add(dep)
            dep_node = node_of.get(dep)
            if dep_node is None:
                stack.extend(sorted(edges.get(dep, ()), reverse=True))
            elif dep_node != node:
                refs[node].add(dep_node)
    return refs


# The fingerprint prefix of a symlink's claim: "symlink:<target>".
SYMLINK = "symlink:"


class PathConflict(ValueError):
    """Two store nodes place different content at the same image path."""


def check_paths(
    files: Iterable[Tuple[str, str, str]],
    directories: Iterable[Tuple[str, str]] = (),
    subtrees: Iterable[Tuple[str, str]] = (),
) -> None:
    """Raises PathConflict when nodes disagree about a path.

    `files` holds (node, image path, content fingerprint) triples, where the fingerprint covers
    everything that ends up in the layer (content digest and executable bit, or `SYMLINK` and
    the link's target for a symlink); `directories`
    holds (node, image path) pairs. The same file from two nodes is fine (it is written once per
    layer); different content, or a file where another node needs a directory, is not.
    `subtrees` holds (node, image path) pairs of paths a node owns whole (a Nix store path):
    another node placing anything there or below is a conflict.
    """
    owned = dict((path, node) for node, path in sorted(subtrees))
    if owned:
        claims = [(node, path) for node, path, _ in files] + list(directories)
        for node, path in sorted(claims):
            for owner_path in [path, *_parents(path)]:
                owner = owned.get(owner_path)
                if owner is not None and owner != node:
                    raise PathConflict(
                        f"{node} places /{path} inside {owner}, which Nix owns whole: store "
                        "paths are immutable."
                    )
    owners: Dict[str, Tuple[str, str]] = {}
    for node, path, fingerprint in sorted(files):
        previous = owners.setdefault(path, (node, fingerprint))
        if previous[1] != fingerprint:
            raise PathConflict(
                f"{previous[0]} and {node} both place different content at /{path}."
            )
    parents: Dict[str, str] = {}
    for node, path, _ in sorted(files):
        for parent in _parents(path):
            parents.setdefault(parent, node)
    for node, path in sorted(directories):
        parents.setdefault(path, node)
    for path in sorted(set(owners) & set(parents)):
        owner, fingerprint = owners[path]
        kind = "a symlink" if fingerprint.startswith(SYMLINK) else "a file"
        raise PathConflict(
            f"{owner} places {kind} at /{path}, where {parents[path]} needs a directory."
        )


def _parents(path: str) -> List[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
