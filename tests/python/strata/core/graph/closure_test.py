import pytest

from strata.core.graph.closure import PathConflict, check_paths, project_references, reach


def test_reach_stops_at_leaves_but_includes_them():
    # a package (pkg) is reached, what it is built from (src) is not
    edges = {"image": ["pkg", "file"], "pkg": ["src"], "file": ["data"], "src": [], "data": []}
    assert reach(edges, "image", stop=lambda a: a == "pkg") == {"image", "pkg", "file", "data"}


def test_reach_terminates_on_cycles_and_tolerates_unknown_targets():
    edges = {"a": ["b"], "b": ["a", "c"]}  # c has no entry
    assert reach(edges, "a", stop=lambda a: False) == {"a", "b", "c"}
    assert reach(edges, "c", stop=lambda a: False) == {"c"}


def test_references_pass_through_metadata_targets():
    # image deps: bin (package) -> lib (python source, no node) -> data (resource node)
    edges = {"bin": ["lib"], "lib": ["data", "req"], "req": [], "data": []}
    node_of = {"bin": "bin", "lib": None, "req": None, "data": "data"}
    assert project_references(edges, node_of) == {"bin": {"data"}, "data": set()}


def test_members_of_one_node_do_not_reference_themselves():
    edges = {"a": ["b"], "b": ["a", "c"], "c": []}
    node_of = {"a": "group", "b": "group", "c": "c"}
    assert project_references(edges, node_of) == {"group": {"c"}, "c": set()}


def test_cycles_through_metadata_targets_terminate():
    edges = {"a": ["m1"], "m1": ["m2"], "m2": ["m1", "b"], "b": ["m2"]}
    node_of = {"a": "a", "m1": None, "m2": None, "b": "b"}
    assert project_references(edges, node_of) == {"a": {"b"}, "b": set()}


def test_identical_files_from_two_nodes_are_fine():
    check_paths([("//:a", "etc/motd", "d1:0"), ("//:b", "etc/motd", "d1:0")])


def test_different_content_at_one_path_names_both_nodes_and_the_path():
    with pytest.raises(PathConflict, match=r"//:a and //:b both place different content at /etc/motd"):
        check_paths([("//:a", "etc/motd", "d1:0"), ("//:b", "etc/motd", "d2:0")])


def test_executable_bit_difference_is_a_conflict():
    with pytest.raises(PathConflict):
        check_paths([("//:a", "bin/x", "d1:0"), ("//:b", "bin/x", "d1:1")])


def test_file_where_another_node_needs_a_directory():
    with pytest.raises(PathConflict, match=r"//:a places a file at /opt, where //:b needs a directory"):
        check_paths([("//:a", "opt", "d1:0"), ("//:b", "opt/tool", "d2:1")])


def test_file_where_an_empty_directory_is_declared():
    with pytest.raises(PathConflict):
        check_paths([("//:a", "var/empty", "d1:0")], [("//:b", "var/empty")])


STORE_PATH = "nix/store/" + "a" * 32 + "-hello-2.12"


def test_nothing_may_be_placed_inside_a_path_another_node_owns_whole():
    owned = [("/" + STORE_PATH, STORE_PATH)]
    with pytest.raises(PathConflict, match=f"app:x places /{STORE_PATH}/bin/x inside "
                       f"/{STORE_PATH}, which Nix owns whole"):
        check_paths([("app:x", f"{STORE_PATH}/bin/x", "1:0")], subtrees=owned)
    with pytest.raises(PathConflict, match=f"app:d places /{STORE_PATH} inside"):
        check_paths([], [("app:d", STORE_PATH)], subtrees=owned)


def test_beside_an_owned_path_and_above_it_is_fine():
    owned = [("/" + STORE_PATH, STORE_PATH)]
    check_paths([("app:x", f"{STORE_PATH}-other/bin/x", "1:0")], [("app:d", "nix/store")],
                subtrees=owned)
