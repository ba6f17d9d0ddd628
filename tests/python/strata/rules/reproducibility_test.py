"""The same sources give the same image bytes, whatever the checkout's path, umask and file
timestamps: each checkout builds with a local store of its own, so nothing is shared by cache."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from strata_harness import ScratchRepo, ran_processes, require_tool

BUILD = """
    file(name="busybox", source="bin/busybox")
    files(name="etc", sources=["etc/*.txt"], dependencies=[":busybox"])

    IMAGE = dict(
        dependencies=[":etc"],
        symlinks={"/bin/sh": "/bin/busybox"},
        directories={"/tmp": "1777"},
        entrypoint=["/bin/busybox", "cat", "/etc/greeting.txt"],
    )
    oci_image(name="image", **IMAGE)
    oci_image(name="gzip", output_format="oci-archive", compression="gzip", **IMAGE)
    oci_image(name="zstd", output_format="oci-archive", compression="zstd", **IMAGE)
    # A multi-platform index of the image and an arm64 one (the same files: only the
    # platform differs), as an oci-archive so that one file holds it all.
    oci_image(name="arm64", architecture="arm64", variant="v8", **IMAGE)
    oci_image_index(name="index", images=[":zstd", ":arm64"], output_format="oci-archive")
"""
OUTPUTS = ("image.tar", "gzip.tar", "zstd.tar", "index.tar")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def build(root: Path, mask: int, mtime: int) -> tuple[ScratchRepo, dict[str, str]]:
    """Writes a checkout and packages it under `mask`, every source file dated `mtime`:
    (the repo, sha256 of each output)."""
    with umask(mask):
        repo = ScratchRepo(root, isolated_cache=True)
        repo.write(
            {
                "bin/busybox": Path(require_tool("busybox")).read_bytes(),
                "etc/greeting.txt": "hello\n",
                "etc/motd.txt": "be nice\n",
                "BUILD": BUILD,
            }
        )
        (repo.root / "bin/busybox").chmod(0o755 & ~mask)
        for path in ("bin/busybox", "etc/greeting.txt", "etc/motd.txt", "BUILD"):
            os.utime(repo.root / path, (mtime, mtime))
        result = repo.run("package", "//:image", "//:gzip", "//:zstd", "//:index")
    # Every layer was built here, none came from a cache: 3 per compression (the arm64 image's
    # are //:image's very Processes: a layer's bytes do not depend on the platform).
    assert len(ran_processes(result, "Building //:")) == 9
    dist = repo.root / "dist"
    return repo, {name: hashlib.sha256((dist / name).read_bytes()).hexdigest() for name in OUTPUTS}


def test_checkouts_differing_in_path_umask_and_mtimes_build_identical_images(
    tmp_path: Path,
) -> None:
    first, first_digests = build(tmp_path / "a" / "repo", 0o022, 1_000_000_000)
    second, second_digests = build(tmp_path / "b" / "deeper" / "checkout", 0o077, 1_700_000_000)
    # The checkouts do differ in what the layers must not depend on.
    stats = [repo.root.joinpath("etc/greeting.txt").stat() for repo in (first, second)]
    assert [oct(s.st_mode & 0o777) for s in stats] == ["0o644", "0o600"]
    assert stats[0].st_mtime != stats[1].st_mtime
    assert first_digests == second_digests
