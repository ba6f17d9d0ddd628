"""The benchmark's end-to-end rows: the synthetic tree imaged through Pants, then published.

A scratch Pants repo (tests/python/strata_harness: the plugin from --src, the main repo's
pants.toml settings, a local store of its own) holds the tree as NODES `files` targets, with
dependencies between them, and one `oci_image` of them all. Timed with the wall clock of the `pants`
client: a cold `package` (empty local store, no pantsd), a no-op rebuild with pantsd warm, a
rebuild after one file changes (counting the layer processes that ran), then `publish` to a
docker-registry on 127.0.0.1, twice, reading the bytes each push uploaded from its report.
"""

import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

NODES = 10
REPOSITORY = "bench/tree"
NOOP_REPS = 3
PANTSD_MEMORY = "8GiB"


def _harness(src: Path, harness_roots: List[Path]):
    """Imports strata_harness with `src` first on sys.path (scratch repos copy the plugin from
    wherever `strata` is imported)."""
    for root in [src, *harness_roots]:
        if str(root) not in sys.path:
            sys.path.insert(0 if root == src else len(sys.path), str(root))
    import strata_harness

    return strata_harness


def _groups(tree: Path) -> List[List[str]]:
    """The tree's top-level entries dealt round-robin into NODES groups, by name."""
    children = sorted(child.name for child in tree.iterdir())
    return [children[index::NODES] for index in range(NODES)]


def _build_file(tree: Path, groups: List[List[str]], registry_host: str) -> str:
    """Each node is a `files` target (directories as recursive globs) behind a plain `target`
    that carries its dependencies: node0 is everybody's (the popular base layer), node1..node4
    form a chain, and the image depends on every node. Dependencies sit on the `target`s, not on
    the `files` generators, because a dependency on a generator is one on each file it generates,
    from each file that inherits it: thousands of files times thousands of edges."""
    lines = []
    for index, group in enumerate(groups):
        sources = [f"tree/{name}/**/*" if (tree / name).is_dir() else f"tree/{name}"
                   for name in group]
        deps = [f":node{index}-files"] + ([] if index == 0 else [":node0"])
        if 1 <= index < 4:
            deps.append(f":node{index + 1}")
        lines.append(f"files(name='node{index}-files', sources={sources!r})")
        lines.append(f"target(name='node{index}', dependencies={deps!r})")
    nodes = [f":node{index}" for index in range(len(groups))]
    lines.append(f"oci_image(name='image', dependencies={nodes!r}, "
                 f"repository={REPOSITORY!r}, registries={[registry_host]!r}, "
                 "image_tags=['v1'])")
    return "\n".join(lines) + "\n"


def _copy_tree(source: Path, dest: Path) -> None:
    """Hard links of the tree's files (Pants snapshots cannot hold the dangling or absolute
    symlinks a tree may have, so symlinks are left out)."""
    def ignore_symlinks(directory: str, names: List[str]) -> List[str]:
        return [name for name in names if os.path.islink(os.path.join(directory, name))]

    shutil.copytree(source, dest, symlinks=True, ignore=ignore_symlinks, copy_function=os.link)


def _first_file(tree: Path, group: List[str]) -> Path:
    for name in group:
        path = tree / name
        if path.is_file():
            return path
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            return found
    raise RuntimeError("bench: a node holds no file to change")


def _timed(run, *args, **kwargs):
    start = time.perf_counter()
    result = run(*args, **kwargs)
    return time.perf_counter() - start, result


def run_pants_bench(tree: Path, work: Path, src: Path, harness_roots: List[Path],
                    baseline_seconds: float, log) -> Dict[str, object]:
    """The end-to-end figures; raises the harness's Unavailable (or a pytest outcome, under
    pytest) when Pants or docker-registry is missing."""
    harness = _harness(src, harness_roots)
    registry = harness.start_registry(work / "registry")
    repo = None
    try:
        # pantsd restarts when it grows past 4 GiB (its default limit), dropping its memoised
        # graph: the 20,000-file default tree comes close to that.
        repo = harness.ScratchRepo(work / "pants-repo", isolated_cache=True,
                                   config={"GLOBAL": {"pantsd_max_memory_usage": PANTSD_MEMORY}})
        _copy_tree(tree, repo.root / "tree")
        groups = _groups(repo.root / "tree")
        (repo.root / "BUILD").write_text(_build_file(repo.root / "tree", groups, registry.host),
                                         encoding="utf-8")
        target = "//:image"

        log(f"pants: cold package of {target} ({NODES} nodes, empty local store, no pantsd) ...")
        cold_seconds, cold = _timed(repo.run, "package", target)
        cold_layers = harness.ran_processes(cold, "Building //:image: layer ")

        log("pants: starting pantsd, then no-op rebuilds ...")
        repo.run("package", target, pantsd=True)
        noop_runs = [_timed(repo.run, "package", target, pantsd=True) for _ in range(NOOP_REPS)]
        noop_processes = sorted({p for _, run in noop_runs for p in harness.ran_processes(run)})
        pantsd_rss_mb = repo.pantsd_rss_mb()

        changed = _first_file(repo.root / "tree", groups[3])
        log(f"pants: rebuild after changing {changed.relative_to(repo.root)} ...")
        replacement = changed.with_name(changed.name + ".bench-new")
        replacement.write_bytes(changed.read_bytes() + b"\nchanged by the benchmark\n")
        os.replace(replacement, changed)  # a new inode: the hard-linked original is untouched
        time.sleep(1)  # let pantsd's watcher see it
        change_seconds, change = _timed(repo.run, "package", target, pantsd=True)
        change_layers = harness.ran_processes(change, "Building //:image: layer ")

        log(f"pants: publish to {registry.host}, twice ...")
        pushes = []
        for _ in range(2):
            seconds, run = _timed(repo.run, "publish", target, pantsd=True)
            report = harness.pushes(run.stdout).get(f"{registry.host}/{REPOSITORY}")
            if report is None:
                raise RuntimeError(f"bench: no push report in `pants publish`:\n{run.stdout}")
            pushes.append({"seconds": seconds, "blobs_uploaded": report.uploaded,
                           "bytes_uploaded": report.uploaded_bytes,
                           "blobs_mounted": report.mounted, "blobs_present": report.present})
    finally:
        if repo is not None:
            repo.stop_pantsd()
        registry.stop()

    noop = [seconds for seconds, _ in noop_runs]
    return {
        "nodes": NODES,
        "cold_package": {"seconds": cold_seconds, "layer_processes": len(cold_layers),
                         "ratio_to_baseline": cold_seconds / baseline_seconds},
        "noop_package": {"seconds": {"median": statistics.median(noop), "min": min(noop),
                                     "max": max(noop)},
                         "runs": len(noop), "processes": noop_processes,
                         "pantsd_rss_mb": pantsd_rss_mb},
        "one_file_change": {"seconds": change_seconds, "changed": str(changed.relative_to(
                            repo.root)), "layer_processes": change_layers},
        "publish": {"first": pushes[0], "second": pushes[1]},
    }
