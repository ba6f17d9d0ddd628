"""Which store nodes share a layer: nixpkgs' referencesByPopularity, then a split into N layers.

`graph` maps each node to the nodes it references. Nodes that are only referenced count as nodes
without references; self-references are ignored. Every result is independent of the mapping's
and the iterables' order.

The popularity contest (nixpkgs' closure-graph.py), for a node n:

    contest(n): for each child c of n: P[c] += 1, then for each (x, s) in contest(c): P[x] += s + 1

and the popularity of every node is that same rule applied to the roots (the nodes nobody
references) as the children of one virtual node. E.g. A→B, A→G, B→C, B→E, C→D, C→E, D→F, E→F
gives A 1, B 2, C 3, D 4, E 5, F 9, G 2.

Equal scores are ordered as closure-graph.py orders them: by `package_name` (ascending), which for
a Nix store path moves the hash after the name (`/nix/store/<hash>-bash-5.2` sorts as
`bash-5.2-/nix/store/<hash>`), so that the layering does not follow the hashes; every other key
(Strata's own nodes) is its own sort key.

Cycles (which nixpkgs never sees) are broken first, deterministically: a depth-first search
from the unreferenced nodes, then from the remaining nodes, in sorted order and visiting
children in sorted order, drops every back edge. The roots are then the nodes left without
incoming edges, which on an acyclic graph are exactly the unreferenced nodes.
"""

from typing import Dict, Iterable, List, Mapping, Optional, Tuple

Graph = Mapping[str, Iterable[str]]


def _children(graph: Graph) -> Dict[str, List[str]]:
    refs = {node: {child for child in kids if child != node} for node, kids in graph.items()}
    for children in list(refs.values()):
        for child in children:
            refs.setdefault(child, set())
    return {node: sorted(children) for node, children in refs.items()}


def _break_cycles(children: Dict[str, List[str]]) -> Tuple[Dict[str, List[str]], List[str]]:
    """The graph without DFS back edges, and its nodes in post-order (children first)."""
    referenced = {child for kids in children.values() for child in kids}
    starts = sorted(n for n in children if n not in referenced) + sorted(referenced)
    dag: Dict[str, List[str]] = {}
    on_path = set()
    post_order: List[str] = []
    for start in starts:
        if start in dag:
            continue
        dag[start] = []
        on_path.add(start)
        stack = [(start, iter(children[start]))]
        while stack:
            node, todo = stack[-1]
            for child in todo:
                if child in on_path:
                    continue  # a back edge: dropping it breaks the cycle
                dag[node].append(child)
                if child not in dag:
                    dag[child] = []
                    on_path.add(child)
                    stack.append((child, iter(children[child])))
                    break
            else:
                stack.pop()
                on_path.discard(node)
                post_order.append(node)
    return dag, post_order


def popularity(graph: Graph) -> Dict[str, int]:
    """Every node's popularity (see the module docstring), keys in sorted order.

    contest(n) is kept as a table plus an offset added to every entry, so that "every score of
    contest(c) plus one" costs O(1) when n is the last node to need contest(c) and can take the
    table over: a chain of N nodes is O(N), not the O(N^2) of one table copy per node.
    """
    dag, post_order = _break_cycles(_children(graph))
    roots = sorted(set(dag) - {child for kids in dag.values() for child in kids})
    readers = dict.fromkeys(dag, 0)  # how many parents still have to read each contest
    for kids in list(dag.values()) + [roots]:
        for child in kids:
            readers[child] += 1
    contests: Dict[str, Tuple[Dict[str, int], int]] = {}
    for node in post_order:
        contests[node] = _contest(dag[node], contests, readers)
    table, offset = _contest(roots, contests, readers)
    return {node: table[node] + offset for node in sorted(table)}


def _contest(kids: List[str], contests: Dict[str, Tuple[Dict[str, int], int]],
             readers: Dict[str, int]) -> Tuple[Dict[str, int], int]:
    """contest() of a node with children `kids`, as (table, offset): score = table[x] + offset."""
    last_reads = [kid for kid in kids if readers[kid] == 1]
    heir = max(last_reads, key=lambda kid: len(contests[kid][0]), default=None)
    if heir is None:
        table, offset = {}, 0
    else:
        table, offset = contests.pop(heir)
        offset += 1  # every inherited score s becomes s + 1
    for kid in kids:
        readers[kid] -= 1
        if kid != heir:
            kid_table, kid_offset = contests[kid]
            bonus = kid_offset + 1
            for node, score in kid_table.items():
                table[node] = table.get(node, -offset) + score + bonus
            if readers[kid] == 0:
                del contests[kid]
        table[kid] = table.get(kid, -offset) + 1
    return table, offset


NIX_STORE_PREFIX = "/nix/store/"


def package_name(key: str) -> str:
    """closure-graph.py's sort key of a store path: its `-`-separated parts with the first
    (`/nix/store/<hash>`) moved to the end; a key that is no Nix store path is itself."""
    if not key.startswith(NIX_STORE_PREFIX):
        return key
    first, *rest = key.split("-")
    return "-".join([*rest, first])


def order_by_popularity(graph: Graph) -> List[str]:
    """All nodes, most popular first; equal scores by ascending `package_name`."""
    scores = popularity(graph)
    return sorted(scores, key=lambda node: (-scores[node], package_name(node), node))


def assign_layers(graph: Graph, budget: int, alone: Iterable[str] = ()) -> List[List[str]]:
    """Groups nodes into at most `budget` layers, bottom (most popular) first.

    With more nodes than `budget`, the budget - 1 most popular get a layer each and all the
    others share the last one; a group's nodes are sorted by key. The nodes in `alone` (whose
    layer Process does something to the whole layer, such as setting permissions) always get a
    layer of their own, taking the places of the least popular of those that would have.
    """
    if budget < 1:
        raise ValueError(f"the layer budget must be at least 1, got {budget}")
    order = order_by_popularity(graph)
    if len(order) <= budget:
        return [[node] for node in order]
    alone = set(alone) & set(order)
    if len(alone) >= budget:
        raise ValueError(
            f"{len(alone)} nodes must have a layer of their own ({', '.join(sorted(alone))}), "
            f"which leaves none of the {budget} layers for the other {len(order) - len(alone)}"
        )
    others = [node for node in order if node not in alone]
    own = alone.union(others[: budget - 1 - len(alone)])
    return [[node] for node in order if node in own] + [sorted(set(order) - own)]


def content_budget(own_layers: int, keeps_top: bool) -> int:
    """The layers of an image's own `own_layers` that its nodes fill: all but the top one when
    customisation content keeps it, unless there is only one, which that content then joins
    (dockerTools' `buildImage`)."""
    return own_layers - (1 if keeps_top and own_layers > 1 else 0)


def layer_comment(group: List[str], limit: Optional[int] = None) -> str:
    """A layer's history comment: its nodes' keys (the first `limit` of them, and how many
    more)."""
    shown = group if limit is None else group[:limit]
    more = "" if limit is None or len(group) <= limit else f", +{len(group) - limit} more"
    return ", ".join(shown) + more
