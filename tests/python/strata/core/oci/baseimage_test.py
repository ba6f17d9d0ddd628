import glob
import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tracemalloc

import pytest

from strata.core import cli as core_cli
from strata.core.oci import baseimage, image
from strata.core.oci.formats import FORMATS
from strata.core.oci.layer_reader import DecompressedReader
from strata.core.oci.model import load_layer
from strata.core.build import layer
from strata.core.build.spec import LayerSpec
from strata.core.oci.spec import LayerRef
from strata.core.oci import media_types
from strata_harness import (
    assert_valid_image,
    layer_tar,
    make_busybox_image,
    make_docker_archive,
    make_oci_layout,
    require_tool,
)
from strata_harness.tools import unavailable


# The formats that hold an image: not `rootfs` (its filesystem), nor `descriptor` (no blob).
IMAGE_FORMATS = [fmt for fmt in FORMATS if fmt != "rootfs" and FORMATS[fmt].blobs]


def build_layer(spec: dict, sandbox_root, out_dir) -> dict:
    """The `layer` subcommand's work, on a spec as JSON data (what the rules write)."""
    return layer.build_layer(LayerSpec.from_json(spec), sandbox_root, out_dir)


OCI_REF = "org.opencontainers.image.ref.name"
BASE_FILES = {"etc/base.txt": b"from the base\n", "bin/tool": (b"#!/bin/sh\n", 0o755)}
BASE_ENV = ["PATH=/bin", "BASE=1", "SHARED=base"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def tree(root) -> dict:
    """Every file under root by relative path: its digest."""
    return {
        os.path.relpath(os.path.join(d, f), root): file_digest(os.path.join(d, f))
        for d, _, files in os.walk(root)
        for f in files
    }


def read_json(path):
    return json.loads(pathlib.Path(path).read_bytes())


def write_json(path, data) -> str:
    pathlib.Path(path).write_text(json.dumps(data))
    return str(path)


def tar_members(path) -> dict:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def write_tar(path, members: dict) -> pathlib.Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return pathlib.Path(path)


def zstd_path() -> str:
    """The zstd binary (not among the harness' tools): skipped locally, failed under CI."""
    path = shutil.which("zstd")
    if path is None:
        unavailable("zstd is not installed (build-support/install-system-tools.sh)")
    return path


def zstd_compress(data: bytes) -> bytes:
    return subprocess.run(
        [zstd_path(), "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True
    ).stdout


COMPRESS = {
    "none": lambda data: data,
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "zstd": zstd_compress,
}


def compress_docker_archive(src, dst, compression="gzip") -> pathlib.Path:
    """The harness' docker-archive with its layer.tar entries compressed (names unchanged)."""
    members = tar_members(src)
    return write_tar(
        dst,
        {
            name: COMPRESS[compression](data) if name.endswith("/layer.tar") else data
            for name, data in members.items()
        },
    )


def layout_manifest(layout) -> tuple:
    """(index, manifest) of a harness OCI layout (one manifest)."""
    index = read_json(pathlib.Path(layout, "index.json"))
    blobs = pathlib.Path(layout, "blobs", "sha256")
    return index, read_json(blobs / image.digest_hex(index["manifests"][0]["digest"]))


def put_blob(layout, data: bytes, media_type: str) -> dict:
    pathlib.Path(layout, "blobs", "sha256", image.digest_hex(sha256(data))).write_bytes(data)
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def compress_oci_layout(layout, compression="gzip", media_type=None):
    """Rewrites a harness OCI layout's layers compressed (the old blobs stay, unreferenced)."""
    index, manifest = layout_manifest(layout)
    blobs = pathlib.Path(layout, "blobs", "sha256")
    for layer in manifest["layers"]:
        data = COMPRESS[compression]((blobs / image.digest_hex(layer["digest"])).read_bytes())
        media_type = media_type or media_types.layer_media_type(compression, True)
        layer.update(put_blob(layout, data, media_type))
    descriptor = put_blob(layout, image.canonical_json(manifest), media_types.OCI_MANIFEST)
    index["manifests"][0].update(descriptor)
    write_json(pathlib.Path(layout, "index.json"), index)
    return layout


def import_base(tmp_path, archive, *args, name="base", expect=0):
    out = tmp_path / name
    code = core_cli.main(["import-base", "--archive", str(archive), *args, "--out", str(out)])
    assert code == expect
    return out


def base_layers(base) -> list:
    return [
        (read_json(d / "layer.json"), d)
        for d in sorted(pathlib.Path(base, "layers").iterdir())
    ]


def blob_path(layer_dir) -> pathlib.Path:
    return layer_dir / read_json(layer_dir / "layer.json")["blob"]


# import-base


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_import_docker_archive(tmp_path, compression):
    archive = make_docker_archive(tmp_path / "plain.tar", BASE_FILES, env=BASE_ENV)
    if compression != "none":
        archive = compress_docker_archive(archive, tmp_path / "packed.tar", compression)
    base = import_base(tmp_path, archive)
    members = tar_members(archive)
    (entry,) = json.loads(members["manifest.json"])
    assert (base / "config.json").read_bytes() == members[entry["Config"]]
    ((info, layer_dir),) = base_layers(base)
    blob = members[entry["Layers"][0]]
    tar = layer_tar(BASE_FILES)
    assert blob_path(layer_dir).read_bytes() == blob  # verbatim
    assert info == {
        "diff_id": sha256(tar),
        "size": len(tar),
        "blob": {"none": "layer.tar", "gzip": "layer.tar.gz"}[compression],
        "digest": sha256(blob),
        "blob_size": len(blob),
        "compression": compression,
    }
    # The layer dir reads as a `layer` output does.
    assert load_layer(LayerRef(str(layer_dir))).info == info
    assert read_json(base / "base.json") == {
        "config_digest": sha256(members[entry["Config"]]),
        "manifest_digest": sha256(
            image.canonical_json(
                image.make_manifest(
                    members[entry["Config"]],
                    [{"digest": sha256(tar), "blob_size": len(tar), "compression": "none"}],
                    oci=False,
                )
            )
        ),
        "media_type": media_types.DOCKER_MANIFEST,
    }
    assert sorted(os.listdir(base)) == ["base.json", "config.json", "layers"]
    assert not glob.glob(f"{base}.*tmp")


def test_import_gzipped_docker_archive(tmp_path):
    """`docker save | gzip` output, as docker load takes it: still read in place."""
    archive = make_docker_archive(tmp_path / "plain.tar", BASE_FILES)
    packed = tmp_path / "image.tar.gz"
    packed.write_bytes(gzip.compress(archive.read_bytes()))
    assert tree(import_base(tmp_path, packed)) == tree(import_base(tmp_path, archive, name="b"))


def test_import_zstd_docker_archive(tmp_path, capsys):
    """A docker-archive's base.json needs the layers' sizes, so zstd ones need the binary."""
    archive = compress_docker_archive(
        make_docker_archive(tmp_path / "plain.tar", BASE_FILES), tmp_path / "zstd.tar", "zstd"
    )
    import_base(tmp_path, archive, expect=1)
    assert "is zstd: reading one from a docker-archive needs --zstd" in capsys.readouterr().err
    base = import_base(tmp_path, archive, "--zstd", zstd_path())
    ((info, _),) = base_layers(base)
    assert (info["compression"], info["size"]) == ("zstd", len(layer_tar(BASE_FILES)))


def test_import_oci_layout_gzip(tmp_path):
    layout = compress_oci_layout(make_oci_layout(tmp_path / "layout", BASE_FILES, ref="v2"))
    base = import_base(tmp_path, layout)
    index, manifest = layout_manifest(layout)
    ((info, layer_dir),) = base_layers(base)
    layer = manifest["layers"][0]
    blobs = layout / "blobs" / "sha256"
    source_blob = blobs / image.digest_hex(layer["digest"])
    assert blob_path(layer_dir).read_bytes() == source_blob.read_bytes()
    assert (info["compression"], info["digest"], info["blob_size"]) == (
        "gzip", layer["digest"], layer["size"]
    )
    assert info["diff_id"] == sha256(layer_tar(BASE_FILES))
    assert read_json(base / "base.json") == {
        "config_digest": manifest["config"]["digest"],
        "manifest_digest": index["manifests"][0]["digest"],
        "media_type": media_types.OCI_MANIFEST,
    }
    assert (base / "config.json").read_bytes() == (
        blobs / image.digest_hex(manifest["config"]["digest"])
    ).read_bytes()


def tar_layout(layout, path) -> pathlib.Path:
    """An oci-archive: the layout's files in a tar, directories included, as skopeo writes."""
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(layout)):
            tar.add(os.path.join(layout, name), arcname=name)
    return pathlib.Path(path)


def test_import_oci_archive_equals_layout(tmp_path):
    layout = compress_oci_layout(make_oci_layout(tmp_path / "layout", BASE_FILES))
    from_layout = import_base(tmp_path, layout, name="from-layout")
    from_archive = import_base(tmp_path, tar_layout(layout, tmp_path / "image.tar"))
    assert tree(from_archive) == tree(from_layout)


def strata_layers(tmp_path, compression: str) -> list:
    """Two layer dirs written by `layer`."""
    sandbox = tmp_path / f"sandbox-{compression}"
    (sandbox / "src").mkdir(parents=True)
    (sandbox / "src" / "hello.txt").write_bytes(b"hello from strata\n")
    specs = [
        {"settings": {"compression": compression}, "trees": [{"source": "src", "dest": "srv", "executables": []}]},
        {"settings": {"compression": compression},
         "entries": [{"path": "etc/motd", "type": "symlink", "target": "/srv/hello.txt"}]},
    ]
    dirs = []
    for i, spec in enumerate(specs):
        dirs.append(sandbox / f"layer-{i}")
        build_layer(spec, sandbox, dirs[-1])
    return dirs


def image_spec(tmp_path, fmt, layer_dirs, base=None, config=None, name="spec", **extra) -> str:
    spec = {
        "format": fmt,
        "layers": [{"dir": str(d), "comment": f"own {i}"} for i, d in enumerate(layer_dirs)],
        "config": {"created": "1970-01-01T00:00:01Z", "config": config or {}},
        "repository": "strata-test/based",
        "tag": "v1",
        **extra,
    }
    if base is not None:
        spec["base"] = str(base)
    return write_json(tmp_path / f"{name}-{fmt}.json", spec)


def assemble(tmp_path, spec, name, expect=0) -> tuple:
    out, meta, config = (tmp_path / name, tmp_path / f"{name}.json",
                         tmp_path / f"{name}.config.json")
    code = core_cli.main(["assemble", "--spec", spec, "--out", str(out), "--metadata", str(meta),
                          "--config-out", str(config)])
    assert code == expect
    if expect:
        return out, None, None
    return out, read_json(meta), config.read_bytes()


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_import_strata_image(tmp_path, fmt):
    """An image Strata wrote imports to the same digests `assemble` reported, blobs intact."""
    compression = "none" if fmt == "docker-archive" else "gzip"
    dirs = strata_layers(tmp_path, compression)
    out, metadata, config = assemble(tmp_path, image_spec(tmp_path, fmt, dirs), fmt)
    base = import_base(tmp_path, out)
    assert read_json(base / "base.json") == {
        "config_digest": metadata["config_digest"],
        "manifest_digest": metadata["manifest_digest"],
        "media_type": media_types.DOCKER_MANIFEST if fmt == "docker-archive"
        else media_types.OCI_MANIFEST,
    }
    assert (base / "config.json").read_bytes() == config
    for (info, layer_dir), source in zip(base_layers(base), dirs):
        original = read_json(source / "layer.json")
        original.pop("entries")
        assert info == original
        assert blob_path(layer_dir).read_bytes() == blob_path(source).read_bytes()


def merge_layouts(layout, *others):
    """Adds the other layouts' blobs and index entries to `layout`."""
    index = read_json(layout / "index.json")
    for other in others:
        for blob in (other / "blobs" / "sha256").iterdir():
            shutil.copyfile(blob, layout / "blobs" / "sha256" / blob.name)
        index["manifests"] += read_json(other / "index.json")["manifests"]
    write_json(layout / "index.json", index)
    return index


def multi_platform_layout(tmp_path) -> pathlib.Path:
    """index.json -> an index ("multi") of amd64 and arm64/v8 images and an attestation,
    beside a plain image ("single")."""
    layout = make_oci_layout(tmp_path / "multi", {"which": b"amd64\n"}, ref="x")
    arm = make_oci_layout(tmp_path / "arm", {"which": b"arm64\n"}, ref="y")
    single = make_oci_layout(tmp_path / "single", {"which": b"single\n"}, ref="single")
    index = merge_layouts(layout, arm, single)
    amd64, arm64, plain = index["manifests"]
    attestation = put_blob(layout, b'{"schemaVersion":2}', media_types.OCI_MANIFEST)
    nested = {
        "schemaVersion": 2,
        "mediaType": media_types.OCI_INDEX,
        "manifests": [
            dict(amd64, annotations={}, platform={"os": "linux", "architecture": "amd64"}),
            dict(arm64, annotations={},
                 platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
            dict(attestation, annotations={"vnd.docker.reference.type": "attestation-manifest"},
                 platform={"os": "unknown", "architecture": "unknown"}),
        ],
    }
    descriptor = put_blob(layout, image.canonical_json(nested), media_types.OCI_INDEX)
    descriptor["annotations"] = {OCI_REF: "multi"}
    write_json(layout / "index.json", {"schemaVersion": 2, "manifests": [descriptor, plain]})
    return layout


def base_file(base, path="which") -> bytes:
    """A file of the base's (only) layer."""
    ((_, layer_dir),) = base_layers(base)
    with tarfile.open(blob_path(layer_dir)) as tar:
        return tar.extractfile(path).read()


@pytest.mark.parametrize(
    "args, which",
    [
        (["--platform", "linux/arm64"], b"arm64\n"),
        (["--platform", "linux/arm64/v8"], b"arm64\n"),
        (["--ref", "multi", "--platform", "linux/amd64"], b"amd64\n"),
        (["--ref", "single"], b"single\n"),
    ],
)
def test_import_picks_from_an_index(tmp_path, args, which):
    base = import_base(tmp_path, multi_platform_layout(tmp_path), *args)
    assert base_file(base) == which


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "holds 3 images; it has: multi linux/amd64; multi linux/arm64/v8; single linux/"),
        (["--ref", "multi"], "holds 2 images named 'multi'"),
        (["--ref", "nope"], "holds no image named 'nope'"),
        (["--platform", "linux"], "a platform must be os/arch or os/arch/variant"),
    ],
)
def test_import_ambiguous_or_missing_image(tmp_path, capsys, args, message):
    layout = multi_platform_layout(tmp_path)
    out = import_base(tmp_path, layout, *args, expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("strata.core import-base: error: ")
    assert re.search(message, err), err
    assert "--ref" not in err and "--platform" not in err
    assert not out.exists()


def arm_variants_layout(tmp_path) -> pathlib.Path:
    """index.json -> linux/arm/v6 and linux/arm/v7 images, as many multi-arch images have."""
    layout = make_oci_layout(tmp_path / "arm", {"which": b"v6\n"}, ref="v6")
    v7 = make_oci_layout(tmp_path / "v7", {"which": b"v7\n"}, ref="v7")
    index = merge_layouts(layout, v7)
    for descriptor, variant in zip(index["manifests"], ("v6", "v7")):
        descriptor["platform"] = {"os": "linux", "architecture": "arm", "variant": variant}
    write_json(layout / "index.json", index)
    return layout


@pytest.mark.parametrize(
    "platform, matching, message",
    [
        (
            "linux/arm",
            ["linux/arm/v6", "linux/arm/v7"],
            "platform linux/arm is ambiguous in {root}: it holds linux/arm/v6, linux/arm/v7",
        ),
        (
            "linux/s390x",
            [],
            "platform linux/s390x is not in {root}: it holds linux/arm/v6, linux/arm/v7",
        ),
    ],
)
def test_import_of_an_ambiguous_or_missing_platform(tmp_path, capsys, platform, matching, message):
    layout = arm_variants_layout(tmp_path)
    out = import_base(tmp_path, layout, "--platform", platform, expect=3)
    stdout, stderr = capsys.readouterr()
    assert stderr == f"strata.core import-base: error: {message.format(root=layout)}\n"
    assert json.loads(stdout) == {
        "platform": platform,
        "in": str(layout),
        "matching": matching,
        "available": ["linux/arm/v6", "linux/arm/v7"],
    }
    assert not out.exists()
    assert base_file(import_base(tmp_path, layout, "--platform", "linux/arm/v7")) == b"v7\n"


def test_import_picks_a_repo_tag(tmp_path, capsys):
    one = make_docker_archive(tmp_path / "one.tar", {"which": b"one\n"}, repo_tag="a/one:1")
    two = make_docker_archive(tmp_path / "two.tar", {"which": b"two\n"}, repo_tag="a/two:2")
    members = {**tar_members(one), **tar_members(two)}
    entries = [json.loads(tar_members(a)["manifest.json"])[0] for a in (one, two)]
    members["manifest.json"] = json.dumps(entries).encode()
    both = write_tar(tmp_path / "both.tar", members)
    base = import_base(tmp_path, both, "--ref", "a/two:2")
    assert base_file(base) == b"two\n"
    import_base(tmp_path, both, name="none", expect=1)
    assert "holds 2 images; it has: a/one:1 linux/" in capsys.readouterr().err


def test_import_reads_an_archive_in_place(tmp_path):
    """A 48 MiB gzip layer streams through in constant memory; nothing is extracted."""
    data = os.urandom(1 << 20) * 48
    archive = make_docker_archive(tmp_path / "big.tar", {"big": data})
    del data
    archive = compress_docker_archive(archive, tmp_path / "big-gz.tar")
    tracemalloc.start()
    try:
        base = import_base(tmp_path, archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes"
    ((info, _),) = base_layers(base)
    assert info["compression"] == "gzip" and info["size"] > 48 << 20
    assert sorted(os.listdir(tmp_path)) == ["base", "big-gz.tar", "big.tar"]


# Archive members that are links: resolved by name inside the archive, never on the host.

LAYER_NAME = hashlib.sha256(layer_tar(BASE_FILES)).hexdigest() + "/layer.tar"


def linked_docker_archive(tmp_path, links: dict, moved_to=None) -> pathlib.Path:
    """The harness' docker-archive with its layer.tar member moved to `moved_to` (or dropped)
    and symlink members `links` (name: target) added: the layer is wherever they lead."""
    members = tar_members(make_docker_archive(tmp_path / "plain.tar", BASE_FILES))
    layer = members.pop(LAYER_NAME)
    if moved_to is not None:
        members[moved_to] = layer
    out = write_tar(tmp_path / "linked.tar", members)
    with tarfile.open(out, "a", format=tarfile.PAX_FORMAT) as tar:
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out


@pytest.mark.parametrize(
    "target", ["../other/layer.tar", "/other/layer.tar", "../../../../other/layer.tar"]
)
def test_import_follows_a_layer_link_inside_the_archive(tmp_path, target):
    """Old `docker save` linked a layer.tar to another image's by `../`; a link's absolute
    target, or `..` past the top, stays in the archive (as docker load resolves them)."""
    archive = linked_docker_archive(tmp_path, {LAYER_NAME: target}, moved_to="other/layer.tar")
    ((info, _),) = base_layers(import_base(tmp_path, archive))
    assert info["diff_id"] == sha256(layer_tar(BASE_FILES))


@pytest.mark.parametrize(
    "links, message",
    [
        ({LAYER_NAME: "/etc/passwd"},
         f"has no file {LAYER_NAME}: it links to '/etc/passwd', which is not a file in it"),
        ({LAYER_NAME: "../loop", "loop": LAYER_NAME.split("/")[0] + "/layer.tar"},
         f"{LAYER_NAME} leads through more than 40 links"),
        ({LAYER_NAME: "layer.tar"}, f"{LAYER_NAME} leads through more than 40 links"),
        ({LAYER_NAME: "../"}, "it links to '../', which is not a file in it"),
    ],
)
def test_import_of_a_layer_link_leading_nowhere_is_one_line(tmp_path, capsys, links, message):
    import_base(tmp_path, linked_docker_archive(tmp_path, links), expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "base").exists()


def nested_indexes(tmp_path, depth: int) -> pathlib.Path:
    """The harness' OCI layout with its manifest under `depth` indexes, each in the next."""
    layout = make_oci_layout(tmp_path / "layout", BASE_FILES)
    index = read_json(layout / "index.json")
    for _ in range(depth):
        nested = put_blob(layout, json.dumps(index).encode(), media_types.OCI_INDEX)
        index = {"schemaVersion": 2, "manifests": [nested]}
    write_json(layout / "index.json", index)
    return layout


def test_import_follows_nested_indexes_to_a_bound(tmp_path, capsys):
    import_base(tmp_path, nested_indexes(tmp_path / "8", 8), name="eight")
    import_base(tmp_path, nested_indexes(tmp_path / "9", 9), expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "indexes nest deeper than 8" in err, err
    import_base(tmp_path, nested_indexes(tmp_path / "2000", 2000), expect=1)
    assert "indexes nest deeper than 8" in capsys.readouterr().err


def test_import_of_json_nested_too_deep_is_one_line(tmp_path, capsys):
    layout = make_oci_layout(tmp_path / "layout", BASE_FILES)
    (layout / "index.json").write_bytes(b"[" * 100000 + b"]" * 100000)
    import_base(tmp_path, layout, expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "index.json is not valid JSON: maximum recursion" in err, err


# Tampered sources: a clear one-line error, exit 1, and no base dir at all.


def tamper_layer_blob(tmp_path):
    layout = make_oci_layout(tmp_path / "layout", BASE_FILES)
    _, manifest = layout_manifest(layout)
    blob = layout / "blobs" / "sha256" / image.digest_hex(manifest["layers"][0]["digest"])
    blob.write_bytes(blob.read_bytes().replace(b"from the base", b"from elsewhere"))
    return layout


def tamper_config_blob(tmp_path):
    layout = make_oci_layout(tmp_path / "layout", BASE_FILES)
    _, manifest = layout_manifest(layout)
    blob = layout / "blobs" / "sha256" / image.digest_hex(manifest["config"]["digest"])
    blob.write_bytes(blob.read_bytes().replace(b"linux", b"linuX"))
    return layout


def tamper_docker_config(tmp_path):
    archive = make_docker_archive(tmp_path / "plain.tar", BASE_FILES)
    members = tar_members(archive)
    (entry,) = json.loads(members["manifest.json"])
    members[entry["Config"]] = members[entry["Config"]].replace(b"linux", b"linuX")
    return write_tar(tmp_path / "tampered.tar", members)


def truncated_gzip(tmp_path):
    layout = compress_oci_layout(make_oci_layout(tmp_path / "layout", BASE_FILES))
    _, manifest = layout_manifest(layout)
    blobs = layout / "blobs" / "sha256"
    data = (blobs / image.digest_hex(manifest["layers"][0]["digest"])).read_bytes()[:-20]
    manifest["layers"][0].update(put_blob(layout, data, media_types.OCI_LAYER_GZIP))
    return rewrite_manifest(layout, manifest)


def rewrite_manifest(layout, manifest):
    index = read_json(layout / "index.json")
    descriptor = put_blob(layout, image.canonical_json(manifest), media_types.OCI_MANIFEST)
    index["manifests"][0].update(descriptor)
    write_json(layout / "index.json", index)
    return layout


def three_files_tar() -> bytes:
    """Files a, b and c: their headers at bytes 0, 1024 and 2048."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in "abc":
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(name.encode() * 4))
    return buf.getvalue()


def bad_header_mid_way() -> bytes:
    tar = bytearray(three_files_tar())
    tar[1024 + 148:1024 + 156] = b"0000000\0"  # b's checksum
    return bytes(tar)


def bad_pax_size() -> bytes:
    tar = three_files_tar()
    pax = b"15 size=twelve\n"
    info = tarfile.TarInfo("PaxHeaders/b")
    info.type, info.size = tarfile.XHDTYPE, len(pax)
    header = info.tobuf(tarfile.USTAR_FORMAT)
    return tar[:1024] + header + pax + bytes(512 - len(pax)) + tar[1024:]


def layout_with_layer(tmp_path, tar: bytes, compression="none"):
    """A harness OCI layout whose one layer is `tar`, its digest and diff_id in order."""
    layout = make_oci_layout(tmp_path / "layout", BASE_FILES)
    _, manifest = layout_manifest(layout)
    blobs = layout / "blobs" / "sha256"
    config = read_json(blobs / image.digest_hex(manifest["config"]["digest"]))
    config["rootfs"]["diff_ids"] = [sha256(tar)]
    manifest["config"].update(
        put_blob(layout, json.dumps(config).encode(), manifest["config"]["mediaType"])
    )
    media_type = media_types.layer_media_type(compression, True)
    manifest["layers"] = [put_blob(layout, COMPRESS[compression](tar), media_type)]
    return rewrite_manifest(layout, manifest)


CORRUPT_TARS = [
    (bad_header_mid_way, "bad tar header at byte 1024"),
    (bad_pax_size, "'b' has PAX size 'twelve', not a number"),
    (lambda: three_files_tar()[:2048 + 100], "the tar is truncated at byte 2048"),
    (lambda: three_files_tar()[:2048 + 512 + 2], "the tar ends at byte 3072 without its end-of"),
    (lambda: three_files_tar() + b"trailing", "data follows the tar's end-of-archive block"),
]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("tar, message", CORRUPT_TARS)
def test_import_rejects_a_corrupt_layer_tar(tmp_path, capsys, tar, message, compression):
    """Its digest and diff_id match: only walking the tar tells (umoci refuses it too)."""
    layout = layout_with_layer(tmp_path, tar(), compression)
    import_base(tmp_path, layout, expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.search(r"error: layer 0 \(blobs/sha256/\w{64}\): " + re.escape(message), err), err
    assert not (tmp_path / "base").exists()


def test_import_reads_a_well_formed_three_file_tar(tmp_path):
    """The corrupt tars' source is fine: the faults above are what fails."""
    import_base(tmp_path, layout_with_layer(tmp_path, three_files_tar()))


@pytest.mark.parametrize(
    "make, message",
    [
        (tamper_layer_blob, r"layer 0 \(blobs/sha256/\w+\) does not match its descriptor"),
        (tamper_config_blob, r"config sha256:\w+ does not match its descriptor"),
        (lambda t: make_oci_layout(t / "l", BASE_FILES, corrupt_diff_id=True),
         r"layer 0 .* its tar has diff_id sha256:\w+, the config says sha256:\w+"),
        (lambda t: compress_oci_layout(make_oci_layout(t / "l", BASE_FILES, corrupt_diff_id=True)),
         "its tar has diff_id"),
        (lambda t: make_docker_archive(t / "a.tar", BASE_FILES, corrupt_diff_id=True),
         r"layer 0 \(\w+/layer.tar\): its tar has diff_id"),
        (lambda t: compress_docker_archive(
            make_docker_archive(t / "a.tar", BASE_FILES, corrupt_diff_id=True), t / "gz.tar"),
         "its tar has diff_id"),
        (tamper_docker_config, r"config \w+\.json does not match the digest in its name"),
        (truncated_gzip, "not a valid gzip stream: truncated"),
        (lambda t: compress_oci_layout(make_oci_layout(t / "l", BASE_FILES), "none",
                                       media_types.OCI_LAYER_GZIP),
         "its media type says gzip, it is none"),
        (lambda t: write_tar(t / "x.tar", {"hello": b"hi"}), "has neither manifest.json nor"),
        (lambda t: t / "missing", "does not exist"),
    ],
)
def test_import_rejects_bad_sources(tmp_path, capsys, make, message):
    source = make(tmp_path)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "old").write_text("kept")
    import_base(tmp_path, source, expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("strata.core import-base: error: "), err
    assert re.search(message, err), err
    # Nothing half-written, and what was there before is left alone.
    assert os.listdir(tmp_path / "base") == ["old"]
    assert not (tmp_path / "base.tmp").exists()


# zstd: verified with the binary, taken on trust without it.


def zstd_layout(tmp_path, **kwargs):
    return compress_oci_layout(make_oci_layout(tmp_path / "layout", BASE_FILES, **kwargs), "zstd")


def test_import_zstd(tmp_path):
    zstd = zstd_path()
    layout = zstd_layout(tmp_path)
    tar = layer_tar(BASE_FILES)
    checked = import_base(tmp_path, layout, "--zstd", zstd, name="checked")
    ((info, _),) = base_layers(checked)
    assert (info["compression"], info["diff_id"], info["size"]) == ("zstd", sha256(tar), len(tar))
    trusted = import_base(tmp_path, layout, name="trusted")
    ((info, _),) = base_layers(trusted)
    assert (info["compression"], info["diff_id"], info["size"]) == ("zstd", sha256(tar), None)


def test_import_zstd_diff_id(tmp_path, capsys):
    """The binary catches a wrong diff_id; without it the config is trusted (documented)."""
    zstd = zstd_path()
    layout = zstd_layout(tmp_path, corrupt_diff_id=True)
    import_base(tmp_path, layout, "--zstd", zstd, expect=1)
    assert "its tar has diff_id" in capsys.readouterr().err
    import_base(tmp_path, layout)


# Assembling on a base.


def gzip_base(tmp_path) -> pathlib.Path:
    layout = make_oci_layout(tmp_path / "base-layout", BASE_FILES, env=BASE_ENV,
                             entrypoint=["/bin/tool"], cmd=["--base"])
    return import_base(tmp_path, compress_oci_layout(layout), name="gzip-base")


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_assemble_on_a_base(tmp_path, fmt):
    base = gzip_base(tmp_path)
    dirs = strata_layers(tmp_path, "none")
    spec = image_spec(tmp_path, fmt, dirs, base, {"Env": ["SHARED=own", "OWN=1"]})
    out, metadata, config_bytes = assemble(tmp_path, spec, fmt)
    ((base_info, base_dir),) = base_layers(base)
    config = json.loads(config_bytes)
    own = [read_json(d / "layer.json") for d in dirs]
    assert config["rootfs"]["diff_ids"] == [base_info["diff_id"]] + [l["diff_id"] for l in own]
    assert config["config"] == {
        "Env": ["PATH=/bin", "BASE=1", "SHARED=own", "OWN=1"],
        "Entrypoint": ["/bin/tool"],
        "Cmd": ["--base"],
    }
    base_config = read_json(base / "config.json")
    assert config["history"] == base_config["history"] + [
        {"created": "1970-01-01T00:00:01Z", "created_by": "strata", "comment": f"own {i}"}
        for i in range(2)
    ]
    assert len(metadata["layers"]) == 3
    if fmt == "docker-archive":
        # The base's gzip blob goes in as it is, under the layer.tar name, as docker save does.
        members = tar_members(out)
        (entry,) = json.loads(members["manifest.json"])
        assert len(entry["Layers"]) == 3 and all(p.endswith("/layer.tar") for p in entry["Layers"])
        assert members[entry["Layers"][0]] == blob_path(base_dir).read_bytes()
        # The manifest and metadata describe the layers as tars.
        assert metadata["layers"][0] == {
            "diff_id": base_info["diff_id"], "digest": base_info["diff_id"],
            "size": base_info["size"],
        }
    else:
        layout = out
        if fmt == "oci-archive":
            layout = tmp_path / "extracted"
            with tarfile.open(out) as tar:
                tar.extractall(layout)
        manifest = read_json(layout / "blobs" / "sha256" / image.digest_hex(
            metadata["manifest_digest"]))
        assert [l["mediaType"] for l in manifest["layers"]] == [
            media_types.OCI_LAYER_GZIP, media_types.OCI_LAYER, media_types.OCI_LAYER
        ]
        # Byte for byte the base's blob.
        copied = layout / "blobs" / "sha256" / image.digest_hex(base_info["digest"])
        assert copied.read_bytes() == blob_path(base_dir).read_bytes()
    bundle = tmp_path / "bundle"
    assert_valid_image(out, fmt, unpack_to=bundle)
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/base.txt").read_bytes() == b"from the base\n"
    assert (rootfs / "srv/hello.txt").read_bytes() == b"hello from strata\n"
    assert os.readlink(rootfs / "etc/motd") == "/srv/hello.txt"
    runtime = read_json(bundle / "config.json")
    assert runtime["process"]["args"] == ["/bin/tool", "--base"]
    assert ours(runtime["process"]["env"]) == ["PATH=/bin", "BASE=1", "SHARED=own", "OWN=1"]


def ours(env: list) -> list:
    """The variables these tests set, in order (runtimes add their own, e.g. TERM)."""
    return [entry for entry in env if entry.split("=")[0] in ("PATH", "BASE", "SHARED", "OWN")]


def test_stream_on_a_base_equals_assemble(tmp_path, monkeypatch):
    base = gzip_base(tmp_path)
    spec = image_spec(tmp_path, "docker-archive", strata_layers(tmp_path, "none"), base)
    out, _, _ = assemble(tmp_path, spec, "image.tar")
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    assert core_cli.main(["stream", "--spec", spec]) == 0
    monkeypatch.undo()
    assert stdout.buffer.getvalue() == out.read_bytes()


def test_zstd_base(tmp_path, capsys):
    """OCI outputs keep a zstd base layer; docker-archive decompresses it with the spec's zstd,
    and cannot take one imported without the binary (its size is unknown)."""
    zstd = zstd_path()
    layout = zstd_layout(tmp_path)
    checked = import_base(tmp_path, layout, "--zstd", zstd, name="checked")
    trusted = import_base(tmp_path, layout, name="trusted")
    dirs = strata_layers(tmp_path, "none")

    oci, metadata, _ = assemble(tmp_path, image_spec(tmp_path, "oci", dirs, trusted), "oci")
    manifest = read_json(oci / "blobs" / "sha256" / image.digest_hex(metadata["manifest_digest"]))
    assert manifest["layers"][0]["mediaType"] == media_types.OCI_LAYER_ZSTD
    run_skopeo_copy(tmp_path, f"oci:{oci}:v1")  # umoci 0.4 predates zstd

    spec = image_spec(tmp_path, "docker-archive", dirs, checked, name="nozstd")
    assemble(tmp_path, spec, "a.tar", expect=1)
    assert "decompressing it needs the zstd binary" in capsys.readouterr().err
    spec = image_spec(tmp_path, "docker-archive", dirs, trusted, name="trusted", zstd=zstd)
    assemble(tmp_path, spec, "b.tar", expect=1)
    assert "imported without the zstd binary, so its size is unknown" in capsys.readouterr().err
    spec = image_spec(tmp_path, "docker-archive", dirs, checked, name="checked", zstd=zstd)
    out, metadata, _ = assemble(tmp_path, spec, "c.tar")
    members = tar_members(out)
    (entry,) = json.loads(members["manifest.json"])
    assert members[entry["Layers"][0]] == layer_tar(BASE_FILES)
    assert_valid_image(out, "docker-archive")


def test_zstd_base_that_lies_fails(tmp_path, capsys):
    """A base taken on trust whose blob does not match its diff_id fails docker-archive."""
    zstd = zstd_path()
    trusted = import_base(tmp_path, zstd_layout(tmp_path, corrupt_diff_id=True))
    ((info, layer_dir),) = base_layers(trusted)
    write_json(layer_dir / "layer.json", dict(info, size=len(layer_tar(BASE_FILES))))
    spec = image_spec(tmp_path, "docker-archive", [], trusted, zstd=zstd)
    assemble(tmp_path, spec, "a.tar", expect=1)
    assert "does not match its layer.json: its diff_id is" in capsys.readouterr().err
    assert not (tmp_path / "a.tar").exists() and not (tmp_path / "a.tar.tmp").exists()


def run_skopeo_copy(tmp_path, ref):
    skopeo = require_tool("skopeo")
    subprocess.run(
        [skopeo, "--insecure-policy", "copy", "--quiet", ref, f"oci:{tmp_path / 'copy'}:t"],
        check=True,
    )


def break_base(base, what):
    if what == "config":
        (base / "config.json").write_bytes(b"{}")
    elif what == "layer dirs":
        shutil.copytree(base / "layers" / "000", base / "layers" / "001")
    elif what == "diff_id":
        info = read_json(base / "layers" / "000" / "layer.json")
        write_json(base / "layers" / "000" / "layer.json", dict(info, diff_id="sha256:" + "0" * 64))
    elif what == "base.json":
        (base / "base.json").write_text("[]")


@pytest.mark.parametrize(
    "what, message",
    [
        ("config", "config.json does not match config_digest"),
        ("layer dirs", r"layers must hold exactly \['000'\]"),
        ("diff_id", "has diff_id sha256:0+, the base config says"),
        ("base.json", "base.json must be an object"),
    ],
)
def test_assemble_rejects_a_broken_base(tmp_path, capsys, what, message):
    base = gzip_base(tmp_path)
    break_base(base, what)
    assemble(tmp_path, image_spec(tmp_path, "oci", [], base), "o", expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_assemble_checks_the_base_blobs_it_streams(tmp_path, capsys, fmt):
    """A blob changed since import (same size) is an error, and nothing is written."""
    base = gzip_base(tmp_path)
    blob = blob_path(base / "layers" / "000")
    data = bytearray(blob.read_bytes())
    data[-5] ^= 1  # in the gzip trailer's length: a tar reader would not notice
    blob.write_bytes(bytes(data))
    assemble(tmp_path, image_spec(tmp_path, fmt, [], base), "o", expect=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.search(r"layers/000/layer\.tar\.gz does not match its digest sha256:\w+", err), err
    assert not (tmp_path / "o").exists()


def test_assemble_rejects_another_platform(tmp_path, capsys):
    base = gzip_base(tmp_path)
    spec = read_json(image_spec(tmp_path, "oci", [], base))
    other = "arm64" if read_json(base / "config.json")["architecture"] != "arm64" else "amd64"
    spec["config"]["architecture"] = other
    assemble(tmp_path, write_json(tmp_path / "s.json", spec), "o", expect=1)
    assert f"config.architecture is '{other}' but the base image's is" in capsys.readouterr().err


def test_run_on_a_busybox_base(tmp_path, run_image):
    """The base's busybox prints the image's own file and the merged environment."""
    plain = make_busybox_image(tmp_path / "busybox.tar", env=BASE_ENV)
    # gzip: the base layer goes into the docker-archive compressed, as podman load reads it.
    base = import_base(tmp_path, compress_docker_archive(plain, tmp_path / "busybox-gz.tar"))
    dirs = strata_layers(tmp_path, "none")
    config = {"Env": ["SHARED=own", "OWN=1"], "Entrypoint": ["/bin/busybox"],
              "Cmd": ["cat", "/srv/hello.txt"]}
    out, _, _ = assemble(tmp_path, image_spec(tmp_path, "docker-archive", dirs, base, config),
                         "image.tar")
    assert run_image(out) == (0, "hello from strata\n")
    code, env = run_image(out, ["env"])
    assert code == 0
    # podman passes the image's variables on, though not in their order.
    assert sorted(ours(env.splitlines())) == ["BASE=1", "OWN=1", "PATH=/bin", "SHARED=own"]


def test_chain_of_three(tmp_path):
    """busybox <- a <- b <- c, each base made of the one below with write_base_dir: the same
    digests on every assemble, and the very base dir import-base makes of the oci output."""
    base = import_base(tmp_path, make_busybox_image(tmp_path / "busybox.tar", env=BASE_ENV),
                       name="base-0")
    for level in range(1, 4):
        sandbox = tmp_path / f"sandbox-{level}"
        (sandbox / "src").mkdir(parents=True)
        (sandbox / "src" / f"level-{level}").write_text(f"{level}\n")
        own = sandbox / "layer"
        build_layer({"settings": {"compression": "gzip"},
                     "trees": [{"source": "src", "dest": "levels", "executables": []}]}, sandbox, own)
        spec = image_spec(tmp_path, "oci", [own], base, {"Env": [f"LEVEL={level}"]},
                          name=f"level-{level}")
        first, metadata, config_bytes = assemble(tmp_path, spec, f"image-{level}")
        second, again, _ = assemble(tmp_path, spec, f"image-{level}-again")
        assert again == metadata and tree(first) == tree(second)
        layer_dirs = [d for _, d in base_layers(base)] + [own]
        base = tmp_path / f"base-{level}"
        written = baseimage.write_base_dir(config_bytes, [str(d) for d in layer_dirs], str(base))
        assert written == {
            "config_digest": metadata["config_digest"],
            "manifest_digest": metadata["manifest_digest"],
            "media_type": media_types.OCI_MANIFEST,
        }
        imported = import_base(tmp_path, first, name=f"imported-{level}")
        # Byte for byte: the Pants rules make an `oci_image` base of base_dir_files, and the
        # images on it must be those an import of its oci output gave.
        assert tree(imported) == tree(base)
        # Strata's own layer.json has "entries"; an imported one cannot know it.
        for (info, _), d in zip(base_layers(imported), layer_dirs):
            info_written = read_json(d / "layer.json")
            info_written.pop("entries", None)
            assert info == info_written
    config = json.loads(config_bytes)
    assert len(config["rootfs"]["diff_ids"]) == 4 and len(config["history"]) == 4
    assert config["config"]["Env"] == BASE_ENV + ["LEVEL=3"]
    bundle = tmp_path / "bundle"
    assert_valid_image(first, "oci", unpack_to=bundle)
    assert sorted(os.listdir(bundle / "rootfs" / "levels")) == ["level-1", "level-2", "level-3"]
    assert (bundle / "rootfs" / "bin" / "busybox").exists()


def test_write_base_dir_checks_layers_against_config(tmp_path):
    dirs = strata_layers(tmp_path, "none")
    _, _, config_bytes = assemble(tmp_path, image_spec(tmp_path, "oci", dirs), "o")
    with pytest.raises(ValueError, match="not the config's rootfs.diff_ids"):
        baseimage.write_base_dir(config_bytes, [str(dirs[1]), str(dirs[0])], str(tmp_path / "b"))
    assert not (tmp_path / "b").exists()


# Decompression


def test_gzip_reader_streams_members_in_bounded_reads(tmp_path):
    """Concatenated gzip members are one stream; no read returns more than asked, however well
    the input compresses."""
    path = tmp_path / "blob.gz"
    parts = [b"\0" * (8 << 20), b"tail"]
    path.write_bytes(b"".join(gzip.compress(p) for p in parts))
    with DecompressedReader(str(path), "gzip") as reader:
        sizes = []
        while True:
            chunk = reader.read(1 << 16)
            if not chunk:
                break
            sizes.append(len(chunk))
        assert reader.finish() == sha256(b"".join(parts))
    assert max(sizes) <= 1 << 16 and sum(sizes) == (8 << 20) + 4


def test_gzip_reader_rejects_trailing_garbage(tmp_path):
    path = tmp_path / "blob.gz"
    path.write_bytes(gzip.compress(b"data") + b"\0\0\0\0")
    with DecompressedReader(str(path), "gzip") as reader:
        with pytest.raises(ValueError, match="not a valid gzip stream"):
            while reader.read():
                pass


def test_zstd_reader_reports_zstd_errors(tmp_path):
    zstd = zstd_path()
    path = tmp_path / "blob.zst"
    path.write_bytes(zstd_compress(b"x" * 100000)[:-10])
    with DecompressedReader(str(path), "zstd", zstd) as reader:
        with pytest.raises(ValueError, match=r"zstd exited with status \d+"):
            while reader.read():
                pass


def test_usage_errors(capsys):
    assert core_cli.main(["import-base", "--archive", "x"]) == 2
    assert capsys.readouterr().err == (
        "strata.core import-base: error: the following arguments are required: --out\n"
    )
