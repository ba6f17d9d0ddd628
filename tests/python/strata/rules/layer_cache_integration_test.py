"""A layer's cache key holds only layer code: an edit to the core that writing a layer does not
run (the SBOM spec's types, a non-layer subcommand's row of the command line, a registry
module) reruns none of the demo's layer Processes, though it does rebuild the image (the
assembly runs again: the edit reached the Processes that do run it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from strata_harness import ScratchRepo, assert_valid_image, ran_processes
from strata_harness.demo import demo_repo

LAYER = "Building app:image: "
ASSEMBLY = "Assembling app:image"
CORE = "pants-plugins/strata/core"


def package(repo: ScratchRepo, what: str) -> tuple[list[str], list[str]]:
    """`package //app:image`: the layer Processes and the assemblies that ran (not cache hits)."""
    result = repo.run("package", "//app:image")
    layers, assemblies = ran_processes(result, LAYER), ran_processes(result, ASSEMBLY)
    print(f"{what}: {len(layers)} layer processes ran, assembly ran: {bool(assemblies)}")
    return layers, assemblies


def module_defining(repo: ScratchRepo, name: str) -> str:
    """The core module that defines `name` (wherever it lives now), relative to the core."""
    core = repo.root / CORE
    found = [path for path in core.rglob("*.py") if f"\n{name}" in path.read_text()]
    assert len(found) == 1, f"{name} is defined in {found}: update this test"
    return found[0].relative_to(core).as_posix()


def edit(repo: ScratchRepo, rel: str, old: str, new: str) -> None:
    path = repo.root / CORE / rel
    text = path.read_text()
    assert old in text, f"{rel} no longer holds {old!r}: update this test's edit"
    path.write_text(text.replace(old, new, 1))


def image_digest(repo: ScratchRepo) -> str:
    return hashlib.sha256((repo.root / "dist/app/image.tar").read_bytes()).hexdigest()


def test_edits_to_non_layer_core_code_rerun_no_layer_process(tmp_path: Path, run_image) -> None:
    repo = demo_repo(tmp_path / "repo", isolated_cache=True)
    layers, _ = package(repo, "cold")
    assert len(layers) >= 40, layers
    cold = image_digest(repo)

    sbom_types = module_defining(repo, "class SbomSpec(")
    edits = {
        # An SBOM-only change (as 7663d28 was: a field of the SBOM spec's types).
        "the SBOM spec's types": (
            sbom_types, "class SbomSpec(", "SBOM_EDITED = True\n\n\nclass SbomSpec("
        ),
        # A new subcommand row (as 69e72a5's Nix rows were).
        "a non-layer row of the command line": (
            "cli.py",
            "COMMANDS = {\n",
            'COMMANDS = {\n    "edited": Command("strata.core.oci.bundle:bundle_command", '
            '"--out FILE"),\n',
        ),
        "a registry module": (
            "registry/push_policy.py", '"""', '"""Edited by the layer cache test.\n\n'
        ),
    }
    for what, (rel, old, new) in edits.items():
        edit(repo, rel, old, new)
        layers, assemblies = package(repo, f"after editing {what} ({rel})")
        assert assemblies == [ASSEMBLY], f"editing {what} rebuilt nothing: is it still core code?"
        assert layers == [], f"editing {what} reran {len(layers)} layer processes: {layers[:3]}"
        assert image_digest(repo) == cold, f"editing {what} changed the image's bytes"
    image = repo.root / "dist/app/image.tar"
    assert_valid_image(image)
    assert run_image(image, ["Ada"]) == (0, "Hello from Strata, Ada! (layers dated 1970-01-01)\n")
