import json
import tarfile

import pytest

from strata_harness import (
    Symlink,
    assert_valid_image,
    image_format,
    make_busybox_image,
    make_docker_archive,
    make_oci_layout,
    require_tool,
    run_tool,
    source_ref,
)


def test_handmade_image_is_deterministic_and_valid(tmp_path):
    files = {"etc/motd": b"hi\n", "bin/tool": (b"#!/bin/sh\n", 0o755), "bin/link": Symlink("tool")}
    a = make_docker_archive(tmp_path / "a.tar", files, entrypoint=["/bin/tool"])
    b = make_docker_archive(tmp_path / "b.tar", files, entrypoint=["/bin/tool"])
    assert a.read_bytes() == b.read_bytes()
    assert image_format(a) == "docker-archive"
    bundle = tmp_path / "bundle"
    assert_valid_image(a, unpack_to=bundle)
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/motd").read_bytes() == b"hi\n"
    assert (rootfs / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert (rootfs / "etc/motd").stat().st_mode & 0o777 == 0o644
    assert (rootfs / "bin/link").is_symlink() and str((rootfs / "bin/link").readlink()) == "tool"
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/tool"]


def test_wrong_diff_id_in_docker_archive_is_rejected(tmp_path):
    good = make_docker_archive(tmp_path / "good.tar", {"etc/motd": b"hi\n"})
    assert_valid_image(good)
    bad = make_docker_archive(tmp_path / "bad.tar", {"etc/motd": b"hi\n"}, corrupt_diff_id=True)
    with pytest.raises(AssertionError, match="Digest did not match"):
        assert_valid_image(bad)


def test_wrong_diff_id_in_oci_layout_is_rejected_by_umoci(tmp_path):
    good = make_oci_layout(tmp_path / "good", {"etc/motd": b"hi\n"}, ref="v1")
    assert source_ref(good) == f"oci:{good}:v1"
    assert_valid_image(good)
    bad = make_oci_layout(tmp_path / "bad", {"etc/motd": b"hi\n"}, corrupt_diff_id=True)
    # Every blob matches its digest, so skopeo copies it without complaint...
    skopeo = require_tool("skopeo")
    run_tool(
        [
            skopeo,
            "--insecure-policy",
            "copy",
            "--quiet",
            source_ref(bad),
            f"oci:{tmp_path / 'copy'}:t",
        ]
    )
    # ...and only umoci's unpack notices the config's diff_id is not the layer's.
    with pytest.raises(AssertionError, match="diffid mismatch"):
        assert_valid_image(bad)


def test_oci_layout_and_oci_archive_are_accepted(tmp_path):
    skopeo = require_tool("skopeo")
    image = make_busybox_image(tmp_path / "bb.tar")
    layout, archive = tmp_path / "layout", tmp_path / "bb-oci.tar"
    run_tool(
        [
            skopeo,
            "--insecure-policy",
            "copy",
            "--quiet",
            f"docker-archive:{image}",
            f"oci:{layout}:v1",
        ]
    )
    run_tool(
        [
            skopeo,
            "--insecure-policy",
            "copy",
            "--quiet",
            f"docker-archive:{image}",
            f"oci-archive:{archive}:v2",
        ]
    )
    assert image_format(layout) == "oci" and image_format(archive) == "oci-archive"
    assert source_ref(layout) == f"oci:{layout}:v1"
    assert source_ref(archive) == f"oci-archive:{archive}:v2"
    assert_valid_image(layout)
    assert_valid_image(archive)
    # A second ref makes the choice ambiguous unless one is named.
    run_tool(
        [
            skopeo,
            "--insecure-policy",
            "copy",
            "--quiet",
            f"docker-archive:{image}",
            f"oci:{layout}:v2",
        ]
    )
    with pytest.raises(AssertionError, match="pass ref="):
        assert_valid_image(layout)
    assert_valid_image(layout, ref="v2")
    with pytest.raises(AssertionError, match="skopeo"):
        assert_valid_image(layout, ref="missing")


def test_truncated_archive_is_rejected(tmp_path):
    image = make_busybox_image(tmp_path / "bb.tar")
    with tarfile.open(image) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith("layer.tar")]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(image.read_bytes()[: members[0].offset_data + 1000])
    with pytest.raises(AssertionError):
        assert_valid_image(cut, fmt="docker-archive")
