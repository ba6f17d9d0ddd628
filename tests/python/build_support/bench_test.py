"""Smoke test of the benchmark (build-support/bench/bench.py) at a tiny size: it runs end to end,
through Pants and a registry too, prints its table and writes JSON with every expected key.
Timings are never checked: they belong to the machine, not to the code; what the end-to-end rows
count (processes run, bytes pushed) is."""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import strata.core
from strata.core.__main__ import layer_sources
from strata_harness import assert_valid_image, require_tool

BENCH = Path("build-support/bench/bench.py")  # materialised by the `files` dependency
TOOLS = ("bash", "tar", "openssl", "zstd")
MEASUREMENTS = ("layer_none", "baseline", "layer_big_file", "layer_gzip", "layer_zstd",
                "layer_startup")
SUMMARIES = ("seconds", "mb_per_s", "cpu_seconds", "peak_rss_mb")


def bench_script() -> Path:
    bench = BENCH if BENCH.is_file() else Path(__file__).parents[3] / BENCH
    assert bench.is_file(), f"{BENCH} is missing"
    return bench.resolve()


def load_bench():
    spec = importlib.util.spec_from_file_location("strata_bench", bench_script())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_tools() -> None:
    path = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=path)]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing {missing}: CI must run the benchmark's every measurement")
        pytest.skip(f"not installed: {missing}")


def baselines() -> Path:
    """The seed baseline's directory beside the main checkout, which may be absent (it is no
    part of the project): the bench then reports the row as skipped."""
    return Path(os.environ.get("STRATA_ROOT", Path.cwd())).resolve().parent / "shared/baselines"


def test_tiny_run_prints_the_table_and_writes_json(tmp_path):
    require_tools()
    for tool in ("docker-registry", "podman", "skopeo", "runc"):  # publish and run rows
        require_tool(tool)
    src = Path(strata.core.__file__).resolve().parents[2]
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(bench_script()), "--size-mb", "5", "--files", "200", "--reps", "1",
         "--big-file-mb", "20", "--seed", "7", "--json", str(out), "--src", str(src),
         "--workdir", str(tmp_path), "--keep", "--baselines", str(baselines()), "--no-demo",
         # The registry's rows on a small image: its few .debs, not Python's.
         "--registry-image", "shell", "--registry-extra", "hello"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    # The images the end-to-end rows built (kept with --keep) pass the strict check.
    dist = tmp_path.glob("strata-bench-*/pants/pants-repo/dist")
    (dist,) = list(dist)
    assert_valid_image(dist / "image.tar")
    assert_valid_image(dist / "image-oci", "oci")

    for label in ("strata layer, tree (none)", "baseline: tar | openssl sha256",
                  "strata layer, 20 MB file (none)", "strata layer, tree (gzip)",
                  "strata layer, tree (zstd)", "ratio strata/baseline:",
                  "peak RSS of the layer tool:", "MB/s", "peak RSS MB",
                  "layer start-up (a one-file layer, 20 runs):"):
        assert label in done.stdout, done.stdout
    assert "skipped" not in done.stdout.replace("skipped (--no-demo)", "").replace(
        f"skipped ({baselines() / 'stream_layered_image.py'} is absent", "")

    report = json.loads(out.read_text(encoding="utf-8"))
    assert {"schema", "params", "machine", "tools", "tree", "results", "ratio",
            "targets"} <= set(report)
    assert report["params"]["files"] == 200 and report["params"]["reps"] == 1
    assert report["tree"]["files"] == 200 and report["tree"]["bytes"] == 5 * 2**20
    assert report["tree"]["symlinks"] > 0 and report["tree"]["executables"] > 0
    assert set(report["results"]) == set(MEASUREMENTS)
    for key in MEASUREMENTS:
        result = report["results"][key]
        assert result["runs"] == (20 if key == "layer_startup" else 1)
        for name in SUMMARIES:
            assert set(result[name]) == {"median", "min", "max"}, (key, name)
            assert result[name]["min"] <= result[name]["median"] <= result[name]["max"]
    assert report["results"]["layer_big_file"]["input_mb"] == 20
    none = report["results"]["layer_none"]
    assert none["diff_id"].startswith("sha256:") and none["entries"] > 200
    for kind in ("gzip", "zstd"):
        assert report["results"][f"layer_{kind}"]["digest"].startswith("sha256:")
        assert report["results"][f"layer_{kind}"]["blob_mb"] > 0
    assert isinstance(report["ratio"], float)
    targets = report["targets"]
    assert (targets["ratio_min"], targets["peak_rss_max_mb"]) == (0.8, 150)
    assert isinstance(targets["ratio_met"], bool) and isinstance(targets["peak_rss_met"], bool)

    # The Debian registry: the cold pull built every layer, the cached ones built nothing,
    # and the new combination built only its new package's layers.
    registry = report["registry"]
    assert "skipped" not in registry, registry
    cold, cached, extended = registry["cold"], registry["cached"], registry["extended"]
    assert (cold["image"], extended["image"]) == ("shell", "shell/hello")
    assert cold["layers_built"] == cold["layers"] > 2 and cold["layers_reused"] == 0, cold
    assert cold["images_built"] == 1 and cold["bytes"] > 0
    assert cached["runs"] == 1 and cached["images_built"] == [0], cached
    assert set(cached["manifest_seconds"]) == {"median", "min", "max"}
    assert extended["layers_reused"] == cold["layers"], extended
    assert extended["layers_built"] == extended["layers"] - cold["layers"] >= 1, extended
    assert set(targets["registry_cached"]) == {"figure", "limit", "met"}
    for label in ("the Debian registry, pulled over HTTP", "shell, cold cache",
                  "shell again (cached)", "shell/hello after it"):
        assert label in done.stdout, done.stdout

    # End to end through Pants: these are behaviours, not timings, so they are checked.
    pants = report["pants"]
    assert "skipped" not in pants, pants
    assert pants["cold_package"]["layer_processes"] == pants["nodes"] == 10
    assert pants["noop_package"]["processes"] == []
    assert pants["noop_package"]["pantsd_rss_mb"] > 0  # pantsd was running
    seed = pants["seed_baseline"]
    if (baselines() / "stream_layered_image.py").is_file():
        assert seed["runs"] == 1 and seed["layers"] == 10, seed
    else:
        assert "is absent" in seed["skipped"], seed
    # Each rebuild ran exactly the layer Processes of the nodes it changed, in both formats; the
    # layers whose digests changed, the output and pantsd's writes were all measured.
    assert set(pants["rebuilds"]) == {"every_node", "largest_node", "smallest_node"}
    for name, layers in (("every_node", 10), ("largest_node", 1), ("smallest_node", 1)):
        assert set(pants["rebuilds"][name]) == {"docker-archive", "oci"}
        for fmt, row in pants["rebuilds"][name].items():
            assert row["runs"] == 1 and len(row["changed"]) == layers, (name, fmt)
            assert [len(run) for run in row["layer_processes"]] == [layers], (name, fmt, row)
            for key in ("seconds", "write_bytes", "wchar", "cancelled_write_bytes",
                        "changed_layer_bytes", "output_bytes"):
                assert set(row[key]) == {"median", "min", "max"}, (name, fmt, key)
            assert row["write_bytes"]["min"] > 0 and row["output_bytes"]["min"] > 0
            assert 0 < row["changed_layer_bytes"]["min"]
            if fmt == "docker-archive":  # the archive, whole; a linked layout's own files are few
                assert row["changed_layer_bytes"]["min"] <= row["output_bytes"]["min"]
    run = pants["run"]  # the image was loaded into podman's storage, or the bench fails
    assert run["runs"] == 1 and [len(layers) for layers in run["layer_processes"]] == [1], run
    first, second = pants["publish"]["first"], pants["publish"]["second"]
    assert first["blobs_uploaded"] == 11 and first["bytes_uploaded"] > 0  # 10 layers, config
    assert (second["blobs_uploaded"], second["bytes_uploaded"], second["blobs_present"]) == (
        0, 0, 11)
    changed = pants["publish"]["one_file_change"]
    assert (changed["blobs_uploaded"], changed["blobs_present"]) == ([2], [9]), changed
    assert len(changed["manifests"]) == 1 and changed["manifests"][0], changed
    # Remote execution on a buildbox-casd worker: every Process of the cold build ran there,
    # and each rebuild ran the changed layer there too.
    remote = pants["remote_execution"]
    assert remote["cold"]["local_execution_requests"] == 0, remote
    assert remote["cold"]["remote_execution_requests"] >= 10, remote
    rebuilt = remote["one_file_change"]
    assert [len(layers) for layers in rebuilt["layer_processes"]] == [1], remote
    assert rebuilt["local_execution_requests"] == [0] and rebuilt["remote_execution_requests"][0]
    assert pants["demo"] == {"skipped": "--no-demo"}
    assert targets["layer_processes_met"] and targets["second_push_zero_bytes_met"]
    assert targets["publish"]["met"]
    assert targets["demo_oci"] == targets["demo_docker_archive"] == {"skipped": "--no-demo"}
    for key in ("one_file_oci", "one_file_docker_archive", "cold", "noop", "run",
                "publish_seconds", "bytes_written_oci", "bytes_written_docker_archive"):
        assert set(targets[key]) == {"figure", "limit", "met"}, key
        assert isinstance(targets[key]["met"], bool), key
    for key in ("every_node_oci", "every_node_docker_archive"):
        assert set(targets[key]) in ({"figure", "limit", "met"}, {"skipped"}), key
    for label in ("end to end through Pants", "seed baseline", "cold package", "no-op package",
                  "package after a change", "every node (10 files)", "largest node (1 file)",
                  "smallest node (1 file)", "pants run //:image", "publish to a docker-registry",
                  "second, identical push", "after a one-file change", "targets (issue 29",
                  "bytes written per one-file change, oci", "remote execution (a buildbox-casd"):
        assert label in done.stdout, done.stdout


def test_the_sandbox_holds_just_the_layer_modules_and_no_list_is_an_error(tmp_path):
    bench = load_bench()
    src = Path(strata.core.__file__).resolve().parents[2]
    bench.make_sandbox(tmp_path / "sandbox", src)
    core = tmp_path / "sandbox/strata/core"
    shipped = sorted(p.relative_to(core).as_posix() for p in core.rglob("*") if p.is_file())
    assert shipped == layer_sources(Path(strata.core.__file__).parent)

    # A checkout whose core does not say what layer processes get: no guessing, a clear stop.
    listless = tmp_path / "listless"
    (listless / "strata/core").mkdir(parents=True)
    (listless / "strata/core/__main__.py").write_text('"""No layer_sources here."""\n')
    with pytest.raises(SystemExit, match=r"__main__\.py has no layer_sources"):
        bench.make_sandbox(tmp_path / "listless-sandbox", listless)


def tree_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_symlink():
            digest.update(b"L" + os.readlink(path).encode())
        elif path.is_file():
            digest.update(b"F%o" % (path.stat().st_mode & 0o777) + path.read_bytes())
        else:
            digest.update(b"D")
    return digest.hexdigest()


def test_the_tree_is_a_function_of_its_arguments(tmp_path):
    bench = load_bench()
    stats = [bench.generate_tree(tmp_path / name, 2 << 20, 120, seed)
             for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    assert stats[0] == stats[1] and stats[0]["files"] == 120 and stats[0]["bytes"] == 2 << 20
    a, b, c = (tree_fingerprint(tmp_path / name) for name in "abc")
    assert a == b != c
