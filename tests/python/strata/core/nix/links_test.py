"""`copy_to_root` links, as buildEnv/symlinkJoin makes them: real directories shared between
top-level paths, one symlink per file or symlink, a collision an error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from strata.core.cli import main
from strata.core.errors import InvalidInput
from strata.core.nix.links import resolve_in_closure, root_links
from strata_harness.nix import busybox_expression, nix_bin, nix_build, option_args


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
    links = root_links([hello, tools], ["bin", "lib", "etc", "share"], {hello, tools})
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
    assert root_links([pkg], ["bin", "share"], {pkg, other}) == [
        ("bin/x", f"{pkg}/bin/x"),
        ("share/doc", f"{pkg}/share/doc"),
    ]


def test_two_paths_providing_one_file_collide(tmp_path: Path) -> None:
    one = tree(tmp_path / "eee-one", {"bin/sh": "1"})
    two = tree(tmp_path / "fff-two", {"bin/sh": "2"})
    with pytest.raises(InvalidInput, match=r"/bin/sh would link to both .*eee-one/bin/sh and "
                       r".*fff-two/bin/sh"):
        root_links([one, two], ["bin"], {one, two})


def test_a_file_where_another_path_has_a_directory_collides(tmp_path: Path) -> None:
    one = tree(tmp_path / "ggg-one", {"share/x": "file"})
    two = tree(tmp_path / "hhh-two", {"share/x/y": "in a directory"})
    with pytest.raises(InvalidInput, match=r"/share/x would link to both"):
        root_links([one, two], ["share"], {one, two})


def test_a_store_path_that_is_a_file_links_nothing(tmp_path: Path) -> None:
    (tmp_path / "iii-script.sh").write_text("echo")
    script = str(tmp_path / "iii-script.sh")
    assert root_links([script], ["bin"], {script}) == []



def test_symlinks_resolve_inside_the_closure_only(tmp_path: Path) -> None:
    lib = tree(tmp_path / "jjj-lib", {"share/data": "d"})
    pkg = tree(tmp_path / "kkk-pkg", {
        "share": f"->{lib}/share", "up": "->../jjj-lib/share/data", "out": "->../../..",
        "loop": "->loop", "gone": "->nothing",
    })
    closure = {lib, pkg}
    assert resolve_in_closure(f"{pkg}/share/data", closure) == f"{lib}/share/data"
    assert resolve_in_closure(f"{pkg}/up", closure) == f"{lib}/share/data"
    assert resolve_in_closure(f"{pkg}/share", {pkg}) is None  # lib is not in this closure
    assert resolve_in_closure(f"{pkg}/out", closure) is None
    assert resolve_in_closure(f"{pkg}/loop", closure) is None
    assert resolve_in_closure(f"{pkg}/gone", closure) is None


# A derivation whose paths_to_link leave its closure, each its own way: `etc` to the build
# machine's /etc, `share` to a store path the closure lacks (`outside`, built first, its path
# written without its string context, so that Nix records no reference), `lib` up out of the
# store by a relative path; and `bin` to a store path of the closure, which is walked.
ESCAPES = busybox_expression("strata-links-test-1", body=r"""rec {
  outside = build "strata-links-outside" "${bb} mkdir -p $out/share/secret && ${bb} echo s > $out/share/secret/key";
  inside = build "strata-links-inside" "${bb} mkdir -p $out/bin && ${bb} echo t > $out/bin/tool";
  escapes = build "strata-links-escapes" ''
    ${bb} mkdir $out
    ${bb} ln -s /etc $out/etc
    ${bb} ln -s ${builtins.unsafeDiscardStringContext "${outside}"}/share $out/share
    ${bb} ln -s ../../../usr/lib $out/lib
    ${bb} ln -s ${inside}/bin $out/bin
  '';
  to-root = build "strata-links-to-root" "${bb} ln -s / $out";
}
""")


@pytest.fixture()
def escapes(tmp_path) -> Path:
    nix_bin()  # no Nix skips the test (fails it under CI) before it writes anything
    (tmp_path / "escapes.nix").write_text(ESCAPES)
    nix_build(tmp_path / "escapes.nix", "outside")
    return tmp_path / "escapes.nix"


def nix_links(expression: Path, attr: str) -> list:
    """`nix-closure` of the attribute, then `nix-links` of bin, etc, lib and share."""
    closure, links = expression.parent / "closure.json", expression.parent / "links.json"
    assert main(["nix-closure", "--nix-bin", nix_bin(), *option_args(), "--file",
                 str(expression), "--attr", attr, "--out", str(closure)]) == 0
    assert main(["nix-links", "--closure", str(closure), "--link", "bin", "--link", "etc",
                 "--link", "lib", "--link", "share", "--out", str(links)]) == 0
    return [tuple(link) for link in json.loads(links.read_text())]


def test_a_symlink_leaving_the_closure_is_one_link_never_walked(escapes: Path) -> None:
    escaping = nix_build(escapes, "escapes")
    assert nix_links(escapes, "escapes") == [
        ("bin/tool", f"{escaping}/bin/tool"),
        ("etc", f"{escaping}/etc"),
        ("lib", f"{escaping}/lib"),
        ("share", f"{escaping}/share"),
    ]


def test_a_store_path_linking_out_of_the_closure_links_nothing(escapes: Path) -> None:
    assert nix_links(escapes, "to-root") == []
