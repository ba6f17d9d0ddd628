"""`nix_closure` on scratch repos, with the host's real Nix: the fixture of
strata_harness.nix (small derivations with real references, a nonce of this run's own) built by
Pants into images that run, whose layers are the ones nixpkgs' dockerTools would make (the plain
oracle `nixpkgs_layer_plan`), whose files are the store's, byte for byte and with Nix's modes,
and whose Nix database `nix-store --verify --check-contents` accepts. Then: the same image from a
second checkout; from a second machine's empty stores through a real REAPI cache; and the errors.

The mixed image's Debian package is strata_harness.debian's (made with `dpkg-deb`), served as
the repo's mirror.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Mapping

import pytest

from strata_harness.debian import PACKAGE, debian_lock, make_deb
from strata_harness import ScratchRepo, assert_valid_image, ran_processes, require_tool
from strata_harness.buildgrid import BuildGrid, start_buildgrid
from strata_harness.images import read_docker_archive
from strata_harness.nix import (
    NIX_SETTINGS,
    delete_fixture,
    delete_store_paths,
    fixture_nonce,
    hello_output,
    is_valid_path,
    nix_build,
    nix_closure_graph,
    nixpkgs_layer_plan,
    out_paths,
    nix_command,
    write_fixture,
)
from strata_harness.sbom import assert_valid_cyclonedx, assert_valid_spdx
from strata_harness.served import serve_directory

STORE = "nix/store/"
DEB_MARKER = "usr/share/strata-demo/VERSION"

ROOT_BUILD = """
nix_closure(name="hello", source="closure.nix", attributes=["hello"], copy_to_root=True)
nix_closure(name="hello_store", source="closure.nix", attributes=["hello"], copy_to_root=False)

oci_image(name="image", dependencies=[":hello"], entrypoint=["/bin/hello"], max_layers=4)
oci_image(name="image_spread", dependencies=[":hello"], entrypoint=["/bin/hello"], max_layers=8)
oci_image(name="image_db", dependencies=[":hello"], entrypoint=["/bin/hello"], max_layers=4,
          include_nix_db=True, output_format="oci")
"""

# A file that depends on the closure (so the Nix roots are referenced by it), a PEX and a Debian
# package: one graph for popularity.
MIXED_BUILD = f"""
file(name="data", source="data.txt", dependencies=["//:hello_store"])
python_sources(name="py")
pex_binary(name="app", entry_point="app.py")
debian_packages(name="deb", packages=["{PACKAGE}"], architectures=["amd64"])

oci_image(name="mixed", dependencies=[":data", ":app", ":deb"], max_layers=5)
oci_image(name="mixed_root", dependencies=["//:hello", ":deb"], entrypoint=["/bin/hello"])
oci_image(name="mixed_spread", dependencies=[":data", ":app", ":deb"], max_layers=12)
"""
MIXED_MARKERS = {"mixed:data": "mixed/data.txt", "mixed:app": "mixed/app.pex",
                 f"debian:{PACKAGE}": DEB_MARKER}


def nix_config(mirror: str | None = None) -> Dict[str, Dict[str, object]]:
    config: Dict[str, Dict[str, object]] = {
        "nix": {"search_paths": [os.path.dirname(require_tool("nix-build"))],
                "settings": NIX_SETTINGS},
    }
    if mirror is not None:
        config["debian"] = {"mirror": mirror}
    return config


def dist_file(repo: ScratchRepo, name: str) -> Path:
    """The one output named `name` under dist/ (a docker-archive .tar or an OCI layout dir)."""
    found = [p for p in (repo.root / "dist").rglob(name)]
    assert len(found) == 1, (name, found)
    return found[0]


def layer_members(archive: Path) -> List[Dict[str, tarfile.TarInfo]]:
    return read_docker_archive(archive)[2]


def store_paths_in(layer: Mapping[str, tarfile.TarInfo]) -> List[str]:
    """The store paths a layer holds: the entries right under nix/store/."""
    return sorted({"/" + STORE + name[len(STORE):].split("/")[0]
                   for name in layer if name.startswith(STORE) and len(name) > len(STORE)})


def layer_nodes(layer: Mapping[str, tarfile.TarInfo], markers: Mapping[str, str]) -> List[str]:
    """A layer's store paths and the Pants nodes whose marker file it holds, sorted."""
    return sorted(store_paths_in(layer) + [key for key, path in markers.items() if path in layer])


def plan(graph: Mapping[str, List[str]], max_layers: int) -> List[List[str]]:
    return [sorted(group) for group in nixpkgs_layer_plan(graph, max_layers)]


def assert_store_content(archive: Path, graph: Mapping[str, List[str]]) -> None:
    """Every store path is in the image exactly as in the host's store (its tree, bytes and
    symlinks), with Nix's modes: directories 0555, files 0444 or 0555; /nix and /nix/store
    0755."""
    seen: Dict[str, tarfile.TarInfo] = {}
    with tarfile.open(archive) as outer:
        manifest = read_docker_archive(archive)[0]
        for layer_name in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer_name)) as layer:
                for member in layer.getmembers():
                    name = member.name.rstrip("/")
                    if name in ("nix", "nix/store"):
                        assert member.isdir() and member.mode == 0o755, (name, oct(member.mode))
                    elif name.startswith(STORE):
                        assert name not in seen, f"{name} is in two layers"
                        seen[name] = member
                        if member.isfile():
                            host = Path("/" + name)
                            assert layer.extractfile(member).read() == host.read_bytes(), name
    expected = {}
    for path in graph:
        rel = path.lstrip("/")
        expected[rel] = Path(path)
        if Path(path).is_dir() and not Path(path).is_symlink():
            for dirpath, dirnames, filenames in os.walk(path):
                for entry in dirnames + filenames:
                    full = Path(dirpath, entry)
                    expected[str(full).lstrip("/")] = full
    assert sorted(seen) == sorted(expected)
    for name, member in seen.items():
        host = expected[name]
        if host.is_symlink():
            assert member.issym() and member.linkname == os.readlink(host), name
        elif host.is_dir():
            assert member.isdir() and member.mode == 0o555, (name, oct(member.mode))
        else:
            executable = os.access(host, os.X_OK)
            assert member.isfile() and member.mode == (0o555 if executable else 0o444), (
                name, oct(member.mode))


@dataclass
class Built:
    """Repo A of this module: every image packaged by one Pants run."""

    repo: ScratchRepo
    files: Dict[str, str | bytes]
    config: Dict[str, Dict[str, object]]
    nonce: str
    hello: str
    graph: Dict[str, List[str]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("nix")
    fixture = write_fixture(tmp, uuid.uuid4().hex[:12])
    nonce = fixture_nonce(fixture)
    mirror = tmp / "mirror"
    files: Dict[str, str | bytes] = {
        "closure.nix": fixture.read_text(),
        "BUILD": ROOT_BUILD,
        "mixed/BUILD": MIXED_BUILD,
        "mixed/data.txt": "data beside the closure\n",
        "mixed/app.py": "print('hello from the pex')\n",
        "mixed/debian.lock.json": debian_lock(make_deb(mirror, "1.0-1")),
    }
    # The mirror stays up for the module: a second checkout reads the same .deb from it.
    with serve_directory(mirror) as url:
        config = nix_config(url)
        repo = ScratchRepo(tmp / "a" / "repo", config=config, isolated_cache=True)
        repo.write(files)
        try:
            repo.run("package", "//:image", "//:image_spread", "//:image_db", "mixed:mixed",
                     "mixed:mixed_spread", "mixed:mixed_root")
            # The paths Pants' nix-build made, as the host's Nix sees them.
            hello = nix_build(fixture, "hello")
            yield Built(repo, files, config, nonce, hello, nix_closure_graph([hello]))
        finally:
            delete_fixture(fixture)


def test_a_nix_closure_image_runs_and_is_layered_as_nixpkgs_would(built: Built, run_image) -> None:
    archive = dist_file(built.repo, "image.tar")
    assert_valid_image(archive)
    assert run_image(archive) == (0, hello_output(built.nonce))

    # max_layers=4: the customisation layer on top, 3 store layers below, as nixpkgs splits
    # them (the fixture's hashes sort against its names: ties go by package_name).
    layers = layer_members(archive)
    assert [store_paths_in(layer) for layer in layers] == plan(built.graph, 4) + [[]]
    assert len(plan(built.graph, 4)[-1]) == 4  # the last store layer holds the overflow
    # The customisation layer: copy_to_root's links, in real directories.
    top = layers[-1]
    assert sorted(top) == ["bin", "bin/hello"]
    assert top["bin"].isdir() and top["bin/hello"].issym()
    assert top["bin/hello"].linkname == f"{built.hello}/bin/hello"
    assert_store_content(archive, built.graph)

    # The SBOM lists each store path (its CycloneDX bom-ref), depending on what it references.
    assert_valid_spdx(dist_file(built.repo, "image.spdx.json"))
    cyclonedx = assert_valid_cyclonedx(dist_file(built.repo, "image.cdx.json"))
    assert {c["bom-ref"] for c in cyclonedx["components"]} >= set(built.graph)
    depends = {d["ref"]: sorted(d.get("dependsOn", [])) for d in cyclonedx["dependencies"]}
    assert {path: depends[path] for path in built.graph} == built.graph

    # max_layers=8: room for each path, so the whole order shows.
    spread = dist_file(built.repo, "image_spread.tar")
    assert_valid_image(spread)
    spread_layers = layer_members(spread)
    assert [store_paths_in(layer) for layer in spread_layers] == plan(built.graph, 8) + [[]]
    assert len(spread_layers) == len(built.graph) + 1
    assert run_image(spread) == (0, hello_output(built.nonce))


def test_the_nix_database_in_the_image_verifies(
    built: Built, tmp_path: Path, run_image
) -> None:
    layout = dist_file(built.repo, "image_db")
    assert_valid_image(layout, "oci", unpack_to=tmp_path / "bundle")
    assert run_image(layout, fmt="oci") == (0, hello_output(built.nonce))
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "nix/var/nix/db/db.sqlite").is_file()
    nix_store = nix_command("nix-store")
    store = ["--store", f"local?root={rootfs}"]

    def in_image(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([nix_store, *store, *args], capture_output=True, text=True)

    verified = in_image("--verify", "--check-contents")
    assert verified.returncode == 0 and "was modified" not in verified.stderr, verified.stderr
    assert sorted(in_image("-q", "--requisites", built.hello).stdout.split()) == sorted(
        built.graph)
    for path, references in built.graph.items():
        listed = in_image("-q", "--references", path).stdout.split()
        assert sorted(r for r in listed if r != path) == references, path

    # The check has teeth: a changed file in the image's store fails it.
    greeting = next(rootfs.glob("nix/store/*-lib")) / "share/greeting"
    greeting.parent.chmod(0o755)
    greeting.chmod(0o644)
    greeting.write_text("tampered\n")
    tampered = in_image("--verify", "--check-contents")
    assert tampered.returncode == 1, tampered.stderr
    assert f"path '/nix/store/{greeting.parent.parent.name}' was modified" in tampered.stderr


def test_a_mixed_image_layers_the_union_graph_by_popularity(built: Built) -> None:
    # The file references the closure's root; the PEX and the package are roots of their own.
    union = {
        **built.graph,
        "mixed:data": [built.hello],
        "mixed:app": [],
        f"debian:{PACKAGE}": [],
    }
    for name, max_layers in (("mixed.tar", 5), ("mixed_spread.tar", 12)):
        archive = dist_file(built.repo, name)
        assert_valid_image(archive)
        layers = layer_members(archive)
        expected = plan(union, max_layers)
        assert [layer_nodes(layer, MIXED_MARKERS) for layer in layers[:-1]] == expected, name
        assert layer_nodes(layers[-1], MIXED_MARKERS) == [], name  # the customisation layer
    assert len(expected) == len(union)


def test_copy_to_root_links_go_under_usr_beside_debian_packages(built: Built, run_image) -> None:
    # Debian packages make /bin a symlink to usr/bin (merged-/usr): the links go where it points.
    archive = dist_file(built.repo, "mixed_root.tar")
    assert_valid_image(archive)
    top = layer_members(archive)[-1]
    assert top["bin"].issym() and top["bin"].linkname == "usr/bin"
    assert top["usr/bin/hello"].issym()
    assert top["usr/bin/hello"].linkname == f"{built.hello}/bin/hello"
    assert run_image(archive) == (0, hello_output(built.nonce))


def test_a_second_checkout_builds_the_same_images(built: Built, tmp_path: Path) -> None:
    # A store of its own: every process runs again (nix-build finds the paths in the store).
    b = ScratchRepo(tmp_path / "b" / "deeper" / "checkout", config=built.config,
                    isolated_cache=True)
    b.write(built.files)
    b.run("package", "//:image", "//:image_db", "mixed:mixed")
    a_digests = built.repo.dist_digests()
    b_digests = b.dist_digests()
    assert b_digests == {name: digest for name, digest in a_digests.items() if name in b_digests}
    assert {"image.tar", "mixed/mixed.tar"} <= set(b_digests), sorted(b_digests)


@pytest.fixture
def buildgrid(tmp_path: Path) -> Iterator[BuildGrid]:
    with start_buildgrid(tmp_path / "buildgrid") as server:
        yield server


def test_a_second_machine_gets_the_image_from_the_remote_cache_without_nix_building(
    tmp_path: Path, buildgrid: BuildGrid, run_image
) -> None:
    fixture = write_fixture(tmp_path, uuid.uuid4().hex[:12])
    files = {"closure.nix": fixture.read_text(), "BUILD": ROOT_BUILD}
    a = ScratchRepo(tmp_path / "a" / "repo", config=nix_config(), isolated_cache=True)
    a.write(files)
    try:
        first = a.run(*buildgrid.pants_args(read=True, write=True), "package", "//:image")
        assert ran_processes(first, "Building //:image: "), first.stderr[-4000:]
        assert "Failed to write to remote cache" not in first.stderr, first.stderr[-8000:]
        graph = nix_closure_graph([nix_build(fixture, "hello")])
    finally:
        # This run's paths only (its nonce): the second machine has none of them.
        delete_fixture(fixture)
    assert len(graph) == 6 and not any(is_valid_path(path) for path in graph)

    b = ScratchRepo(tmp_path / "b" / "elsewhere", config=nix_config(), isolated_cache=True)
    b.write(files)
    second = b.run(*buildgrid.pants_args(read=True, write=False), "package", "//:image")
    assert "Failed to read from remote cache" not in second.stderr, second.stderr[-8000:]
    assert ran_processes(second, "Building //:image") == [], ran_processes(second)
    # Nothing was built by Nix: the paths are still not in the store.
    assert not any(is_valid_path(path) for path in graph), ran_processes(second)
    assert b.dist_digests() == a.dist_digests()
    image = dist_file(b, "image.tar")
    assert_valid_image(image)
    assert run_image(image) == (0, hello_output(fixture_nonce(fixture)))


# Errors: each names the target and field, and nothing is written to dist/.

ERRORS_NIX = """\
let bb = "{busybox}"; in {{
  broken = derivation {{
    name = "broken"; system = builtins.currentSystem; builder = bb;
    args = [ "sh" "-c" "exit 1" ]; nonce = "{nonce}";
  }};
}}
"""


def test_errors_name_the_target_and_field_and_write_nothing(tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex[:12]
    fixture = write_fixture(tmp_path, nonce)
    hello = nix_build(fixture, "hello")
    hello_dir = hello.lstrip("/") + "/bin"
    missing = "/nix/store/" + "0123456789abcdfghijklmnpqrsvwxyz" + "-missing"
    repo = ScratchRepo(tmp_path / "repo", config=nix_config())
    repo.write({
        "closure.nix": fixture.read_text(),
        "BUILD": 'nix_closure(name="hello", source="closure.nix", attributes=["hello"])\n',
        "syntax/bad.nix": "{ hello = ; }\n",
        "syntax/BUILD": textwrap.dedent("""
            nix_closure(name="closure", source="bad.nix", attributes=["hello"])
            oci_image(name="image", dependencies=[":closure"])
        """),
        "failing/fails.nix": ERRORS_NIX.format(busybox=require_tool("busybox"), nonce=nonce),
        "failing/BUILD": textwrap.dedent("""
            nix_closure(name="closure", source="fails.nix", attributes=["broken"])
            oci_image(name="image", dependencies=[":closure"])
        """),
        "missing/BUILD": textwrap.dedent(f"""
            nix_closure(name="closure", store_paths=["{missing}"])
            oci_image(name="image", dependencies=[":closure"])
        """),
        f"{hello_dir}/x": "a file where the closure is\n",
        f"{hello_dir}/BUILD": 'file(name="x", source="x")\n',
        "conflict/BUILD": textwrap.dedent(f"""
            oci_image(name="image", dependencies=["//:hello", "{hello_dir}:x"])
        """),
    })

    def fails(target: str, *fragments: str | tuple, args: tuple = ()) -> None:
        """`package TARGET` fails saying each fragment (a tuple: one of them), whitespace
        folded, and writes no dist/."""
        result = repo.run(*args, "package", target, check=False, pantsd=True)
        stderr = " ".join(result.stderr.split())
        assert result.returncode != 0, stderr[-3000:]
        for fragment in fragments:
            alternatives = fragment if isinstance(fragment, tuple) else (fragment,)
            assert any(a in stderr for a in alternatives), (fragment, stderr[-3000:])
        assert not (repo.root / "dist").exists(), sorted((repo.root / "dist").rglob("*"))
        print(f"{target}: {stderr.split('Exception encountered:', 1)[-1][-1500:]}")

    try:
        # Nix's own message, after the target and the field.
        fails("syntax:image", "syntax:closure", "`source`", "error:", "bad.nix")
        fails("failing:image", "failing:closure", ("`source`", "`attributes`"), "broken",
              "error: builder for", "failed with exit code 1")
        fails("missing:image", "missing:closure", "store_paths", missing)
        fails("conflict:image", f"{hello_dir}:x", hello.split("/")[-1])
        # No Nix where [nix].search_paths says: the message names the missing command.
        fails("syntax:image", "syntax:closure", "nix-build", "/nonexistent",
              args=("--nix-search-paths=['/nonexistent']",))
    finally:
        repo.stop_pantsd()
        delete_fixture(fixture)
        broken = out_paths(repo.root / "failing/fails.nix", ["broken"], "drvPath")["broken"]
        delete_store_paths([broken] if is_valid_path(broken) else [])
