"""`package` onto a full disk: dist/ on a small tmpfs that the image no longer fits. Pants writes
dist/ (it deletes the old artifacts, then writes every file at once, in no order), so the image
is left truncated; the SBOM must not be left claiming it. With `[strata].dist = "copy"`: a
linked image is a symlink in dist/ (tests/python/strata/rules/blob_store_integration_test.py
fills the blob store instead)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from strata_harness import ScratchRepo, assert_valid_image, require_tool
from strata_harness.tmpfs import shrink, tmpfs

BUILD = textwrap.dedent(
    """
    file(name="busybox", source="usr/bin/busybox")
    file(name="version", source="etc/version")
    oci_image(name="image", repository="strata/full", tag="v1",
              dependencies=[":busybox", ":version"])
    """
)


def sboms(dist: Path) -> list[str]:
    return sorted(p.name for p in dist.iterdir() if p.name.endswith((".spdx.json", ".cdx.json")))


def test_a_failed_package_leaves_no_sbom_of_an_image_it_did_not_write(tmp_path: Path) -> None:
    repo = ScratchRepo(
        tmp_path / "repo",
        config={"GLOBAL": {"pants_distdir": "small-dist"}, "strata": {"dist": "copy"}},
    )
    repo.write({
        "usr/bin/busybox": Path(require_tool("busybox")).read_bytes(),
        "etc/version": "1\n",
        "BUILD": BUILD,
    })
    with tmpfs(repo.root / "small-dist", "16m") as dist:
        repo.run("package", "//:image")
        assert sboms(dist) == ["image.cdx.json", "image.spdx.json"]
        assert sorted(p.name for p in dist.iterdir()) == [*sboms(dist), "image.tar"]

        # Another image, 4 MiB larger, where the old one's room is all there is.
        repo.write({"etc/version": b"2" * (4 << 20)})
        shrink(dist)
        failed = repo.run("package", "//:image", check=False)
        assert failed.returncode != 0
        assert "No space left on device" in failed.stderr, failed.stderr[-3000:]
        # The new image is truncated or missing; no SBOM, old or new, claims it.
        assert sboms(dist) == [], failed.stderr[-3000:]

        # With room again, the next package writes both.
        subprocess.run(["mount", "-o", "remount,size=16m", str(dist)], check=True)
        repo.run("package", "//:image")
        assert sboms(dist) == ["image.cdx.json", "image.spdx.json"]
        assert sorted(p.name for p in dist.iterdir()) == [*sboms(dist), "image.tar"]
        assert_valid_image(dist / "image.tar", "docker-archive")
