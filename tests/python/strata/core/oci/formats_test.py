"""`assemble` over every output format: the model's checks, determinism, the CLI; and the
helpers the per-format tests share (imported by module name)."""

import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import tarfile
import tracemalloc

import pytest

import strata
from strata.core import cli as core_cli
from strata.core.oci import image
from strata.core.oci.formats import FORMATS
from strata.core.build import layer
from strata.core.build.spec import LayerSpec


def build_layer(spec: dict, sandbox_root, out_dir) -> dict:
    """The `layer` subcommand's work, on a spec as JSON data (what the rules write)."""
    return layer.build_layer(LayerSpec.from_json(spec), sandbox_root, out_dir)


ENTRYPOINT = ["/bin/hello"]


LAYER_FILES = [
    {"etc/motd": b"hello\n", "etc/os-release": b"ID=strata\n"},
    {"bin/hello": b"#!/bin/sh\necho hi\n", "etc/motd": b"bye\n"},
]


def tar_bytes(files: dict) -> bytes:
    """A deterministic layer tar built with tarfile, so these tests do not depend on layer.py."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs = sorted({os.path.dirname(p) for p in files} - {""})
        for path in sorted(dirs + list(files)):
            info = tarfile.TarInfo(path)
            info.mtime, info.uname, info.gname = 1, "root", "root"
            if path in files:
                info.size, info.mode = len(files[path]), 0o755 if path.startswith("bin/") else 0o644
                tar.addfile(info, io.BytesIO(files[path]))
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
    return buf.getvalue()


def write_layer(directory, tar: bytes, compression="none") -> str:
    """A layer directory as `layer` writes it: the blob and layer.json."""
    blob = tar
    if compression == "gzip":
        blob = gzip.compress(tar, mtime=0)
    elif compression == "zstd":
        zstd = tool("zstd")
        blob = subprocess.run(
            [zstd, "-q", "-c"], input=tar, stdout=subprocess.PIPE, check=True
        ).stdout
    name = {"none": "layer.tar", "gzip": "layer.tar.gz", "zstd": "layer.tar.zst"}[compression]
    os.makedirs(directory)
    pathlib.Path(directory, name).write_bytes(blob)
    info = {
        "diff_id": image.sha256_digest(tar),
        "size": len(tar),
        "blob": name,
        "digest": image.sha256_digest(blob),
        "blob_size": len(blob),
        "compression": compression,
        "entries": 0,
    }
    write_json(pathlib.Path(directory, "layer.json"), info)
    return str(directory)


def write_json(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def make_spec(tmp_path, fmt="docker-archive", compression="none", tag="v1", layers=None) -> str:
    """An image spec (written to tmp_path) over LAYER_FILES, or over the given layers."""
    if layers is None:
        layers = [
            {
                "dir": write_layer(
                    tmp_path / "layers" / f"{fmt}-{compression}-{i}", tar_bytes(files), compression
                ),
                "comment": f"layer {i}",
            }
            for i, files in enumerate(LAYER_FILES)
        ]
    spec = {
        "format": fmt,
        "layers": layers,
        "config": {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:01Z",
            "config": {"Entrypoint": ENTRYPOINT, "Env": ["A=b"]},
        },
        "repository": "app/image",
        "tag": tag,
    }
    return write_json(tmp_path / f"spec-{fmt}-{compression}.json", spec)


def assemble(tmp_path, spec, name="out"):
    out, metadata = tmp_path / name, tmp_path / f"{name}.json"
    assert (
        core_cli.main(["assemble", "--spec", spec, "--out", str(out), "--metadata", str(metadata)]) == 0
    )
    return out, json.loads(metadata.read_text())


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def tool(name: str) -> str:
    """Real tools are the strict check; CI must have them, a workstation may not."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required under CI=true (build-support/install-system-tools.sh)")
    pytest.skip(f"{name} is not installed (build-support/install-system-tools.sh)")


def run(tmp_path, *argv):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(scratch))
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def unpack_and_check(tmp_path, transport_ref: str):
    """skopeo reads the image into a fresh layout, umoci applies its layers: both verify digests."""
    skopeo, umoci = tool("skopeo"), tool("umoci")
    copy = tmp_path / "copy"
    run(tmp_path, skopeo, "--insecure-policy", "copy", "--quiet", transport_ref, f"oci:{copy}:t")
    bundle = tmp_path / "bundle"
    rootless = [] if os.geteuid() == 0 else ["--rootless"]
    run(tmp_path, umoci, "unpack", *rootless, "--image", f"{copy}:t", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/motd").read_bytes() == b"bye\n"
    assert (rootfs / "etc/os-release").read_bytes() == b"ID=strata\n"
    assert os.access(rootfs / "bin/hello", os.X_OK)
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["args"] == ENTRYPOINT
    assert "A=b" in runtime["process"]["env"]


def read_docker_archive(path):
    with tarfile.open(path) as tar:
        names = tar.getnames()
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return names, members


def test_tag_derived_from_content(tmp_path):
    out, metadata = assemble(tmp_path, make_spec(tmp_path, tag=None))
    tag = image.content_tag(metadata["config_digest"])
    assert metadata["repo_tag"] == f"app/image:{tag}"
    (manifest,) = json.loads(read_docker_archive(out)[1]["manifest.json"])
    assert manifest["RepoTags"] == [f"app/image:{tag}"]


def test_assemble_is_deterministic(tmp_path):
    """Two runs give the same bytes, and so the same content-derived tag."""
    for fmt in FORMATS:
        spec = make_spec(tmp_path, fmt, "gzip" if fmt != "docker-archive" else "none", tag=None)
        first, meta1 = assemble(tmp_path, spec, f"{fmt}-1")
        second, meta2 = assemble(tmp_path, spec, f"{fmt}-2")
        assert meta1 == meta2
        assert meta1["repo_tag"] == "app/image:" + image.content_tag(meta1["config_digest"])
        if fmt == "oci":
            assert tree_digests(first) == tree_digests(second)
        else:
            assert first.read_bytes() == second.read_bytes()


def tree_digests(root) -> dict:
    return {
        os.path.relpath(os.path.join(d, f), root): sha256_file(os.path.join(d, f))
        for d, _, files in os.walk(root)
        for f in files
    }


def make_sandbox(root, compression: str) -> list:
    """A sandbox as the rules lay it out (sources, layer specs); returns the layer spec paths."""
    files = {
        "nodes/0/motd": b"hello\n",
        "nodes/0/os-release": b"ID=strata\n",
        "custom/hello": b"#!/bin/sh\necho hi\n",
        "custom/motd": b"bye\n",
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    settings = {"compression": compression, "zstd": None}
    specs = [
        {"settings": settings, "trees": [{"source": "nodes/0", "dest": "etc", "executables": []}]},
        {
            "settings": settings,
            "entries": [
                {"path": "bin/hello", "type": "file", "source": "custom/hello", "mode": 0o755},
                {"path": "bin/sh", "type": "symlink", "target": "hello"},
                {"path": "etc/motd", "type": "file", "source": "custom/motd", "mode": 0o644},
            ],
        },
    ]
    return [
        write_json(root / f"layer-{compression}-{i}.json", spec) for i, spec in enumerate(specs)
    ]


def image_spec(root, fmt: str, layer_dirs: list) -> str:
    spec = json.loads(pathlib.Path(make_spec(root, fmt, layers=[])).read_text())
    spec["layers"] = [{"dir": d, "comment": f"layer {i}"} for i, d in enumerate(layer_dirs)]
    return write_json(root / f"image-{fmt}.json", spec)


@pytest.mark.parametrize(
    "fmt, compression", [("docker-archive", "none"), ("oci", "gzip"), ("oci-archive", "gzip")]
)
def test_layers_from_build_layer(tmp_path, monkeypatch, fmt, compression):
    """The colleague's `layer` output feeds assemble as is; run through the CLI's dispatch."""
    monkeypatch.chdir(tmp_path)
    layer_dirs = []
    for i, spec in enumerate(make_sandbox(tmp_path, compression)):
        layer_dirs.append(f"layers/{i}")
        build_layer(json.loads(pathlib.Path(spec).read_text()), tmp_path, tmp_path / layer_dirs[-1])
    spec = image_spec(tmp_path, fmt, layer_dirs)
    assert (
        core_cli.main(["assemble", "--spec", spec, "--out", "image", "--metadata", "image.json"])
        == 0
    )
    metadata = json.loads((tmp_path / "image.json").read_text())
    assert [l["diff_id"] for l in metadata["layers"]] == [
        json.loads((tmp_path / d / "layer.json").read_text())["diff_id"] for d in layer_dirs
    ]
    if fmt == "oci":
        oci_image_tool_validate(tmp_path, tmp_path / "image", "v1")
    unpack_and_check(
        tmp_path, f"{fmt}:{tmp_path / 'image'}" + ("" if fmt == "docker-archive" else ":v1")
    )


def run_cli(python: str, sandbox, *argv) -> bytes:
    """The core as a Process runs it: `-E -s -B -m strata.core` in the sandbox root."""
    proc = subprocess.run(
        [python, "-E", "-s", "-B", "-m", "strata.core", *argv],
        cwd=sandbox,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.returncode == 0, f"{argv}: {proc.stderr.decode()}"
    return proc.stdout


def test_cli_is_byte_identical_across_interpreters(tmp_path):
    """Processes may get either interpreter: 3.9 and 3.11 must write the same bytes, and
    `stream` must print exactly the docker-archive `assemble` writes."""
    package = os.path.dirname(strata.__file__)
    results = []
    for version in ("3.9", "3.11"):
        python = tool(f"python{version}")
        sandbox = tmp_path / version
        shutil.copytree(package, sandbox / "strata", ignore=shutil.ignore_patterns("__pycache__"))
        outputs = {}
        for compression, formats in (
            ("none", ["docker-archive"]),
            ("gzip", ["oci", "oci-archive"]),
        ):
            layer_dirs = []
            for i, spec in enumerate(make_sandbox(sandbox, compression)):
                layer_dirs.append(f"layers/{compression}-{i}")
                run_cli(
                    python,
                    sandbox,
                    "layer",
                    "--spec",
                    os.path.basename(spec),
                    "--out",
                    layer_dirs[-1],
                )
            for fmt in formats:
                spec = os.path.basename(image_spec(sandbox, fmt, layer_dirs))
                run_cli(
                    python,
                    sandbox,
                    "assemble",
                    "--spec",
                    spec,
                    "--out",
                    fmt,
                    "--metadata",
                    f"{fmt}.json",
                )
                out = sandbox / fmt
                outputs[fmt] = tree_digests(out) if fmt == "oci" else sha256_file(out)
                outputs[f"{fmt}.json"] = (sandbox / f"{fmt}.json").read_text()
        streamed = run_cli(python, sandbox, "stream", "--spec", "image-docker-archive.json")
        assert streamed == (sandbox / "docker-archive").read_bytes()
        results.append(outputs)
    assert results[0] == results[1]


def oci_image_tool_validate(tmp_path, layout, tag):
    oci_image_tool = tool("oci-image-tool")
    help_text = subprocess.run(
        [oci_image_tool, "validate", "--help"], stdout=subprocess.PIPE, text=True
    ).stdout
    # Releases before 1.0 call the layout type "image".
    kind = "imageLayout" if "imageLayout" in help_text else "image"
    run(tmp_path, oci_image_tool, "validate", "--type", kind, "--ref", f"name={tag}", str(layout))


def test_outputs_replace_existing(tmp_path):
    spec = make_spec(tmp_path, "oci")
    out = tmp_path / "out"
    (out / "stale").mkdir(parents=True)
    assemble(tmp_path, spec)
    assert not (out / "stale").exists() and (out / "index.json").exists()
    assert not (tmp_path / "out.tmp").exists()


def test_large_layer_streams_in_constant_memory(tmp_path):
    size = 48 << 20
    layer_dir = tmp_path / "big"
    layer_dir.mkdir()
    with open(layer_dir / "layer.tar", "wb") as f:
        for _ in range(size >> 20):
            f.write(b"\x5a" * (1 << 20))
    digest = sha256_file(layer_dir / "layer.tar")
    info = {
        "diff_id": digest,
        "size": size,
        "blob": "layer.tar",
        "digest": digest,
        "blob_size": size,
        "compression": "none",
        "entries": 1,
    }
    (layer_dir / "layer.json").write_text(json.dumps(info))
    layers = [{"dir": str(layer_dir), "comment": "big"}]
    for fmt in ("docker-archive", "oci-archive"):
        spec = make_spec(tmp_path, fmt, layers=layers)
        tracemalloc.start()
        try:
            out, _ = assemble(tmp_path, spec, fmt)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20, f"{fmt}: peak {peak} bytes"
        assert os.path.getsize(out) > size


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s, d: s.update(format="tar"), "format must be one of"),
        (lambda s, d: s.update(repository="App"), "invalid repository 'App'"),
        (lambda s, d: s.update(tag="-x"), "invalid tag '-x'"),
        (lambda s, d: s.update(extra=1), "unknown keys \\['extra'\\]"),
        (lambda s, d: s["config"].update(created="yesterday"), "RFC 3339"),
        (lambda s, d: s["layers"].append({"dir": str(d / "missing")}), "No such file"),
        (lambda s, d: s["layers"].append({"dir": 3}), "layers\\[2\\] must be an object"),
        (lambda s, d: truncate_blob(s), "has 3 bytes, layer.json says"),
        (lambda s, d: edit_layer_json(s, digest="sha256:x"), "not a sha256 digest"),
        (lambda s, d: edit_layer_json(s, blob="../x"), "blob must be a file name"),
        (lambda s, d: edit_layer_json(s, compression="xz"), "compression must be one of"),
    ],
)
def test_bad_input_exits_1(tmp_path, capsys, mutate, message):
    spec = json.loads(pathlib.Path(make_spec(tmp_path)).read_text())
    mutate(spec, tmp_path)
    write_json(tmp_path / "bad.json", spec)
    code = core_cli.main(
        ["assemble", "--spec", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("strata.core assemble: error: ")
    assert re.search(message, err), err
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "o.tmp")


def test_a_config_larger_than_strata_reads_of_a_base_is_refused(tmp_path, capsys):
    spec_path = make_spec(tmp_path, "oci")
    spec = json.loads(pathlib.Path(spec_path).read_text())
    spec["config"]["config"]["Labels"] = {"big": "x" * image.MAX_JSON_SIZE}
    write_json(pathlib.Path(spec_path), spec)
    assert core_cli.main(["assemble", "--spec", spec_path, "--out", str(tmp_path / "o")]) == 1
    assert re.search(r"the image config is \d+ bytes, more than the 4194304 bytes Strata .*; "
                     r"largest: config.Labels \d+ bytes", capsys.readouterr().err)


def test_usage_errors_exit_2(tmp_path, capsys):
    assert core_cli.main(["assemble", "--out", str(tmp_path / "o")]) == 2
    assert core_cli.main(["stream", "--bogus"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "strata.core assemble: error: the following arguments are required: --spec",
        "strata.core stream: error: unrecognized argument: --bogus",
    ]


def test_unwritable_output_exits_1(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code = core_cli.main(
        ["assemble", "--spec", make_spec(tmp_path), "--out", str(tmp_path / "file" / "o")]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "strata.core assemble: error:" in err


def truncate_blob(spec):
    pathlib.Path(spec["layers"][0]["dir"], "layer.tar").write_bytes(b"abc")


def edit_layer_json(spec, **changes):
    path = pathlib.Path(spec["layers"][0]["dir"], "layer.json")
    write_json(path, dict(json.loads(path.read_text()), **changes))
