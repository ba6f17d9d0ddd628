import random
import subprocess
import uuid
from pathlib import Path

from strata.core.graph.layering import assign_layers, popularity
from strata_harness.nix import (
    FIXTURE_NAMES,
    delete_fixture,
    fixture_nonce,
    graph_popularity_contest,
    graph_segment,
    hello_output,
    is_valid_path,
    nix_build,
    nix_closure_graph,
    nixpkgs_layer_plan,
    nixpkgs_popularity,
    order_by_popularity,
    out_paths,
    package_name,
    popularity_order,
    split_layers,
    write_fixture,
)

FOO, BAR, BAZ, TUX = (f"/nix/store/{name}" for name in ("foo", "bar", "baz", "tux"))


# closure-graph.py's own examples.


def test_graph_segment_repeats_a_path_under_each_referrer():
    lookup = {FOO: [BAR, BAZ], BAR: [BAZ], BAZ: [TUX], TUX: []}
    assert graph_segment(FOO, lookup) == {FOO: {BAR: {BAZ: {TUX: {}}}, BAZ: {TUX: {}}}}


def test_graph_popularity_contest():
    tree = {"foo": {"bar": {"baz": {"tux": {}}}, "baz": {"tux": {}}}}
    assert graph_popularity_contest(tree) == {"foo": 1, "bar": 2, "baz": 4, "tux": 6}
    assert popularity_order({"foo": ["bar", "baz"], "bar": ["baz"], "baz": ["tux"]}) == [
        "tux", "baz", "bar", "foo"]


def test_order_by_popularity_breaks_ties_by_package_name():
    assert order_by_popularity({"foo": 1, "bar": 1, "baz": 2, "tux": 2}) == [
        "baz", "tux", "bar", "foo"]
    assert package_name("/nix/store/zzz-hello-1.0") == "hello-1.0-/nix/store/zzz"
    # By path, the hashes would decide; by package_name, the names do.
    assert order_by_popularity({"/nix/store/b-aa": 1, "/nix/store/a-zz": 1}) == [
        "/nix/store/b-aa", "/nix/store/a-zz"]
    # Strata's own keys tie by the key itself, store paths by package_name (zz-/nix/...).
    assert order_by_popularity({"/nix/store/a-zz": 1, "app:x-y": 1, "debian:z": 1}) == [
        "app:x-y", "debian:z", "/nix/store/a-zz"]


def test_split_layers_as_the_jq_script():
    paths = ["a", "b", "c", "d"]
    assert split_layers(paths, 3) == [["a"], ["b"], ["c", "d"]]  # more paths than layers
    assert split_layers(paths, 4) == [["a"], ["b"], ["c"], ["d"]]  # as many
    assert split_layers(paths, 5) == [["a"], ["b"], ["c"], ["d"]]  # fewer: no empty layer
    assert split_layers(paths, 1) == [paths]
    assert split_layers([], 3) == []
    graph = {FOO: [BAR, BAZ], BAR: [BAZ], BAZ: [TUX]}
    assert nixpkgs_layer_plan(graph, 3) == [[TUX], [BAZ, BAR, FOO]]


def _random_dag(rng: random.Random, size: int) -> dict:
    names = [f"/nix/store/{rng.randrange(10**6):06d}-{rng.choice('abc')}{i}" for i in range(size)]
    names += [f"{rng.choice('xy')}:{i}" for i in range(size // 4)]  # Pants keys among them
    rng.shuffle(names)
    return {name: [n for n in names[i + 1:] if rng.random() < 0.3]
            for i, name in enumerate(names)}


def test_the_oracle_scores_as_strata_core_does():
    rng = random.Random(18)
    for _ in range(100):
        graph = _random_dag(rng, rng.randrange(1, 14))
        assert nixpkgs_popularity(graph) == popularity(graph)


def test_strata_core_layers_as_nixpkgs_does():
    """Strata's optimised assign_layers, against the plain oracle: the same groups for store
    paths and Pants keys alike (budget = max_layers - 1, the customisation layer's place)."""
    rng = random.Random(1818)
    for _ in range(200):
        graph = _random_dag(rng, rng.randrange(1, 14))
        max_layers = rng.randrange(2, 12)
        expected = [sorted(group) for group in nixpkgs_layer_plan(graph, max_layers)]
        assert assign_layers(graph, max_layers - 1) == expected, graph


# The fixture, built by the host's Nix.


def test_fixture_builds_with_real_references_and_can_be_deleted(tmp_path: Path):
    nix_file = write_fixture(tmp_path, uuid.uuid4().hex[:12])
    hello = nix_build(nix_file, "hello")
    graph = nix_closure_graph([hello])
    try:
        by_name = {path.split("-", 1)[1]: path for path in graph}
        assert sorted(by_name) == sorted(FIXTURE_NAMES.values())
        names = {path: name for name, path in by_name.items()}
        assert {names[p]: sorted(names[r] for r in refs) for p, refs in graph.items()} == {
            "aa-data": [], "zz-data": [], "base": [], "lib": [],
            "tool": ["aa-data", "base", "lib", "zz-data"],
            "hello": ["base", "lib", "tool"],
        }
        # The tie breaks of package_name and of path order disagree (write_fixture's choice).
        assert by_name["lib"] < by_name["base"] and by_name["zz-data"] < by_name["aa-data"]
        assert nixpkgs_layer_plan(graph, 4) == [
            [by_name["base"]], [by_name["lib"]],
            [by_name[n] for n in ("aa-data", "zz-data", "tool", "hello")],
        ]
        ran = subprocess.run([f"{hello}/bin/hello"], capture_output=True, text=True, check=True)
        assert ran.stdout == hello_output(fixture_nonce(nix_file))
    finally:
        delete_fixture(nix_file)
    derivations = out_paths(nix_file, FIXTURE_NAMES, "drvPath").values()
    assert not any(is_valid_path(path) for path in [*graph, *derivations])
