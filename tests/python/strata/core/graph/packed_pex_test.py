from strata.core.graph.packed_pex import split_packed_pex


def test_each_wheel_and_the_bootstrap_become_nodes_and_the_rest_keeps_the_key():
    paths = [
        "app/bin.pex/.bootstrap",
        "app/bin.pex/.deps/six-1.16.0-py2.py3-none-any.whl",
        "app/bin.pex/.deps/attrs-23.1.0-py3-none-any.whl",
        "app/bin.pex/PEX-INFO",
        "app/bin.pex/__main__.py",
        "app/bin.pex/hello/main.py",
    ]
    assert split_packed_pex("app:bin", "app/bin.pex", paths) == {
        "app:bin": ["app/bin.pex/PEX-INFO", "app/bin.pex/__main__.py", "app/bin.pex/hello/main.py"],
        "app:bin#.bootstrap": ["app/bin.pex/.bootstrap"],
        "app:bin#six-1.16.0-py2.py3-none-any.whl": [
            "app/bin.pex/.deps/six-1.16.0-py2.py3-none-any.whl"
        ],
        "app:bin#attrs-23.1.0-py3-none-any.whl": [
            "app/bin.pex/.deps/attrs-23.1.0-py3-none-any.whl"
        ],
    }


def test_unpacked_wheel_directories_are_one_node_each():
    paths = ["bin.pex/.deps/a.whl/a/__init__.py", "bin.pex/.deps/a.whl/a/x.py",
             "bin.pex/.bootstrap/pex/pex.py"]
    assert split_packed_pex("//:bin", "bin.pex/", paths) == {
        "//:bin": [],
        "//:bin#a.whl": ["bin.pex/.deps/a.whl/a/__init__.py", "bin.pex/.deps/a.whl/a/x.py"],
        "//:bin#.bootstrap": ["bin.pex/.bootstrap/pex/pex.py"],
    }


def test_paths_outside_the_pex_and_lookalikes_stay_with_the_key():
    paths = ["other/.deps/x.whl", "bin.pex/.deps/", "bin.pex/.bootstrapper", "bin.pexfile"]
    assert split_packed_pex("//:bin", "bin.pex", paths) == {"//:bin": paths}
