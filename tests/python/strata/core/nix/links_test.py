"""`copy_to_root` links, as buildEnv/symlinkJoin makes them: real directories shared between
top-level paths, one symlink per file or symlink, a collision an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.core.errors import InvalidInput
from strata.core.nix.links import root_links


def tree(root: Path, files: dict[str, str]) -> str:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith("->"):
            os.symlink(content[2:], target)
        else:
            target.write_text(content)
    return str(root)


def test_files_and_symlinks_are_linked_in_real_directories(tmp_path: Path) -> None:
    hello = tree(tmp_path / "aaa-hello", {
        "bin/hello": "x", "bin/hi": "->hello", "share/man/man1/hello.1": "m",
        "lib/libhello.so": "so", "include/hello.h": "not linked",
    })
    tools = tree(tmp_path / "bbb-tools", {"bin/tool": "t", "share/man/man1/tool.1": "m"})
    links = root_links([hello, tools], ["bin", "lib", "etc", "share"])
    assert links == [
        ("bin/hello", f"{hello}/bin/hello"),
        ("bin/hi", f"{hello}/bin/hi"),
        ("bin/tool", f"{tools}/bin/tool"),
        ("lib/libhello.so", f"{hello}/lib/libhello.so"),
        ("share/man/man1/hello.1", f"{hello}/share/man/man1/hello.1"),
        ("share/man/man1/tool.1", f"{tools}/share/man/man1/tool.1"),
    ]


def test_a_symlinked_directory_is_one_link(tmp_path: Path) -> None:
    other = tree(tmp_path / "ccc-data", {"share/doc/readme": "r"})
    pkg = tree(tmp_path / "ddd-pkg", {"share/doc": f"->{other}/share/doc", "bin/x": "x"})
    assert root_links([pkg], ["bin", "share"]) == [
        ("bin/x", f"{pkg}/bin/x"),
        ("share/doc", f"{pkg}/share/doc"),
    ]


def test_two_paths_providing_one_file_collide(tmp_path: Path) -> None:
    one = tree(tmp_path / "eee-one", {"bin/sh": "1"})
    two = tree(tmp_path / "fff-two", {"bin/sh": "2"})
    with pytest.raises(InvalidInput, match=r"/bin/sh would link to both .*eee-one/bin/sh and "
                       r".*fff-two/bin/sh"):
        root_links([one, two], ["bin"])


def test_a_file_where_another_path_has_a_directory_collides(tmp_path: Path) -> None:
    one = tree(tmp_path / "ggg-one", {"share/x": "file"})
    two = tree(tmp_path / "hhh-two", {"share/x/y": "in a directory"})
    with pytest.raises(InvalidInput, match=r"/share/x would link to both"):
        root_links([one, two], ["share"])


def test_a_store_path_that_is_a_file_links_nothing(tmp_path: Path) -> None:
    (tmp_path / "iii-script.sh").write_text("echo")
    assert root_links([str(tmp_path / "iii-script.sh")], ["bin"]) == []
