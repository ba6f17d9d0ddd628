"""Real Nix for the tests of `nix_closure`: a fixture of small derivations with real references,
built offline by the host's nix-build, their closure graph as Nix reports it, their deletion
(a "second machine" without them), and an oracle for the layers nixpkgs' dockerTools would make.

Every fixture derivation carries a nonce, so each test run gets store paths of its own, which it
may delete without touching anyone else's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence

from strata_harness.tools import require_tool

# [nix].settings: build offline, as root, without a sandbox or build users.
NIX_SETTINGS = ["sandbox=false", "substituters=", "build-users-group="]
STORE = "/nix/store/"
# The fixture's derivations, by attribute name, and each one's store path name.
FIXTURE_NAMES = {
    "base": "base",
    "lib": "lib",
    "aa": "aa-data",
    "zz": "zz-data",
    "tool": "tool",
    "hello": "hello",
}


def nix_bin() -> str:
    """The directory of Nix's commands (nix-build's), as Strata takes them (`--nix-bin`); no
    Nix skips the test (fails it under CI)."""
    return os.path.dirname(require_tool("nix-build"))


def nix_command(name: str) -> str:
    """A Nix command (nix-build, nix-store, nix-instantiate, ...) from nix_bin()."""
    return os.path.join(nix_bin(), name)


def option_args(settings: Sequence[str] = NIX_SETTINGS) -> List[str]:
    """`--option NAME VALUE` for each "name=value"."""
    args = []
    for setting in settings:
        name, value = setting.split("=", 1)
        args += ["--option", name, value]
    return args


def nix_output(cmd: Sequence[str], timeout: float = 600, text: bool = True):
    """What a Nix command prints (bytes unless `text`, e.g. for `nix-store --dump`); its
    failure fails the test with its stderr."""
    proc = subprocess.run(
        list(cmd), stdin=subprocess.DEVNULL, capture_output=True, text=text, timeout=timeout,
    )
    if proc.returncode != 0:
        stderr = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise AssertionError(f"{' '.join(cmd)}\nexited {proc.returncode}:\n{stderr}")
    return proc.stdout


# The core tests' expressions: `bb`, the host's busybox, builds each derivation, `build NAME
# SCRIPT` running the script with busybox's sh; the nonce in every script makes the store paths
# the test's own.
_BUSYBOX_LETS = r"""
  bb = "/bin/busybox";
  build = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = bb;
    args = [ "sh" "-c" "${script} # ${nonce}" ];
  };
"""


def busybox_expression(nonce: str, body: str, lets: str = "") -> str:
    """A Nix expression `let nonce; bb; build; <lets> in <body>` (see _BUSYBOX_LETS): `lets`
    are more bindings (indented lines), `body` what follows `in`."""
    return f'let\n  nonce = "{nonce}";{_BUSYBOX_LETS}{lets}in {body}'


def nix_fixture(nonce: str) -> str:
    """closure.nix: `base` (a static busybox, bin/sh linking to it), `lib` (a data file), `aa`
    and `zz` (data files named "aa-data" and "zz-data", referenced equally: by `tool` only),
    `tool` (a script run by base's sh that mentions lib, aa and zz) and `hello` (prints a line
    with lib's file and tool's output). Graph: hello -> base, lib, tool; tool -> base, lib, aa,
    zz. The host's static busybox is the builder and base's content.
    """
    bb = require_tool("busybox")
    return f"""\
let
  bb = "{bb}";
  mk = name: script: derivation {{
    inherit name;
    system = builtins.currentSystem;
    builder = bb;
    args = [ "sh" "-e" "-c" script ];
    nonce = "{nonce}";
  }};
in rec {{
  base = mk "base" ''
    ${{bb}} mkdir -p $out/bin
    ${{bb}} cp ${{bb}} $out/bin/busybox
    ${{bb}} chmod 0755 $out/bin/busybox
    ${{bb}} ln -s busybox $out/bin/sh
  '';
  lib = mk "lib" ''
    ${{bb}} mkdir -p $out/share
    ${{bb}} echo "greetings from lib" > $out/share/greeting
  '';
  aa = mk "aa-data" ''
    ${{bb}} echo "aa data" > $out
  '';
  zz = mk "zz-data" ''
    ${{bb}} echo "zz data" > $out
  '';
  tool = mk "tool" ''
    ${{bb}} mkdir -p $out/bin
    ${{bb}} cat > $out/bin/tool <<EOF
    #!${{base}}/bin/sh
    # reads ${{lib}}/share/greeting
    ${{base}}/bin/busybox cat ${{aa}} ${{zz}} | ${{base}}/bin/busybox tr '\\n' ' '
    EOF
    ${{bb}} chmod 0755 $out/bin/tool
  '';
  hello = mk "hello" ''
    ${{bb}} mkdir -p $out/bin
    ${{bb}} cat > $out/bin/hello <<EOF
    #!${{base}}/bin/sh
    echo "Hello from Nix {nonce}: \\$(${{base}}/bin/busybox cat ${{lib}}/share/greeting), \\$(${{tool}}/bin/tool)"
    EOF
    ${{bb}} chmod 0755 $out/bin/hello
  '';
}}
"""


def hello_output(nonce: str) -> str:
    """What the fixture's bin/hello prints."""
    return f"Hello from Nix {nonce}: greetings from lib, aa data zz data \n"


def nix_build(nix_file: str | os.PathLike[str], attr: str) -> str:
    """Builds one attribute offline (no out-link); its store path."""
    out = nix_output([nix_command("nix-build"), str(nix_file), "-A", attr, "--no-out-link",
                      *option_args()])
    (path,) = out.split()
    return path


def out_paths(
    nix_file: str | os.PathLike[str], attrs: Iterable[str], which: str = "outPath"
) -> Dict[str, str]:
    """Each attribute's output path (or `drvPath`), by evaluation only (nothing is built)."""
    paths = {}
    for attr in attrs:
        out = nix_output([nix_command("nix-instantiate"), "--eval", "--strict", "-E",
                          f"(import {Path(nix_file).absolute()}).{attr}.{which}"])
        paths[attr] = out.strip().strip('"')
    return paths


def package_name(path: str) -> str:
    """closure-graph.py's tie key: a store path's "/nix/store/<hash>" part moved to the end."""
    parts = path.split("-")
    return "-".join(parts[1:] + parts[:1])


def write_fixture(directory: str | os.PathLike[str], nonce: str) -> Path:
    """closure.nix for `nonce` in `directory`, with a nonce suffix chosen so that the tie breaks
    of package_name and of plain path order disagree (lib's hash sorts before base's, zz-data's
    before aa-data's): a layering that sorted ties by path would put them the other way."""
    path = Path(directory) / "closure.nix"
    for attempt in range(200):
        path.write_text(nix_fixture(f"{nonce}-{attempt}"))
        paths = out_paths(path, ["base", "lib", "aa", "zz"])
        if paths["lib"] < paths["base"] and paths["zz"] < paths["aa"]:
            return path
    raise AssertionError("no nonce gave store paths whose hash order disagrees with their names")


def fixture_nonce(nix_file: str | os.PathLike[str]) -> str:
    """The nonce a fixture written by write_fixture carries."""
    text = Path(nix_file).read_text()
    return text.split('nonce = "', 1)[1].split('"', 1)[0]


def nix_closure_graph(paths: Iterable[str]) -> Dict[str, List[str]]:
    """The closure of `paths`: each store path -> its references (sorted, itself left out), as
    `nix-store -q --requisites` and `--references` report them."""
    nix_store = nix_command("nix-store")
    closure = nix_output([nix_store, "-q", "--requisites", *paths]).split()
    return {
        path: sorted(ref for ref in nix_output([nix_store, "-q", "--references", path]).split()
                     if ref != path)
        for path in sorted(closure)
    }


def delete_store_paths(paths: Iterable[str]) -> None:
    """Deletes store paths (`nix-store --delete`, which refuses a path something still needs)."""
    paths = list(paths)
    if paths:
        nix_output([nix_command("nix-store"), "--delete", *paths])


def delete_fixture(nix_file: str | os.PathLike[str]) -> None:
    """Deletes whatever of a fixture's outputs and derivations the store holds (its nonce
    makes them its own)."""
    for which in ("outPath", "drvPath"):
        paths = out_paths(nix_file, FIXTURE_NAMES, which).values()
        delete_store_paths(path for path in paths if is_valid_path(path))


def is_valid_path(path: str) -> bool:
    """Whether the host's Nix store holds `path` (`nix-store --check-validity`)."""
    proc = subprocess.run(
        [nix_command("nix-store"), "--check-validity", path], stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return proc.returncode == 0 and os.path.lexists(path)


# --- nixpkgs' layering, restated plainly: the oracle for Strata's optimised version ---


def tie_key(key: str) -> str:
    """closure-graph.py sorts ties by package_name; Strata's own (non-Nix) node keys tie by the
    key itself."""
    return package_name(key) if key.startswith(STORE) else key


def _lookup(graph: Mapping[str, Iterable[str]]) -> Dict[str, List[str]]:
    """closure-graph.py's make_lookup: each path's references without itself; paths that are
    only referenced get an entry too."""
    lookup = {path: [ref for ref in refs if ref != path] for path, refs in graph.items()}
    for refs in list(lookup.values()):
        for ref in refs:
            lookup.setdefault(ref, [])
    return lookup


def find_roots(graph: Mapping[str, Iterable[str]]) -> List[str]:
    """The paths no other path references."""
    lookup = _lookup(graph)
    return [path for path in lookup
            if not any(path in refs for other, refs in lookup.items() if other != path)]


def graph_segment(root: str, lookup: Mapping[str, List[str]]) -> dict:
    """make_graph_segment_from_root: {root: {child: {grandchild: ...}, ...}}, a tree in which
    a path reachable several ways appears once under each of its referrers."""
    children: dict = {}
    for ref in lookup[root]:
        children.update(graph_segment(ref, lookup))
    return {root: children}


def graph_popularity_contest(tree: Mapping[str, Mapping]) -> Dict[str, int]:
    """Each path in the tree scores 1 for each time it is a child of the tree's level, plus
    (score + 1) for each score it has in the contest of a subtree below."""
    popularity: Dict[str, int] = {}
    for path, subtree in tree.items():
        popularity[path] = popularity.get(path, 0) + 1
        for sub_path, sub_popularity in graph_popularity_contest(subtree).items():
            popularity[sub_path] = popularity.get(sub_path, 0) + sub_popularity + 1
    return popularity


def order_by_popularity(popularity: Mapping[str, int]) -> List[str]:
    """Most popular first; equal popularity by ascending tie_key."""
    ordered: List[str] = []
    for score in sorted(set(popularity.values()), reverse=True):
        ordered.extend(sorted((p for p, s in popularity.items() if s == score), key=tie_key))
    return ordered


def nixpkgs_popularity(graph: Mapping[str, Iterable[str]]) -> Dict[str, int]:
    """The contest over the tree of segments from every root (make_graph_segment_from_roots)."""
    lookup = _lookup(graph)
    tree: dict = {}
    for root in find_roots(graph):
        tree.update(graph_segment(root, lookup))
    return graph_popularity_contest(tree)


def popularity_order(graph: Mapping[str, Iterable[str]]) -> List[str]:
    """closure-graph.py's output for the graph: every path, most popular first (paths in no
    tree, i.e. only in a cycle, last, as its `missing`)."""
    ordered = order_by_popularity(nixpkgs_popularity(graph))
    return ordered + [path for path in _lookup(graph) if path not in ordered]


def split_layers(paths: Sequence[str], available_layers: int) -> List[List[str]]:
    """streamLayeredImage's jq: `(.[:n-1] | map([.])) + [ .[n-1:] ] | map(select(length > 0))`
    (jq's `.[:-1]` for n = 0 is all but the last path)."""
    paths = list(paths)
    head, tail = paths[:available_layers - 1], paths[available_layers - 1:]
    return [group for group in [[path] for path in head] + [tail] if group]


def nixpkgs_layer_plan(graph: Mapping[str, Iterable[str]], max_layers: int) -> List[List[str]]:
    """The store layers streamLayeredImage makes of the graph, bottom first: one layer is the
    customisation layer (usedLayers = 1, no base image), so availableLayers = max_layers - 1.

    nixpkgs counts popularity over a closure whose roots sit under the customisation layer and
    the closure file; for the image's roots that only adds the same amount to every score."""
    available_layers = max_layers - 1
    if available_layers < 1:
        raise ValueError(f"max_layers {max_layers} leaves no layer for the store paths")
    return split_layers(popularity_order(graph), available_layers)
