"""The oci-archive format, and `layout-archive`, which writes a layout directory as one."""

import hashlib
import json
import pathlib
import tarfile

from strata.core import cli as core_cli
from strata.core.oci.archive import ARCHIVE_MTIME

from formats_test import (
    assemble,
    make_spec,
    oci_image_tool_validate,
    tree_digests,
    unpack_and_check,
    write_json,
)  # pants: no-infer-dep


def test_oci_archive(tmp_path):
    spec = make_spec(tmp_path, "oci-archive", "gzip")
    out, metadata = assemble(tmp_path, spec, "image.tar")
    with tarfile.open(out) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        blobs = sorted(n for n in names if n.startswith("blobs/sha256/"))
        assert names == ["blobs", "blobs/sha256", *blobs, "index.json", "oci-layout"]
        assert [m.isdir() for m in members[:2]] == [True, True]
        assert all(m.mtime == ARCHIVE_MTIME for m in members)
        extracted = tmp_path / "extracted"
        tar.extractall(extracted)
    index = json.loads((extracted / "index.json").read_bytes())
    assert index["manifests"][0]["digest"] == metadata["manifest_digest"]
    oci_image_tool_validate(tmp_path, extracted, "v1")
    unpack_and_check(tmp_path, f"oci-archive:{out}:v1")


def test_oci_archive_matches_layout(tmp_path):
    spec = json.loads(pathlib.Path(make_spec(tmp_path, "oci-archive", "gzip")).read_text())
    archive, _ = assemble(tmp_path, write_json(tmp_path / "a.json", spec), "image.tar")
    layout, _ = assemble(
        tmp_path, write_json(tmp_path / "l.json", dict(spec, format="oci")), "layout"
    )
    with tarfile.open(archive) as tar:
        archived = {
            m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest() for m in tar if m.isfile()
        }
    assert {k: "sha256:" + v for k, v in archived.items()} == tree_digests(layout)


def test_layout_archive_of_a_layout_is_its_oci_archive(tmp_path):
    """`layout-archive` (an image index's archive) writes a layout as `assemble` writes an
    oci-archive: one writer, byte for byte."""
    spec = json.loads(pathlib.Path(make_spec(tmp_path, "oci-archive", "gzip")).read_text())
    archive, _ = assemble(tmp_path, write_json(tmp_path / "a.json", spec), "image.tar")
    layout, _ = assemble(
        tmp_path, write_json(tmp_path / "l.json", dict(spec, format="oci")), "layout"
    )
    out = tmp_path / "from-layout.tar"
    assert core_cli.main(["layout-archive", "--layout", str(layout), "--out", str(out)]) == 0
    assert out.read_bytes() == archive.read_bytes()


def test_layout_archive_refuses_what_is_not_a_layout(tmp_path, capsys):
    layout, _ = assemble(tmp_path, make_spec(tmp_path, "oci"), "layout")
    (layout / "extra").write_text("")
    out = tmp_path / "out.tar"
    assert core_cli.main(["layout-archive", "--layout", str(layout), "--out", str(out)]) == 1
    assert "must hold only blobs/sha256/, index.json and oci-layout" in capsys.readouterr().err
    assert not out.exists()
