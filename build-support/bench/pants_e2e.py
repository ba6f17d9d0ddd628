"""The benchmark's end-to-end rows: the synthetic tree imaged through Pants, then run and published.

A scratch Pants repo (tests/python/strata_harness: the plugin from --src, the main repo's
pants.toml settings, a local store of its own) holds the tree as NODES `files` targets, with
dependencies between them, and two `oci_image`s of them all: `//:image` (docker-archive, the one
run and published) and `//:image-oci` (an OCI layout). Timed with the wall clock of the `pants`
client: a cold `package` (empty local store, no pantsd), a no-op rebuild with pantsd warm,
rebuilds after changing one file in every node, one in the largest node and one in the smallest
(per output format, with the layer Processes that ran and the bytes pantsd and its processes
wrote), `pants run` into podman's private storage, and `publish` to a docker-registry on
127.0.0.1, reading the blobs and bytes each push uploaded from its report. Beside them, in the
same run on the same files: nixpkgs' stream_layered_image.py (the seed baseline) and the demo
app's //app:image after a one-line change.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

NODES = 10
REPOSITORY = "bench/tree"
NOOP_REPS = 3
PANTSD_MEMORY = "8GiB"
# output_format -> the oci_image that writes it; the docker-archive one is run and published.
IMAGES = {"docker-archive": "image", "oci": "image-oci"}
SEED_SCRIPT = "stream_layered_image.py"
# The `run` row measures loading into podman's storage: the bench image has no entrypoint.
_LOAD = ("--strata-loader=podman", "--strata-load-only", "run")
# output_format -> the demo's oci_image that writes it (app/BUILD: one image, two formats).
DEMO_TARGETS = {"docker-archive": "//app:image", "oci": "//app:image-layout"}
DEMO_CHANGED = "app/hello/main.py"
# The counters of /proc/<pid>/io kept per run: see README.md, "bytes written".
IO_COUNTERS = ("write_bytes", "wchar", "cancelled_write_bytes")


def _harness(src: Path, harness_roots: List[Path]):
    """Imports strata_harness with `src` first on sys.path (scratch repos copy the plugin from
    wherever `strata` is imported)."""
    for root in [src, *harness_roots]:
        if str(root) not in sys.path:
            sys.path.insert(0 if root == src else len(sys.path), str(root))
    import strata_harness

    return strata_harness


def unavailable_reason(error: BaseException) -> Optional[str]:
    """The reason, when `error` says a tool is missing: the harness's Unavailable, or pytest's
    Skipped when the harness runs under pytest (under CI it fails instead, and that propagates)."""
    return str(error) if type(error).__name__ in ("Unavailable", "Skipped") else None


def _groups(tree: Path) -> List[List[str]]:
    """The tree's top-level entries dealt round-robin into NODES groups, by name."""
    children = sorted(child.name for child in tree.iterdir())
    return [children[index::NODES] for index in range(NODES)]


def _build_file(tree: Path, groups: List[List[str]], registry_host: str) -> str:
    """Each node is a `files` target (directories as recursive globs) behind a plain `target`
    that carries its dependencies: node0 is everybody's (the popular base layer), node1..node4
    form a chain, and both images depend on every node. Dependencies sit on the `target`s, not on
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
    lines.append(f"oci_image(name={IMAGES['docker-archive']!r}, dependencies={nodes!r}, "
                 f"repository={REPOSITORY!r}, registries={[registry_host]!r}, "
                 "image_tags=['v1'])")
    lines.append(f"oci_image(name={IMAGES['oci']!r}, dependencies={nodes!r}, "
                 f"repository={REPOSITORY!r}, output_format='oci')")
    return "\n".join(lines) + "\n"


def _copy_tree(source: Path, dest: Path) -> None:
    """Hard links of the tree's files (Pants snapshots cannot hold the dangling or absolute
    symlinks a tree may have, so symlinks are left out)."""
    def ignore_symlinks(directory: str, names: List[str]) -> List[str]:
        return [name for name in names if os.path.islink(os.path.join(directory, name))]

    shutil.copytree(source, dest, symlinks=True, ignore=ignore_symlinks, copy_function=os.link)


def _files(tree: Path, group: List[str]) -> List[Path]:
    """The group's regular files, sorted."""
    found = []
    for name in group:
        path = tree / name
        found.extend([path] if path.is_file() else
                     sorted(p for p in path.rglob("*") if p.is_file()))
    return found


def _first_file(tree: Path, group: List[str]) -> Path:
    files = _files(tree, group)
    if not files:
        raise RuntimeError("bench: a node holds no file to change")
    return files[0]


class _Changes:
    """Fresh changes: each call gives every file different bytes than ever before, under a new
    inode (the tree is hard-linked to the bench's own copy, which must stay untouched)."""

    def __init__(self) -> None:
        self.serial = 0

    def __call__(self, paths: List[Path]) -> None:
        self.serial += 1
        for path in paths:
            replacement = path.with_name(path.name + ".bench-new")
            replacement.write_bytes(path.read_bytes()
                                    + f"\nchanged by the benchmark, {self.serial}\n".encode())
            os.replace(replacement, path)
        time.sleep(1)  # let pantsd's watcher see it


def _timed(run, *args, **kwargs):
    start = time.perf_counter()
    result = run(*args, **kwargs)
    return time.perf_counter() - start, result


# --------------------------------------------------------------------------------------------
# Reading the built output


def _layers(output: Path) -> Dict[str, int]:
    """The image's layer blobs as {name: bytes}: the OCI layout's manifest descriptors, or the
    docker-archive's manifest.json entries with their sizes in the archive."""
    if output.is_dir():
        index = json.loads((output / "index.json").read_text(encoding="utf-8"))
        digest = index["manifests"][0]["digest"]
        manifest = json.loads((output / "blobs" / digest.replace(":", "/")).read_text(
            encoding="utf-8"))
        return {layer["digest"]: layer["size"] for layer in manifest["layers"]}
    with tarfile.open(output) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
        return {path: tar.getmember(path).size for path in manifest["Layers"]}


def _config_id(archive: Path) -> str:
    """The image ID (its config's sha256) of a docker-archive."""
    with tarfile.open(archive) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
    return "sha256:" + Path(manifest["Config"]).name[: -len(".json")]


def _size(output: Path) -> int:
    """The output's own bytes: an archive's (a file, or a link to its blob in the blob store,
    written whole by the run), or a layout's files that are not links into the store."""
    if output.is_file():
        return output.stat().st_size
    return sum(p.stat().st_size for p in output.rglob("*") if p.is_file() and not p.is_symlink())


def _pantsd_io(repo) -> Dict[str, int]:
    """pantsd's /proc/<pid>/io counters (with its pid): its own threads' I/O plus that of every
    child it has reaped (the kernel adds a child's counters to its parent's at wait())."""
    pid = repo.pantsd_pid()
    if pid is None:
        raise RuntimeError("bench: pantsd is not running")
    counters = {"pid": pid}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, value = line.split(":")
        counters[key] = int(value)
    return counters


# --------------------------------------------------------------------------------------------
# The rows


class _Bench:
    """The scratch repo and what the rows share."""

    def __init__(self, harness, repo, reps: int, summary):
        self.harness, self.repo, self.reps, self.summary = harness, repo, reps, summary
        self.change = _Changes()

    def output(self, fmt: str) -> Path:
        name = IMAGES[fmt]
        return self.repo.root / "dist" / (name if fmt == "oci" else f"{name}.tar")

    def layer_processes(self, run, fmt: str = "docker-archive") -> List[str]:
        return self.harness.ran_processes(run, f"Building //:{IMAGES[fmt]}: layer ")

    def package_after_change(self, fmt: str, paths: List[Path]) -> Dict[str, object]:
        """--reps times: change `paths`, then `package` the image in `fmt`, pantsd warm."""
        runs = []
        output = self.output(fmt)
        # Untimed: the other image's rows changed files since this one was last built (and ran
        # the layer Processes for them); each timed run must find only its own change.
        self.repo.run("package", f"//:{IMAGES[fmt]}", pantsd=True)
        for _ in range(self.reps):
            before = _layers(output)
            self.change(paths)
            io_before = _pantsd_io(self.repo)
            seconds, run = _timed(self.repo.run, "package", f"//:{IMAGES[fmt]}", pantsd=True)
            io_after = _pantsd_io(self.repo)
            if io_after["pid"] != io_before["pid"]:
                raise RuntimeError("bench: pantsd restarted during a run; its I/O is lost")
            after = _layers(output)
            runs.append({
                "seconds": seconds,
                "layer_processes": self.layer_processes(run, fmt),
                **{key: io_after[key] - io_before[key] for key in IO_COUNTERS},
                "changed_layer_bytes": sum(size for name, size in after.items()
                                           if name not in before),
                "output_bytes": _size(output),
            })
        return {
            "runs": len(runs),
            "changed": [str(p.relative_to(self.repo.root)) for p in paths],
            "layer_processes": [run["layer_processes"] for run in runs],
            **{key: self.summary([run[key] for run in runs])
               for key in ("seconds", *IO_COUNTERS, "changed_layer_bytes", "output_bytes")},
        }

    def run_into_podman(self, work: Path, paths: List[Path]) -> Dict[str, object]:
        """--reps times: change `paths`, then `pants run` //:image with the podman loader into
        the harness podman's private storage; afterwards that storage must hold the image."""
        target = f"//:{IMAGES['docker-archive']}"
        # Not under `work`, which may be deep: podman refuses a --runroot longer than 50
        # characters. Podman.close() removes it.
        root = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))
        try:
            podman = self.harness.Podman(root)
        except BaseException as e:
            root.rmdir()
            if reason := unavailable_reason(e):
                return {"skipped": reason}
            raise
        try:
            env = podman.loader_env(work / "podman-loader.conf")
            # Unmeasured: the storage starts empty, and a first load brings every layer.
            self.repo.run(*_LOAD, target, env=env, pantsd=True)
            runs = []
            for _ in range(self.reps):
                self.change(paths)
                seconds, run = _timed(self.repo.run, *_LOAD, target, env=env, pantsd=True)
                loaded = run.stdout.strip().rpartition("Loaded image: ")[2]
                self.repo.run("package", target, pantsd=True)  # untimed: the expected image ID
                image_id = podman("image", "inspect", "--format", "{{.Id}}", loaded)
                expected = _config_id(self.output("docker-archive"))
                if "sha256:" + image_id.stdout.decode().strip() != expected:
                    raise RuntimeError(f"bench: podman holds {loaded!r} as {image_id.stdout!r}, "
                                       f"not the image built, {expected}")
                runs.append({"seconds": seconds, "layer_processes": self.layer_processes(run)})
        finally:
            podman.close()
        return {"runs": len(runs), "image": loaded, "storage": "vfs (the harness's Podman)",
                "changed": [str(p.relative_to(self.repo.root)) for p in paths],
                "seconds": self.summary([run["seconds"] for run in runs]),
                "layer_processes": [run["layer_processes"] for run in runs]}

    def publish(self, registry_host: str) -> Dict[str, object]:
        """What `publish` pushed: the report's counts for one run."""
        seconds, run = _timed(self.repo.run, "publish", f"//:{IMAGES['docker-archive']}",
                              pantsd=True)
        report = self.harness.pushes(run.stdout).get(f"{registry_host}/{REPOSITORY}")
        if report is None:
            raise RuntimeError(f"bench: no push report in `pants publish`:\n{run.stdout}")
        return {"seconds": seconds, "blobs_uploaded": report.uploaded,
                "bytes_uploaded": report.uploaded_bytes, "blobs_mounted": report.mounted,
                "blobs_present": report.present, "manifests": report.tags,
                "layer_processes": self.layer_processes(run)}

    def publish_after_change(self, registry_host: str, paths: List[Path]) -> Dict[str, object]:
        runs = []
        for _ in range(self.reps):
            self.change(paths)
            runs.append(self.publish(registry_host))
        return {
            "runs": len(runs),
            "changed": [str(p.relative_to(self.repo.root)) for p in paths],
            "seconds": self.summary([run["seconds"] for run in runs]),
            **{key: [run[key] for run in runs]
               for key in ("blobs_uploaded", "bytes_uploaded", "blobs_mounted", "blobs_present",
                           "manifests", "layer_processes")},
        }


def _seed_baseline(python: str, baselines: Path, tree: Path, groups: List[List[str]],
                   work: Path, reps: int, summary, log) -> Dict[str, object]:
    """nixpkgs' stream_layered_image.py on the same files with the same layer split (one
    store_layers entry per node), as a whole process writing its docker-archive to /dev/null."""
    script = baselines / SEED_SCRIPT
    if not script.is_file():
        return {"skipped": f"{script} is absent (see --baselines)"}
    custom = work / "seed-customisation"
    custom.mkdir()
    with tarfile.open(custom / "layer.tar", "w"):
        pass
    (custom / "checksum").write_text(hashlib.sha256((custom / "layer.tar").read_bytes())
                                     .hexdigest())
    epoch = "1970-01-01T00:00:01+00:00"
    conf = work / "seed-conf.json"
    conf.write_text(json.dumps({
        "store_dir": str(tree), "store_layers": [[str(tree / name) for name in group]
                                                 for group in groups],
        "customisation_layer": str(custom), "from_image": None, "created": epoch,
        "mtime": epoch, "uid": 0, "gid": 0, "uname": "root", "gname": "root",
        "architecture": "amd64", "config": {}, "repo_tag": "bench:latest"}), encoding="utf-8")
    log(f"seed baseline: {script.name} on the same {len(groups)} layers, {reps} reps ...")
    seconds = []
    for _ in range(reps):
        elapsed, proc = _timed(subprocess.run, [python, str(script), str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError(f"bench: {script} failed: {proc.stderr.decode()[-2000:]}")
        seconds.append(elapsed)
    return {"script": str(script), "layers": len(groups), "runs": reps,
            "seconds": summary(seconds)}


def _demo(harness, work: Path, reps: int, summary, log) -> Dict[str, object]:
    """The demo in a scratch repo: `package` after a one-line change to app/hello/main.py,
    pantsd warm, per output format. The demo's files come from the working directory."""
    from strata_harness.demo import DEMO_FILES, demo_repo

    missing = [rel for rel in DEMO_FILES if not Path(rel).is_file()]
    if missing:
        return {"skipped": f"run from the repo root: {', '.join(missing)} not found in "
                           f"{Path.cwd()}"}
    repo = demo_repo(work / "demo")
    results = {}
    try:
        log("demo: building it once (pantsd start; a cold cache downloads Debian) ...")
        repo.run("package", *DEMO_TARGETS.values(), pantsd=True)
        main = repo.root / DEMO_CHANGED
        original = main.read_text(encoding="utf-8").rstrip("\n").split("\n")
        for fmt, target in DEMO_TARGETS.items():
            runs = []
            for _ in range(reps):
                # One line changed: the last one gains a comment, different in each run of
                # every bench (this repo shares the local store, and its process cache).
                nonce = os.urandom(8).hex()
                main.write_text("\n".join(original[:-1] + [f"{original[-1]}  # bench {nonce}"])
                                + "\n", encoding="utf-8")
                time.sleep(1)  # let pantsd's watcher see it
                seconds, run = _timed(repo.run, "package", target, pantsd=True)
                runs.append((seconds, harness.ran_processes(run)))
            layer = f"Building {target.lstrip('/')}: layer "  # Pants writes app:image here
            results[fmt] = {
                "target": target, "runs": len(runs),
                "seconds": summary([seconds for seconds, _ in runs]),
                "processes": [processes for _, processes in runs],
                "layer_processes": [[p for p in processes if p.startswith(layer)]
                                    for _, processes in runs]}
    finally:
        repo.stop_pantsd()
    return {"changed": DEMO_CHANGED, "formats": results}


def _remote_execution(harness, tree: Path, build: str, work: Path, reps: int, summary,
                      log) -> Dict[str, object]:
    """The tree's docker-archive built by remote execution on a buildbox-casd worker on this
    machine (an empty worker and local store: cold), then after a one-file change to the
    largest node, pantsd warm. On one machine the worker's speed is this machine's: the rows
    measure the protocol's cost (uploading inputs, downloading outputs through Pants' store),
    against the same builds' local rows."""
    from strata_harness.buildbox import start_buildbox

    target = f"//:{IMAGES['docker-archive']}"
    with start_buildbox(work / "buildbox") as worker:
        repo = harness.ScratchRepo(work / "pants-remote", isolated_cache=True,
                                   config={"GLOBAL": {"pantsd_max_memory_usage": PANTSD_MEMORY}})
        try:
            root = repo.root / "tree"
            _copy_tree(tree, root)
            (repo.root / "BUILD").write_text(build, encoding="utf-8")
            flags = [*worker.pants_args(), "--stats-log"]
            log(f"pants: cold package of {target} by remote execution on {worker.address} ...")
            cold_seconds, cold = _timed(repo.run, *flags, "package", target)
            counters = harness.counters(cold)
            groups = _groups(root)
            sizes = [sum(p.stat().st_size for p in _files(root, group)) for group in groups]
            largest = [_first_file(root, groups[sizes.index(max(sizes))])]
            repo.run(*flags, "package", target, pantsd=True)  # pantsd warm, untimed
            change, runs = _Changes(), []
            log(f"pants: package by remote execution after a change (largest node), {reps} "
                "reps ...")
            for _ in range(reps):
                change(largest)
                seconds, run = _timed(repo.run, *flags, "package", target, pantsd=True)
                runs.append((seconds, harness.ran_processes(run, f"Building {target}: layer "),
                             harness.counters(run)))
        finally:
            repo.stop_pantsd()
    return {
        "cold": {"seconds": cold_seconds,
                 "remote_execution_requests": counters["remote_execution_requests"],
                 "local_execution_requests": counters["local_execution_requests"]},
        "one_file_change": {
            "seconds": summary([seconds for seconds, _, _ in runs]),
            "layer_processes": [layers for _, layers, _ in runs],
            "remote_execution_requests": [c["remote_execution_requests"] for _, _, c in runs],
            "local_execution_requests": [c["local_execution_requests"] for _, _, c in runs],
        },
    }


def run_pants_bench(args, tree: Path, work: Path, harness_roots: List[Path],
                    baseline_seconds: float, summary, log) -> Dict[str, object]:
    """The end-to-end figures; raises the harness's Unavailable (or a pytest outcome, under
    pytest) when Pants or docker-registry is missing. `args`: the bench's (reps, src, python,
    baselines, demo)."""
    harness = _harness(args.src, harness_roots)
    registry = harness.start_registry(work / "registry")
    repo = None
    try:
        # pantsd restarts when it grows past 4 GiB (its default limit), dropping its memoised
        # graph: the 20,000-file default tree comes close to that.
        repo = harness.ScratchRepo(work / "pants-repo", isolated_cache=True,
                                   config={"GLOBAL": {"pantsd_max_memory_usage": PANTSD_MEMORY}})
        root = repo.root / "tree"
        _copy_tree(tree, root)
        groups = _groups(root)
        (repo.root / "BUILD").write_text(_build_file(root, groups, registry.host),
                                         encoding="utf-8")
        bench = _Bench(harness, repo, args.reps, summary)
        sizes = [sum(p.stat().st_size for p in _files(root, group)) for group in groups]
        largest, smallest = sizes.index(max(sizes)), sizes.index(min(sizes))
        nodes = {"largest": {"node": f"node{largest}", "bytes": sizes[largest]},
                 "smallest": {"node": f"node{smallest}", "bytes": sizes[smallest]}}

        seed = _seed_baseline(args.python, args.baselines, root, groups, work, args.reps,
                              summary, log)

        target = f"//:{IMAGES['docker-archive']}"
        log(f"pants: cold package of {target} ({NODES} nodes, empty local store, no pantsd) ...")
        cold_seconds, cold = _timed(repo.run, "package", target)
        cold_layers = bench.layer_processes(cold)

        log("pants: starting pantsd (both images), then no-op rebuilds ...")
        repo.run("package", *(f"//:{name}" for name in IMAGES.values()), pantsd=True)
        noop_runs = [_timed(repo.run, "package", target, pantsd=True) for _ in range(NOOP_REPS)]
        noop_processes = sorted({p for _, run in noop_runs for p in harness.ran_processes(run)})
        pantsd_rss_mb = repo.pantsd_rss_mb()

        changes = {
            "every_node": [_first_file(root, group) for group in groups],
            "largest_node": [_first_file(root, groups[largest])],
            "smallest_node": [_first_file(root, groups[smallest])],
        }
        rebuilds: Dict[str, Dict[str, object]] = {}
        for name, paths in changes.items():
            for fmt in IMAGES:
                log(f"pants: package ({fmt}) after a change ({name.replace('_', ' ')}), "
                    f"{args.reps} reps ...")
                rebuilds.setdefault(name, {})[fmt] = bench.package_after_change(fmt, paths)

        log(f"pants: run {target} into podman's private storage after a change, "
            f"{args.reps} reps ...")
        run = bench.run_into_podman(work, changes["largest_node"])

        log(f"pants: publish to {registry.host}: twice, then after a change, "
            f"{args.reps} reps ...")
        publish = {"first": bench.publish(registry.host), "second": bench.publish(registry.host),
                   "one_file_change": bench.publish_after_change(registry.host,
                                                                 changes["largest_node"])}
        try:
            remote = _remote_execution(harness, tree, _build_file(root, groups, registry.host),
                                       work, args.reps, summary, log)
        except BaseException as e:  # no worker here: the harness's Unavailable (or Skipped)
            reason = unavailable_reason(e)
            if reason is None:
                raise
            remote = {"skipped": reason}
    finally:
        if repo is not None:
            repo.stop_pantsd()
        registry.stop()

    demo = _demo(harness, work, args.reps, summary, log) if args.demo else {
        "skipped": "--no-demo"}
    return {
        "nodes": NODES,
        "node_bytes": nodes,
        "seed_baseline": seed,
        "cold_package": {"seconds": cold_seconds, "layer_processes": len(cold_layers),
                         "ratio_to_baseline": cold_seconds / baseline_seconds},
        "noop_package": {"seconds": summary([seconds for seconds, _ in noop_runs]),
                         "runs": len(noop_runs), "processes": noop_processes,
                         "pantsd_rss_mb": pantsd_rss_mb},
        "rebuilds": rebuilds,
        "run": run,
        "publish": publish,
        "remote_execution": remote,
        "demo": demo,
    }
