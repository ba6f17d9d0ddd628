#!/usr/bin/env python3
"""Benchmarks Strata's layer writer (`python -m strata.core.build`) on a synthetic tree.

    python3 build-support/bench/bench.py [--size-mb N] [--files N] [--seed S] [--reps R]
                                         [--big-file-mb N] [--json OUT] [--no-pants]
                                         [--baselines DIR] [--no-demo] [--no-registry]
                                         [--registry-image NAME] [--registry-extra PACKAGE]

Measures, each as the median (with min and max) of --reps runs of the real CLI in a subprocess:
uncompressed layer throughput against a `tar | openssl dgst -sha256` baseline measured in the same
run, peak RSS on the whole tree and on one large file, and gzip / zstd layer throughput. Then the
Debian registry's pulls (registry_e2e.py): cold, cached, and a new combination of cached layers.
Then, end to end (pants_e2e.py): the same tree imaged through Pants after changes, beside the
seed's stream_layered_image.py, run into podman, published, and the demo app after a one-line
change, with issue 13's targets. Prints a table; --json writes the same figures as JSON. See
build-support/bench/README.md.

Standard library only; runs on CPython >= 3.9. MB means 2**20 bytes throughout.
"""

import argparse
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

MB = 1 << 20
SCHEMA = 1
RATIO_TARGET = 0.8  # Strata's uncompressed throughput / the tar | openssl baseline's
RSS_TARGET_MB = 150.0  # the layer tool's peak RSS, whatever the content size
STARTUP_REPS = 20  # start-up is short and noisy: more runs than the throughput rows
# Issue 29's targets for the end-to-end rows (pants_e2e.py), medians, pantsd warm (issue 13
# set most of them; issue 29, which moved layer bytes into the blob store, tightened some):
ONE_FILE_TARGET_SECONDS = {"oci": 1.5, "docker-archive": 2.5}  # one file, the largest node
SEED_SPEEDUP_TARGET = 2.0  # every node changed: the seed script's time / Strata's
COLD_RATIO_TARGET = 25.0  # cold package (no pantsd, empty store) / the tar | openssl baseline
NOOP_TARGET_SECONDS = 0.3  # `pants package` with nothing changed
RUN_TARGET_SECONDS = 3.0  # `pants run` after a one-file change, until podman's storage has it
PUBLISH_TARGET_BLOBS = 2  # uploaded after a one-file change: the changed layer and the config
PUBLISH_TARGET_SECONDS = 8.0  # that publish, end to end
# Written per one-file change <= this x the changed layer + the output's own bytes (an archive,
# or a layout's files that are not links into the blob store).
BYTES_WRITTEN_TARGET = 1.5
# //app:image after a one-line change to app/hello/main.py (issue 14 asked for 1.0 s).
DEMO_TARGET_SECONDS = 0.8
# The Debian registry (issue 31): an image pulled again, to its manifest.
REGISTRY_CACHED_TARGET_SECONDS = 0.2

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where Pants looks for the `python3` that runs the layer tool ([strata].python_search_paths).
PYTHON_SEARCH_PATHS = ("/usr/bin", "/bin", "/usr/local/bin")
TOOL_SEARCH_PATH = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"
BASELINE = ("tar --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner -cf - -C {tree} . "
            "| openssl dgst -sha256")


# --------------------------------------------------------------------------------------------
# The synthetic tree


_EXTENSIONS = (".py", ".txt", ".json", ".cfg", ".so", ".bin", ".dat", ".pyc", ".md", "")
_UNICODE_NAMES = ("données", "Ωmega", "naïve", "日本語")


class _Content:
    """Deterministic file contents: compressible text lines, or incompressible random bytes."""

    def __init__(self, rng: random.Random, pool_bytes: int):
        self._rng = rng
        self._pool = rng.randbytes(pool_bytes)
        alphabet = "abcdefghijklmnopqrstuvwxyz_"
        words = ["".join(rng.choices(alphabet, k=rng.randint(2, 10))) for _ in range(4000)]
        lines = []
        for _ in range(20000):
            indent = " " * (4 * rng.randint(0, 3))
            body = " ".join(rng.choices(words, k=rng.randint(1, 12)))
            end = rng.choice(("", ":", ",", "()", " = None", " # note"))
            lines.append(f"{indent}{body}{end}\n".encode())
        self._lines = lines

    def text(self, size: int) -> bytes:
        out: List[bytes] = []
        have = 0
        while have < size:
            batch = self._rng.choices(self._lines, k=max(16, (size - have) // 40))
            out.extend(batch)
            have += sum(map(len, batch))
        return b"".join(out)[:size]

    def random(self, size: int) -> bytes:
        out: List[bytes] = []
        while size:
            start = self._rng.randrange(len(self._pool))
            piece = self._pool[start : start + size]
            out.append(piece)
            size -= len(piece)
        return b"".join(out)

    def mixed(self, size: int) -> bytes:
        half = size // 2
        return self.text(half) + self.random(size - half)

    def stream(self, out, size: int, chunk: int = 8 * MB) -> None:
        """Writes `size` incompressible bytes to `out` without holding them all in memory."""
        while size:
            piece = self.random(min(chunk, size))
            out.write(piece)
            size -= len(piece)


def _file_sizes(rng: random.Random, total: int, count: int) -> List[int]:
    """`count` sizes summing to `total`: many small files (log-uniform 100 B..64 KB, a few empty)
    and about 0.5% multi-MB files that carry the rest of the bytes."""
    big = max(1, round(count * 0.005)) if count > 1 else count
    small = [0 if rng.random() < 0.01 else int(10 ** rng.uniform(2, 4.82))
             for _ in range(count - big)]
    budget = int(total * 0.55)  # small files never carry more than ~55% of the bytes
    if sum(small) > budget:
        scale = budget / sum(small)
        small = [int(size * scale) for size in small]
    rest = total - sum(small)
    weights = [rng.lognormvariate(0, 0.7) for _ in range(big)]
    bigs = [int(rest * w / sum(weights)) for w in weights]
    if bigs:
        bigs[-1] += rest - sum(bigs)
    sizes = small + bigs
    rng.shuffle(sizes)
    return sizes


def generate_tree(root: Path, total: int, count: int, seed: int) -> Dict[str, int]:
    """A deterministic tree of `count` regular files holding `total` bytes, plus nested
    directories and ~2% symlinks; ~5% of files executable. Same arguments, same tree."""
    rng = random.Random(seed)
    content = _Content(rng, pool_bytes=min(64 * MB, max(MB, total)))
    root.mkdir(parents=True)

    def word() -> str:
        return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz-_0123456789", k=rng.randint(3, 12)))

    # Nested directories: each new one under a random existing one, at most 8 deep.
    dirs: List[Tuple[str, int]] = [("", 0)]
    for index in range(max(1, count // 12)):
        parent, depth = rng.choice(dirs)
        if depth >= 8:
            parent, depth = "", 0
        name = rng.choice(_UNICODE_NAMES) if index % 997 == 5 else word()
        if index == 7:  # one long path, beyond ustar's name/prefix split, to exercise PAX
            name = "long-" + "x" * 200
        path = f"{parent}/{name}-{index}" if parent else f"{name}-{index}"
        (root / path).mkdir()
        dirs.append((path, depth + 1))

    stats = {"files": 0, "bytes": 0, "dirs": len(dirs) - 1, "symlinks": 0, "executables": 0,
             "text_files": 0, "random_files": 0, "mixed_files": 0}
    files: List[str] = []
    for index, size in enumerate(_file_sizes(rng, total, count)):
        parent = rng.choice(dirs)[0]
        name = f"{word()}-{index}{rng.choice(_EXTENSIONS)}"
        path = f"{parent}/{name}" if parent else name
        kind = rng.choices(("text", "random", "mixed"), weights=(60, 25, 15))[0]
        data = getattr(content, kind)(size)
        (root / path).write_bytes(data)
        if rng.random() < 0.05:
            os.chmod(root / path, 0o755)
            stats["executables"] += 1
        else:
            os.chmod(root / path, 0o644)
        stats["files"] += 1
        stats["bytes"] += size
        stats[f"{kind}_files"] += 1
        files.append(path)

    for index in range(max(1, count // 50)):
        parent = rng.choice(dirs)[0]
        link = root / parent / f"link-{index}"
        if index % 20 == 0:
            target = "../does-not-exist"  # dangling links are legal in layers
        elif index % 5 == 0:
            target = os.path.relpath(root / rng.choice(dirs)[0], root / parent)
        else:
            target = os.path.relpath(root / rng.choice(files), root / parent)
        os.symlink(target, link)
        stats["symlinks"] += 1
    return stats


def generate_big_file(path: Path, size: int, seed: int) -> None:
    content = _Content(random.Random(seed + 1), pool_bytes=64 * MB)
    with open(path, "wb") as f:
        content.stream(f, size)


# --------------------------------------------------------------------------------------------
# Running and measuring


def layer_sources(src: Path) -> Tuple[str, ...]:
    """The core files Pants gives layer processes: `layer_sources` of the checkout's
    strata/core/__main__.py, loaded from that file (this process may hold another strata)."""
    main = src / "strata/core/__main__.py"
    spec = importlib.util.spec_from_file_location("strata_bench_core_main", main)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sources = getattr(module, "layer_sources", None)
    if sources is None:
        raise SystemExit(f"bench: {main} has no layer_sources, which names the core files "
                         "layer processes get; this bench cannot lay out their sandbox")
    return tuple(sources(src / "strata/core"))


def make_sandbox(sandbox: Path, src: Path) -> None:
    """Lays the tool out as a layer process's sandbox has it: strata/__init__.py (empty) and
    the core's layer sources; the process runs with the sandbox as its working directory."""
    core = sandbox / "strata/core"
    (sandbox / "strata").mkdir(parents=True)
    (sandbox / "strata/__init__.py").write_bytes(b"")
    for name in layer_sources(src):
        (core / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "strata/core" / name, core / name)


class Run:
    def __init__(self, seconds: float, rss_mb: float, cpu_seconds: float, stdout: str):
        self.seconds = seconds
        self.rss_mb = rss_mb
        self.cpu_seconds = cpu_seconds
        self.stdout = stdout


# Runs argv (its own argv[2:]) and writes its wall time and wait4() usage as JSON to argv[1].
# A separate small process, because a child's ru_maxrss starts from the RSS of the process that
# forked it: measured straight from the bench, the tool would inherit the bench's own footprint.
_MEASURE = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": seconds, "maxrss_kb": usage.ru_maxrss,
               "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "status": os.waitstatus_to_exitcode(status)}, f)
"""


def run_measured(argv: List[str], cwd: Path, env: Dict[str, str]) -> Run:
    """Runs `argv` to completion: its wall time, and the peak RSS and CPU time wait4() reports
    for it (ru_maxrss is the largest of the child and the processes it waited for)."""
    with tempfile.TemporaryDirectory() as scratch:
        usage_file = os.path.join(scratch, "usage.json")
        proc = subprocess.run([sys.executable, "-E", "-s", "-c", _MEASURE, usage_file, *argv],
                              cwd=cwd, env=env, capture_output=True)
        if proc.returncode != 0 or not os.path.exists(usage_file):
            raise RuntimeError(f"bench: measuring {argv!r} failed: {proc.stderr.decode().strip()}")
        with open(usage_file, encoding="utf-8") as f:
            usage = json.load(f)
    stdout, stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    if usage["status"] != 0:
        raise RuntimeError(f"{argv!r} exited with {usage['status']}: {stderr.strip()}")
    return Run(usage["seconds"], usage["maxrss_kb"] / 1024, usage["cpu_seconds"], stdout)


def warm(root: Path) -> None:
    """Reads every file under `root`, so that the runs that follow find it in the page cache
    (some VMs page out memory that has been idle a few seconds)."""
    buffer = bytearray(MB)
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with open(path, "rb", buffering=0) as f:
                    while f.readinto(buffer):
                        pass


def summary(values: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _executables(tree: Path) -> List[str]:
    """The tree's executable files, as the rules take them from the Digest (the layer tool
    never reads modes from its sandbox)."""
    found = []
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and os.stat(path).st_mode & 0o111:
                found.append(os.path.relpath(path, tree))
    return sorted(found)


class Bench:
    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.sandbox = work / "sandbox"
        self.out = work / "out"
        self.python = args.python
        self.bash = "bash"
        self.env = {"PATH": TOOL_SEARCH_PATH, "LANG": "C.UTF-8"}
        self.results: Dict[str, dict] = {}

    def spec(self, name: str, source: str, compression: str, zstd: Optional[str]) -> str:
        spec = {
            "settings": {"mtime": 1, "uid": 0, "gid": 0, "uname": "root", "gname": "root",
                         "compression": compression, "zstd": zstd},
            "trees": [{"source": source, "dest": "app",
                       "executables": _executables(self.sandbox / source)}],
        }
        path = self.sandbox / f"spec-{name}.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        return path.name

    def layer(self, spec: str) -> Tuple[Run, dict]:
        out = self.out / "layer"
        # As the rules run it (strata.rules.tool.ImageTool.layer_argv).
        argv = [self.python, "-E", "-s", "-S", "-B", "-m", "strata.core.build",
                "--spec", spec, "--out", str(out)]
        run = run_measured(argv, self.sandbox, self.env)
        meta = json.loads((out / "layer.json").read_text(encoding="utf-8"))
        shutil.rmtree(out)  # the next run starts from nothing; large blobs do not pile up
        return run, meta

    def baseline(self) -> Tuple[Run, str]:
        command = BASELINE.format(tree=self.sandbox / "tree")
        run = run_measured([self.bash, "-o", "pipefail", "-c", command], self.sandbox, self.env)
        return run, run.stdout.strip().rsplit(" ", 1)[-1]

    def record(self, key: str, runs: List[Run], content_bytes: int, **extra) -> dict:
        result = {
            "seconds": summary([r.seconds for r in runs]),
            "mb_per_s": summary([content_bytes / MB / r.seconds for r in runs]),
            "cpu_seconds": summary([r.cpu_seconds for r in runs]),
            "peak_rss_mb": summary([r.rss_mb for r in runs]),
            "input_mb": content_bytes / MB,
            "runs": len(runs),
            **extra,
        }
        self.results[key] = result
        return result


def _find_tool(name: str) -> Optional[str]:
    return shutil.which(name, path=TOOL_SEARCH_PATH)


def default_python() -> str:
    for directory in PYTHON_SEARCH_PATHS:
        candidate = os.path.join(directory, "python3")
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def run_bench(args, work: Path) -> dict:
    bench = Bench(args, work)
    tools = {name: _find_tool(name) for name in ("tar", "openssl", "bash", "zstd")}
    missing = [name for name in ("tar", "openssl", "bash") if not tools[name]]
    if missing:
        raise SystemExit(f"bench: missing required tools: {', '.join(missing)}")
    bench.bash = tools["bash"]
    make_sandbox(bench.sandbox, args.src)
    bench.out.mkdir()
    load_before = os.getloadavg()

    log(f"generating a {args.size_mb:g} MB tree of {args.files} files (seed {args.seed}) ...")
    start = time.perf_counter()
    tree = generate_tree(bench.sandbox / "tree", int(args.size_mb * MB), args.files, args.seed)
    tree["generate_seconds"] = round(time.perf_counter() - start, 3)
    os.sync()  # no writeback of the new tree during the runs
    content = tree["bytes"]
    reps = args.reps

    # Warm-up (imports, page cache), unmeasured.
    spec_none = bench.spec("none", "tree", "none", None)
    warm(bench.sandbox / "tree")
    bench.layer(spec_none)
    bench.baseline()

    # Uncompressed layer vs. baseline, interleaved so that drift hits both alike.
    log(f"layer (none) vs. baseline, {reps} reps ...")
    strata_runs, base_runs, metas, base_digests = [], [], [], []
    for _ in range(reps):
        run, meta = bench.layer(spec_none)
        strata_runs.append(run)
        metas.append(meta)
        run, digest = bench.baseline()
        base_runs.append(run)
        base_digests.append(digest)
    diff_ids = {m["diff_id"] for m in metas}
    if len(diff_ids) != 1:
        raise SystemExit(f"bench: the layer is not reproducible across runs: {sorted(diff_ids)}")
    layer_none = bench.record("layer_none", strata_runs, content, diff_id=metas[0]["diff_id"],
                              tar_bytes=metas[0]["size"], entries=metas[0]["entries"])
    baseline = bench.record("baseline", base_runs, content, command=BASELINE.format(tree="TREE"),
                            sha256=base_digests[0])
    ratio = layer_none["mb_per_s"]["median"] / baseline["mb_per_s"]["median"]

    # One large file: memory must not grow with content.
    if args.big_file_mb > 0:
        big_bytes = int(args.big_file_mb * MB)
        log(f"generating a {args.big_file_mb:g} MB file ...")
        (bench.sandbox / "big").mkdir()
        generate_big_file(bench.sandbox / "big/big.bin", big_bytes, args.seed)
        os.sync()
        spec_big = bench.spec("big", "big", "none", None)
        log(f"layer (none) on the {args.big_file_mb:g} MB file, {reps} reps ...")
        runs = [bench.layer(spec_big)[0] for _ in range(reps)]
        bench.record("layer_big_file", runs, big_bytes)
        (bench.sandbox / "big/big.bin").unlink()
    else:
        bench.results["layer_big_file"] = {"skipped": "--big-file-mb 0"}

    # Compression.
    for kind in ("gzip", "zstd"):
        key = f"layer_{kind}"
        if kind == "zstd" and not tools["zstd"]:
            bench.results[key] = {"skipped": "zstd is not installed"}
            continue
        spec = bench.spec(kind, "tree", kind, tools["zstd"] if kind == "zstd" else None)
        warm(bench.sandbox / "tree")
        log(f"layer ({kind}), {reps} reps ...")
        runs, metas = [], []
        for _ in range(reps):
            run, meta = bench.layer(spec)
            runs.append(run)
            metas.append(meta)
        if {m["diff_id"] for m in metas} != diff_ids:
            raise SystemExit(f"bench: the {kind} layer's diff_id differs from the plain layer's")
        bench.record(key, runs, content, digest=metas[0]["digest"],
                     blob_mb=metas[0]["blob_size"] / MB,
                     compression_ratio=metas[0]["size"] / metas[0]["blob_size"])

    # Start-up: every layer is a Process, so a small layer costs what the interpreter and the
    # core's imports cost.
    (bench.sandbox / "tiny").mkdir()
    (bench.sandbox / "tiny/hello.txt").write_bytes(b"hello\n")
    spec_tiny = bench.spec("tiny", "tiny", "none", None)
    bench.layer(spec_tiny)
    log(f"layer start-up (one small file), {STARTUP_REPS} reps ...")
    runs = [bench.layer(spec_tiny)[0] for _ in range(STARTUP_REPS)]
    bench.record("layer_startup", runs, 6)

    registry = _registry_rows(args, bench) if args.registry else {"skipped": "--no-registry"}
    pants = _pants_rows(args, bench, baseline["seconds"]["median"]) if args.pants else {
        "skipped": "--no-pants"}

    rss_runs = [bench.results[key]["peak_rss_mb"]["max"]
                for key in ("layer_none", "layer_big_file") if "peak_rss_mb" in bench.results[key]]
    python_version = subprocess.run(
        [bench.python, "-E", "-s", "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True).stdout.strip()
    return {
        "schema": SCHEMA,
        "params": {
            "size_mb": args.size_mb, "files": args.files, "seed": args.seed, "reps": reps,
            "big_file_mb": args.big_file_mb, "python": bench.python,
            "python_version": python_version,
            "src": str(args.src),
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "machine": platform.machine(),
                    # 1-minute load averages: other work on the machine skews every figure.
                    "load_before": round(load_before[0], 2),
                    "load_after": round(os.getloadavg()[0], 2)},
        "tools": tools,
        "tree": tree,
        "results": bench.results,
        "registry": registry,
        "pants": pants,
        "ratio": ratio,
        "targets": {
            "ratio_min": RATIO_TARGET,
            "ratio_met": ratio >= RATIO_TARGET,
            "peak_rss_max_mb": RSS_TARGET_MB,
            "peak_rss_mb": max(rss_runs),
            "peak_rss_met": max(rss_runs) <= RSS_TARGET_MB,
            **_pants_targets(pants),
            "registry_cached": _registry_target(registry),
        },
    }


def _pants_rows(args, bench: "Bench", baseline_seconds: float) -> dict:
    """The end-to-end rows (pants_e2e.py), or why they were skipped. Under pytest (the smoke
    test, with CI set) a missing tool fails rather than skips, as in every other test."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pants_e2e

    harness_roots = [REPO_ROOT / "tests/python", Path.cwd()]
    if (REPO_ROOT / "pants.toml").is_file():  # scratch repos take their settings from it
        os.environ.setdefault("STRATA_ROOT", str(REPO_ROOT))
        if not (REPO_ROOT / "build-support/pex").is_file():
            # The pex CLI those settings name, which the bootstrap builds: in a fresh clone,
            # the demo's venv would fail after every other row has run.
            log("bootstrapping (./pants --version) for the pex CLI ...")
            subprocess.run([str(REPO_ROOT / "pants"), "--version"], cwd=REPO_ROOT, check=True,
                           stdout=subprocess.DEVNULL)
    work = bench.work / "pants"
    work.mkdir()
    try:
        return pants_e2e.run_pants_bench(args, bench.sandbox / "tree", work, harness_roots,
                                         baseline_seconds, summary, log)
    except ImportError as e:  # no test harness next to this script (or in the working dir)
        return {"skipped": f"the test harness is not importable: {e}"}
    except BaseException as e:  # the harness's Unavailable, or pytest's Skipped under pytest
        reason = pants_e2e.unavailable_reason(e)
        if reason is None:
            raise
        return {"skipped": reason}


def _registry_rows(args, bench: "Bench") -> dict:
    """The Debian registry's rows (registry_e2e.py), or why they were skipped: the registry did
    not start (no Debian mirror here, say)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import registry_e2e

    try:
        return registry_e2e.run_registry_bench(args, bench.work / "registry", summary, log)
    except RuntimeError as e:
        if "the registry did not start" not in str(e):
            raise
        return {"skipped": str(e)}


def _registry_target(registry: dict) -> dict:
    if "skipped" in registry:
        return {"skipped": registry["skipped"]}
    figure = registry["cached"]["manifest_seconds"]["median"]
    return _target(figure, REGISTRY_CACHED_TARGET_SECONDS,
                   figure <= REGISTRY_CACHED_TARGET_SECONDS)


def _target(figure, limit, met: bool) -> dict:
    return {"figure": figure, "limit": limit, "met": met}


def _pants_targets(pants: dict) -> dict:
    """Issue 29's targets, each {"figure", "limit", "met"} or {"skipped": why}; plus what the
    rows count (layer Processes run, bytes pushed), which must hold whatever the timings."""
    if "skipped" in pants:
        return {}
    rebuilds, publish = pants["rebuilds"], pants["publish"]
    targets = {}
    for fmt, limit in ONE_FILE_TARGET_SECONDS.items():
        key = fmt.replace("-", "_")
        largest = rebuilds["largest_node"][fmt]
        seconds = largest["seconds"]["median"]
        targets[f"one_file_{key}"] = _target(seconds, limit, seconds <= limit)
        seed = pants["seed_baseline"]
        if "skipped" in seed:
            targets[f"every_node_{key}"] = {"skipped": seed["skipped"]}
        else:
            speedup = seed["seconds"]["median"] / rebuilds["every_node"][fmt]["seconds"]["median"]
            targets[f"every_node_{key}"] = _target(speedup, SEED_SPEEDUP_TARGET,
                                                   speedup >= SEED_SPEEDUP_TARGET)
        written = largest["write_bytes"]["median"]
        allowed = (BYTES_WRITTEN_TARGET * largest["changed_layer_bytes"]["median"]
                   + largest["output_bytes"]["median"])
        targets[f"bytes_written_{key}"] = _target(written, allowed, written <= allowed)
    cold = pants["cold_package"]["ratio_to_baseline"]
    targets["cold"] = _target(cold, COLD_RATIO_TARGET, cold <= COLD_RATIO_TARGET)
    noop = pants["noop_package"]["seconds"]["median"]
    targets["noop"] = _target(noop, NOOP_TARGET_SECONDS, noop <= NOOP_TARGET_SECONDS)
    run = pants["run"]
    targets["run"] = {"skipped": run["skipped"]} if "skipped" in run else _target(
        run["seconds"]["median"], RUN_TARGET_SECONDS,
        run["seconds"]["median"] <= RUN_TARGET_SECONDS)
    # Counted: blobs the push uploaded (layers and config; not mounts, not blobs the registry
    # had); the manifest PUT is the tag line each push must report besides.
    pushed = publish["one_file_change"]
    blobs = pushed["blobs_uploaded"]
    targets["publish"] = _target(blobs, PUBLISH_TARGET_BLOBS, all(
        count == PUBLISH_TARGET_BLOBS and tags
        for count, tags in zip(blobs, pushed["manifests"])))
    seconds = pushed["seconds"]["median"]
    targets["publish_seconds"] = _target(
        seconds, PUBLISH_TARGET_SECONDS, seconds <= PUBLISH_TARGET_SECONDS)
    demo = pants["demo"]
    for fmt in ("oci", "docker-archive"):
        key = f"demo_{fmt.replace('-', '_')}"
        seconds = None if "skipped" in demo else demo["formats"][fmt]["seconds"]["median"]
        targets[key] = {"skipped": demo["skipped"]} if seconds is None else _target(
            seconds, DEMO_TARGET_SECONDS, seconds <= DEMO_TARGET_SECONDS)
    expected = {"every_node": pants["nodes"], "largest_node": 1, "smallest_node": 1}
    targets["layer_processes_met"] = all(
        len(layers) == expected[name]
        for name, by_format in rebuilds.items() for row in by_format.values()
        for layers in row["layer_processes"])
    targets["second_push_zero_bytes_met"] = publish["second"]["bytes_uploaded"] == 0
    return targets


# --------------------------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _row(cells, widths) -> str:
    return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


def format_table(report: dict) -> str:
    params, tree, results = report["params"], report["tree"], report["results"]
    lines = [
        f"Strata layer benchmark: {tree['files']} files, {tree['dirs']} dirs, "
        f"{tree['symlinks']} symlinks, {tree['bytes'] / MB:.1f} MB (seed {params['seed']}); "
        f"{params['reps']} reps, median [min-max]",
        f"tool: {params['python']} (Python {params['python_version']}) -m strata.core.build; "
        f"{report['machine']['cpus']} CPUs, load average {report['machine']['load_before']:.2f} "
        f"before, {report['machine']['load_after']:.2f} after",
        "",
    ]
    widths = (34, 8, 17, 8, 8, 12)
    lines.append(_row(("measurement", "MB/s", "[min-max]", "wall s", "CPU s", "peak RSS MB"),
                      widths))
    lines.append(_row(tuple("-" * w for w in widths), widths))
    labels = {
        "layer_none": "strata layer, tree (none)",
        "baseline": "baseline: tar | openssl sha256",
        "layer_big_file": f"strata layer, {params['big_file_mb']:g} MB file (none)",
        "layer_gzip": "strata layer, tree (gzip)",
        "layer_zstd": "strata layer, tree (zstd)",
    }
    for key, label in labels.items():
        result = results[key]
        if "skipped" in result:
            lines.append(_row((label, "skipped", result["skipped"]), widths))
            continue
        rate, rss = result["mb_per_s"], result["peak_rss_mb"]
        spread = f"[{rate['min']:.1f}-{rate['max']:.1f}]"
        # The baseline's RSS is its largest process's, not the layer tool's: not comparable.
        rss_text = "" if key == "baseline" else f"{rss['median']:.1f}"
        lines.append(_row((label, f"{rate['median']:.1f}", spread,
                           f"{result['seconds']['median']:.2f}",
                           f"{result['cpu_seconds']['median']:.2f}", rss_text), widths))
    lines.append("")
    targets = report["targets"]
    for key in ("layer_gzip", "layer_zstd"):
        if "compression_ratio" in results[key]:
            lines.append(f"{key[6:]}: {results[key]['blob_mb']:.1f} MB blob, "
                         f"{results[key]['compression_ratio']:.2f}x smaller than the tar")
    lines.append(
        f"ratio strata/baseline: {report['ratio']:.2f}x (target >= {targets['ratio_min']}x: "
        f"{'met' if targets['ratio_met'] else 'NOT met'})"
    )
    lines.append(
        f"peak RSS of the layer tool: {targets['peak_rss_mb']:.1f} MB (target <= "
        f"{targets['peak_rss_max_mb']:g} MB: {'met' if targets['peak_rss_met'] else 'NOT met'})"
    )
    startup = results["layer_startup"]["seconds"]
    lines.append(
        f"layer start-up (a one-file layer, {results['layer_startup']['runs']} runs): "
        f"{startup['median'] * 1000:.0f} ms [{startup['min'] * 1000:.0f}-"
        f"{startup['max'] * 1000:.0f}], peak RSS "
        f"{results['layer_startup']['peak_rss_mb']['median']:.1f} MB"
    )
    lines.append(f"diff_id: {results['layer_none']['diff_id']}")
    lines.extend(_format_registry(report))
    lines.extend(_format_pants(report))
    return "\n".join(lines)


def _met(flag: bool) -> str:
    return "met" if flag else "NOT met"


def _spread(seconds: dict) -> str:
    return f"{seconds['median']:.2f} s [{seconds['min']:.2f}-{seconds['max']:.2f}]"


def _spread_ms(seconds: dict) -> str:
    return (f"{seconds['median'] * 1000:.1f} ms [{seconds['min'] * 1000:.1f}-"
            f"{seconds['max'] * 1000:.1f}]")


def _counts(per_run: list) -> str:
    """Per-run counts, e.g. of the layer Processes each run ran: "1,1,1"."""
    return ",".join(str(len(item) if isinstance(item, list) else item) for item in per_run)


_CHANGES = {"every_node": "every node", "largest_node": "largest node",
            "smallest_node": "smallest node"}


def _format_rebuilds(pants: dict) -> List[str]:
    widths = (22, 14, 24, 14, 10, 10, 10, 10)
    lines = [_row(("package after a change", "format", "wall s [min-max]", "layers run",
                   "written MB", "wchar MB", "layer MB", "output MB"), widths),
             _row(tuple("-" * w for w in widths), widths)]
    for name, label in _CHANGES.items():
        for fmt, row in pants["rebuilds"][name].items():
            lines.append(_row((
                f"{label} ({len(row['changed'])} file{'s' * (len(row['changed']) > 1)})", fmt,
                _spread(row["seconds"]), _counts(row["layer_processes"]),
                f"{row['write_bytes']['median'] / MB:.1f}", f"{row['wchar']['median'] / MB:.1f}",
                f"{row['changed_layer_bytes']['median'] / MB:.1f}",
                f"{row['output_bytes']['median'] / MB:.1f}"), widths))
    return ["  " + line for line in lines]


_TARGETS = {  # key: (label, figure's format, limit's format)
    "one_file_oci": ("one file changed, largest node, oci", "{:.2f} s", "<= {:g} s"),
    "one_file_docker_archive": ("one file changed, largest node, docker-archive", "{:.2f} s",
                                "<= {:g} s"),
    "every_node_oci": ("every node changed, oci: seed script's time / Strata's", "{:.2f}x",
                       ">= {:g}x"),
    "every_node_docker_archive": ("every node changed, docker-archive: seed script's time / "
                                  "Strata's", "{:.2f}x", ">= {:g}x"),
    "cold": ("cold package / tar | openssl baseline", "{:.1f}x", "<= {:g}x"),
    "noop": ("no-op package", "{:.2f} s", "<= {:g} s"),
    "run": ("pants run after a one-file change", "{:.2f} s", "<= {:g} s"),
    "publish": ("publish after a one-file change: blobs uploaded per run", "{}", "== {} each"),
    "publish_seconds": ("publish after a one-file change", "{:.2f} s", "<= {:g} s"),
    "bytes_written_oci": ("bytes written per one-file change, oci", "{:.1f} MB",
                          f"<= {BYTES_WRITTEN_TARGET:g}x layer + output = {{:.1f}} MB"),
    "bytes_written_docker_archive": ("bytes written per one-file change, docker-archive",
                                     "{:.1f} MB",
                                     f"<= {BYTES_WRITTEN_TARGET:g}x layer + output = {{:.1f}} MB"),
    "demo_oci": ("the demo after a one-line change, oci", "{:.2f} s", "<= {:g} s"),
    "demo_docker_archive": ("the demo after a one-line change, docker-archive", "{:.2f} s",
                            "<= {:g} s"),
}


def _format_target(key: str, target: dict) -> str:
    label, figure, limit = _TARGETS[key]
    if "skipped" in target:
        return f"  {label}: skipped ({target['skipped']})"
    values = [target["figure"], target["limit"]]
    if key.startswith("bytes_written"):
        values = [value / MB for value in values]
    if key == "publish":
        values[0] = _counts(values[0])
    return (f"  {label}: {figure.format(values[0])} (target {limit.format(values[1])}: "
            f"{_met(target['met'])})")


def _format_remote(pants: dict) -> List[str]:
    """Local against remote execution on this machine: the protocol's cost."""
    remote = pants["remote_execution"]
    title = "remote execution (a buildbox-casd worker on this machine; the protocol's cost)"
    if "skipped" in remote:
        return [f"{title}: skipped ({remote['skipped']})"]
    cold, changed = remote["cold"], remote["one_file_change"]
    local_cold = pants["cold_package"]["seconds"]
    local_changed = pants["rebuilds"]["largest_node"]["docker-archive"]["seconds"]["median"]
    return [
        title,
        f"  cold package, docker-archive: {cold['seconds']:.1f} s remote, {local_cold:.1f} s "
        f"local ({cold['seconds'] / local_cold:.2f}x); Processes run remotely "
        f"{cold['remote_execution_requests']}, here {cold['local_execution_requests']}",
        f"  after a one-file change (largest node), pantsd warm: {_spread(changed['seconds'])} "
        f"remote, median {local_changed:.2f} s local "
        f"({changed['seconds']['median'] / local_changed:.2f}x); layers run "
        f"{_counts(changed['layer_processes'])}, Processes run remotely "
        f"{_counts(changed['remote_execution_requests'])}, here "
        f"{_counts(changed['local_execution_requests'])}",
    ]


def _format_pull(label: str, pull: dict) -> str:
    return (f"  {label}: manifest in {pull['manifest_seconds']:.2f} s, every blob in "
            f"{pull['seconds']:.2f} s ({pull['layers']} layers, {pull['bytes'] / MB:.1f} MB); "
            f"{pull['packages']} packages, layers built {pull['layers_built']}, reused "
            f"{pull['layers_reused']}")


def _format_registry(report: dict) -> List[str]:
    """The Debian registry's pulls: cold, cached, and a new combination after a cached one."""
    registry, title = report["registry"], "the Debian registry, pulled over HTTP on 127.0.0.1"
    if "skipped" in registry:
        return ["", f"{title}: skipped ({registry['skipped']})"]
    cold, cached, extended = registry["cold"], registry["cached"], registry["extended"]
    target = report["targets"]["registry_cached"]
    return [
        "",
        f"{title} ({registry['suite']}, {registry['architecture']}; started with a fresh "
        f"cache in {registry['start_seconds']:.1f} s)",
        _format_pull(f"{cold['image']}, cold cache", cold),
        f"  {cached['image']} again (cached): manifest in {_spread_ms(cached['manifest_seconds'])}"
        f", every blob in {_spread(cached['seconds'])}; images built "
        f"{_counts(cached['images_built'])}",
        _format_pull(f"{extended['image']} after it", extended),
        f"  pulled again, to the manifest: {target['figure']:.3f} s (target <= "
        f"{target['limit']:g} s: {_met(target['met'])})",
    ]


def _format_pants(report: dict) -> List[str]:
    pants, targets = report["pants"], report["targets"]
    lines = ["", "end to end through Pants"]
    if "skipped" in pants:
        return lines + [f"  skipped: {pants['skipped']}"]
    tree, nodes = report["tree"], pants["node_bytes"]
    cold, noop = pants["cold_package"], pants["noop_package"]
    seed, run, demo = pants["seed_baseline"], pants["run"], pants["demo"]
    publish = pants["publish"]
    first, second, changed = publish["first"], publish["second"], publish["one_file_change"]
    lines += [
        f"  the tree without its {tree['symlinks']} symlinks, as {pants['nodes']} `files` "
        "nodes of two oci_images (docker-archive, oci); largest node "
        f"{nodes['largest']['node']} ({nodes['largest']['bytes'] / MB:.1f} MB), smallest "
        f"{nodes['smallest']['node']} ({nodes['smallest']['bytes'] / MB:.1f} MB)",
        "  seed baseline (stream_layered_image.py, the same layers, to /dev/null): "
        + (f"skipped ({seed['skipped']})" if "skipped" in seed else _spread(seed["seconds"])),
        f"  cold package (empty local store, no pantsd): {cold['seconds']:.1f} s, "
        f"{cold['layer_processes']} layer processes; {cold['ratio_to_baseline']:.1f}x the "
        "baseline's time",
        f"  no-op package (pantsd warm): {_spread(noop['seconds'])}, processes run: "
        f"{len(noop['processes'])}; pantsd RSS {noop['pantsd_rss_mb'] or 0:.0f} MB",
        "",
        *_format_rebuilds(pants),
        "",
        "  pants run //:image (podman loader, the harness's private storage) after a one-file "
        "change: " + (f"skipped ({run['skipped']})" if "skipped" in run else
                      f"{_spread(run['seconds'])}, layers run {_counts(run['layer_processes'])}, "
                      f"{run['image']} in storage: checked"),
        "publish to a docker-registry on 127.0.0.1",
        f"  first push: {first['blobs_uploaded']} blobs, {first['bytes_uploaded'] / MB:.1f} MB "
        f"uploaded in {first['seconds']:.1f} s",
        f"  second, identical push: {second['blobs_uploaded']} blobs, "
        f"{second['bytes_uploaded']} bytes uploaded, {second['blobs_present']} already present "
        f"(target 0 bytes: {_met(targets['second_push_zero_bytes_met'])})",
        f"  after a one-file change: {_spread(changed['seconds'])}, blobs uploaded "
        f"{_counts(changed['blobs_uploaded'])}, MB uploaded "
        + ",".join(f"{count / MB:.1f}" for count in changed["bytes_uploaded"])
        + f", already present {_counts(changed['blobs_present'])}",
        *_format_remote(pants),
        "the demo after a one-line change to app/hello/main.py: "
        + (f"skipped ({demo['skipped']})" if "skipped" in demo else ""),
        *("" if "skipped" in demo else
          (f"  {row['target']} ({fmt}): {_spread(row['seconds'])}, processes run "
           f"{_counts(row['processes'])}, of them layers {_counts(row['layer_processes'])}"
           for fmt, row in demo["formats"].items())),
        "",
        "targets (issue 29; medians)",
        *(_format_target(key, targets[key]) for key in _TARGETS),
        "  layer Processes: exactly the changed layers ran in every rebuild: "
        + _met(targets["layer_processes_met"]),
    ]
    return lines


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=500, help="tree size (default 500)")
    parser.add_argument("--files", type=int, default=20000,
                        help="regular files in the tree (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="tree seed (default 0)")
    parser.add_argument("--reps", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--big-file-mb", type=float, default=2048,
                        help="size of the single large file (default 2048; 0 skips it)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--python", default=None,
                        help="interpreter for the layer tool (default: the first python3 in "
                             f"{', '.join(PYTHON_SEARCH_PATHS)}, as Pants picks it)")
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "src/python",
                        help="the source root holding the strata package (default: this "
                             "checkout's src/python)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to create the scratch directory (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--no-pants", dest="pants", action="store_false",
                        help="skip the end-to-end rows (Pants and docker-registry)")
    parser.add_argument("--baselines", type=Path, default=REPO_ROOT.parent / "shared/baselines",
                        help="where stream_layered_image.py (the seed baseline) is (default: "
                             "../shared/baselines beside this checkout)")
    parser.add_argument("--no-registry", dest="registry", action="store_false",
                        help="skip the Debian registry's pulls (a fresh cache downloads Debian "
                             "packages for them)")
    parser.add_argument("--registry-image", default="shell/python3.11",
                        help="the image the registry rows pull cold, then cached (default "
                             "shell/python3.11)")
    parser.add_argument("--registry-extra", default="curl",
                        help="the package the last registry row adds to --registry-image "
                             "(default curl)")
    parser.add_argument("--no-demo", dest="demo", action="store_false",
                        help="skip //app:image after a one-line change (a cold cache downloads "
                             "Debian packages for it); the demo files come from the working "
                             "directory, so run from the repo root")
    args = parser.parse_args(argv)
    if args.files < 1 or args.reps < 1 or args.size_mb <= 0 or args.big_file_mb < 0:
        parser.error("--files and --reps must be >= 1, --size-mb > 0, --big-file-mb >= 0")
    if not (args.src / "strata/core/__main__.py").is_file():
        parser.error(f"--src {args.src}: no strata/core/__main__.py there")
    args.src = args.src.resolve()
    args.python = args.python or default_python()
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="strata-bench-", dir=args.workdir))
    try:
        report = run_bench(args, work)
    except RuntimeError as e:
        log(str(e))
        return 1
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
