import random
import time
from collections import Counter
from functools import lru_cache

import pytest

from strata.core.graph.layering import (
    assign_layers,
    order_by_popularity,
    package_name,
    popularity,
)

WORKED = {"A": ["B", "G"], "B": ["C", "E"], "C": ["D", "E"], "D": ["F"], "E": ["F"]}


def reference_popularity(graph):
    """The contest exactly as nixpkgs states it: recursive, one table per node (DAGs only)."""
    children = {node: {c for c in kids if c != node} for node, kids in graph.items()}
    for kids in list(children.values()):
        for child in kids:
            children.setdefault(child, set())

    @lru_cache(maxsize=None)
    def contest(node):
        scores = Counter()
        for child in children[node]:
            scores[child] += 1
            for other, score in contest(child).items():
                scores[other] += score + 1
        return scores

    referenced = {c for kids in children.values() for c in kids}
    result = Counter()
    for root in children.keys() - referenced:
        result[root] += 1
        for other, score in contest(root).items():
            result[other] += score + 1
    return dict(result)


def random_dag(rng, size, density):
    names = [f"{rng.randrange(10**6):06d}-{i}" for i in range(size)]
    rng.shuffle(names)  # so sorted order is unrelated to topological order
    graph = {}
    for i, name in enumerate(names):
        later = names[i + 1 :]
        graph[name] = [n for n in later if rng.random() < density]
        if rng.random() < 0.1:
            graph[name].append(name)  # self-references are ignored
    return graph


def test_worked_example():
    assert popularity(WORKED) == {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 9, "G": 2}
    assert order_by_popularity(WORKED) == ["F", "E", "D", "C", "B", "G", "A"]


def test_independent_of_iteration_order():
    items = list(WORKED.items())
    random.Random(7).shuffle(items)
    shuffled = {node: list(reversed(kids)) for node, kids in items}
    assert popularity(shuffled) == popularity(WORKED)
    assert list(popularity(shuffled)) == sorted(popularity(WORKED))


def test_ties_break_by_key():
    graph = {"root": ["b", "a", "c"]}
    assert popularity(graph) == {"a": 2, "b": 2, "c": 2, "root": 1}
    assert order_by_popularity(graph) == ["a", "b", "c", "root"]


def test_diamond_counts_both_paths():
    graph = {"A": ["B", "C"], "B": ["D"], "C": ["D"]}
    assert popularity(graph) == {"A": 1, "B": 2, "C": 2, "D": 5}


def test_self_references_and_duplicate_references_are_ignored():
    assert popularity({"A": ["A", "B", "B"], "B": ["B"]}) == {"A": 1, "B": 2}


def test_referenced_only_nodes_and_several_roots():
    assert popularity({"A": ["C"], "B": ["C"]}) == {"A": 1, "B": 1, "C": 4}


def test_pure_cycle_is_broken_from_the_smallest_key():
    assert popularity({"B": ["C"], "C": ["A"], "A": ["B"]}) == {"A": 1, "B": 2, "C": 3}


def test_cycle_below_a_root_is_entered_from_the_root():
    # R→C, B→C, C→B: searching from R keeps R→C→B and drops B→C.
    assert popularity({"R": ["C"], "B": ["C"], "C": ["B"]}) == {"R": 1, "C": 2, "B": 3}


def test_unreachable_cycle_still_scores_every_node():
    scores = popularity({"A": ["B"], "X": ["Y"], "Y": ["X"]})
    assert scores == {"A": 1, "B": 2, "X": 1, "Y": 2}


def test_dense_random_cyclic_graphs_terminate_and_score_all():
    rng = random.Random(3)
    for _ in range(20):
        nodes = [str(i) for i in range(30)]
        graph = {n: rng.sample(nodes, 8) for n in nodes}
        scores = popularity(graph)
        assert sorted(scores) == sorted(nodes) and min(scores.values()) >= 1


@pytest.mark.parametrize("seed", range(40))
def test_matches_reference_on_random_dags(seed):
    rng = random.Random(seed)
    graph = random_dag(rng, rng.randrange(1, 60), rng.choice([0.02, 0.1, 0.3]))
    assert popularity(graph) == reference_popularity(graph)


def test_10k_chain_is_fast():
    n = 10_000
    chain = {f"n{i:05d}": [f"n{i + 1:05d}"] for i in range(n - 1)}
    start = time.perf_counter()
    scores = popularity(chain)
    assert time.perf_counter() - start < 2
    assert scores == {f"n{i:05d}": i + 1 for i in range(n)}
    assert assign_layers(chain, 3)[:2] == [["n09999"], ["n09998"]]


def test_10k_wide_fan_is_fast():
    fan = {"root": [f"leaf{i}" for i in range(10_000)]}
    start = time.perf_counter()
    scores = popularity(fan)
    assert time.perf_counter() - start < 2
    assert scores["root"] == 1 and scores["leaf0"] == 2


def test_assign_layers_budget_boundaries():
    graph = {"a": ["b", "c"], "b": ["c"]}  # popularity: c 4, b 2, a 1
    assert assign_layers(graph, 4) == [["c"], ["b"], ["a"]]  # n + 1 > nodes
    assert assign_layers(graph, 3) == [["c"], ["b"], ["a"]]  # n == nodes
    assert assign_layers(graph, 2) == [["c"], ["a", "b"]]  # n - 1: the rest share the top
    assert assign_layers(graph, 1) == [["a", "b", "c"]]
    assert assign_layers({}, 1) == []
    assert assign_layers({}, 5) == []


def test_assign_layers_rejects_a_budget_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        assign_layers(WORKED, 0)


def test_nodes_that_must_be_alone_take_the_least_popular_own_layers():
    graph = {"a": ["b", "c", "d"], "b": ["c", "d"], "c": ["d"]}  # popularity: d, c, b, a
    assert assign_layers(graph, 3) == [["d"], ["c"], ["a", "b"]]
    assert assign_layers(graph, 3, alone=["a"]) == [["d"], ["a"], ["b", "c"]]
    assert assign_layers(graph, 3, alone=["a", "b"]) == [["b"], ["a"], ["c", "d"]]
    assert assign_layers(graph, 4, alone=["a"]) == [["d"], ["c"], ["b"], ["a"]]  # all fit
    with pytest.raises(ValueError, match=r"2 nodes must have a layer of their own \(a, b\), "
                                         r"which leaves none of the 2 layers for the other 2"):
        assign_layers(graph, 2, alone=["a", "b"])


# Nix store paths tie as nixpkgs' closure-graph.py orders them (package_name: the hash moved
# after the name). Hashes are 32 base32 characters, as in a real store.
H_A, H_M, H_Z = "a" * 32, "m" * 32, "z" * 32
ZLIB, BASH = f"/nix/store/{H_A}-zlib-1.3", f"/nix/store/{H_Z}-bash-5.2"


def test_package_name_moves_the_store_hash_after_the_name():
    assert package_name(ZLIB) == f"zlib-1.3-/nix/store/{H_A}"
    assert package_name(f"/nix/store/{H_M}-hello") == f"hello-/nix/store/{H_M}"
    assert package_name("app:files") == "app:files"  # Strata's own keys are their own order


def test_closure_graph_docstring_example():
    graph = {"/nix/store/foo": ["/nix/store/bar", "/nix/store/baz"],
             "/nix/store/bar": ["/nix/store/baz"], "/nix/store/baz": ["/nix/store/tux"]}
    # contest(baz) = {tux: 1}; contest(bar) = {baz: 1, tux: 1 + 1 = 2};
    # contest(foo) = bar 1, baz (1 + 1) from bar + 1 itself = 3, tux (2 + 1) + (1 + 1) = 5;
    # the virtual root adds foo 1 and every score of contest(foo) + 1: bar 2, baz 4, tux 6.
    assert popularity(graph) == {"/nix/store/bar": 2, "/nix/store/baz": 4,
                                 "/nix/store/foo": 1, "/nix/store/tux": 6}
    assert order_by_popularity(graph) == ["/nix/store/tux", "/nix/store/baz",
                                          "/nix/store/bar", "/nix/store/foo"]


def test_equal_store_paths_tie_by_name_not_hash():
    # root -> zlib, bash: both 1 + 1 = 2. bash's hash (z...) sorts after zlib's (a...), but
    # "bash-5.2-/nix/store/z..." < "zlib-1.3-/nix/store/a...".
    graph = {f"/nix/store/{H_M}-root": [ZLIB, BASH]}
    assert order_by_popularity(graph) == [BASH, ZLIB, f"/nix/store/{H_M}-root"]


def test_same_name_ties_by_hash_the_moved_part():
    # Both "lib-1-/nix/store/<hash>": the hash decides, a... before z....
    older, newer = f"/nix/store/{H_Z}-lib-1", f"/nix/store/{H_A}-lib-1"
    graph = {f"/nix/store/{H_M}-root": [older, newer]}
    assert order_by_popularity(graph)[:2] == [newer, older]


def test_store_layers_overflow_into_the_last():
    # root -> alpha, beta, gamma, delta; alpha -> delta. contest(alpha) = {delta: 1};
    # contest(root) = alpha 1, beta 1, gamma 1, delta (1 + 1) + 1 = 3; the virtual root:
    # root 1, alpha 2, beta 2, gamma 2, delta 4. The ties at 2 by name: alpha, beta, gamma
    # (alpha's hash, z..., sorts last).
    alpha, beta = f"/nix/store/{H_Z}-alpha", f"/nix/store/{H_A}-beta"
    gamma, delta = f"/nix/store/{H_M}-gamma", f"/nix/store/{H_M}-delta"
    root = f"/nix/store/{H_A}-root"
    graph = {root: [alpha, beta, gamma, delta], alpha: [delta]}
    assert popularity(graph) == {root: 1, alpha: 2, beta: 2, gamma: 2, delta: 4}
    # Budget 3: the 2 most popular alone (delta, alpha), the other 3 share the last layer,
    # sorted by key: beta and root (hash a...) before gamma (hash m...).
    assert assign_layers(graph, 3) == [[delta], [alpha], sorted([beta, gamma, root])]
    assert sorted([beta, gamma, root]) == [beta, root, gamma]


def test_strata_keys_and_store_paths_in_one_graph():
    # app:files -> hello -> glibc; app:files -> app:config. contest(hello) = {glibc: 1};
    # contest(app:files) = hello 1, glibc 1 + 1 = 2, app:config 1; the virtual root:
    # app:files 1, hello 2, app:config 2, glibc 3. The tie at 2: "app:config" before
    # "hello-2.12-/nix/store/...", although by key "/nix/store/..." < "app:config".
    hello, glibc = f"/nix/store/{H_Z}-hello-2.12", f"/nix/store/{H_A}-glibc-2.37"
    graph = {"app:files": [hello, "app:config"], hello: [glibc]}
    assert order_by_popularity(graph) == [glibc, "app:config", hello, "app:files"]
