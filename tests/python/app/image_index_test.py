"""`//app:image_index`: the demo for linux/amd64 and linux/arm64, built as a user would in a
scratch copy of the repo; the arm64 image's app runs under qemu in user mode, the amd64 one
under podman."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from strata_harness.demo import demo_repo
from strata_harness.images import assert_valid_image
from strata_harness.qemu import elf_machine, run_arm64
from strata_harness.tools import require_tool

GREETING = "Hello from Strata, Ada! (layers dated 1970-01-01)\n"
REF_NAME = "org.opencontainers.image.ref.name"


def blob(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs/sha256" / digest.split(":", 1)[1]).read_text())


def test_the_demo_index_holds_both_platforms_and_each_runs(tmp_path: Path, run_image) -> None:
    skopeo = require_tool("skopeo")
    repo = demo_repo(tmp_path / "repo")
    repo.run("package", "app:image_index")
    layout = repo.root / "dist/app/image_index"
    (top,) = json.loads((layout / "index.json").read_text())["manifests"]
    ref = f"oci:{layout}:{top['annotations'][REF_NAME]}"

    raw = json.loads(subprocess.run([skopeo, "inspect", "--raw", ref], check=True,
                                    capture_output=True, text=True).stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = {m["platform"]["architecture"]: m for m in raw["manifests"]}
    assert sorted(platforms) == ["amd64", "arm64"]
    assert all(m["platform"]["os"] == "linux" for m in raw["manifests"])
    # The app's code, its pure-Python wheels and the venv's skeleton are the same bytes on both
    # platforms: one blob each in the layout.
    layers = {arch: [layer["digest"] for layer in blob(layout, m["digest"])["layers"]]
              for arch, m in platforms.items()}
    shared = set(layers["amd64"]) & set(layers["arm64"])
    assert len(shared) >= 4, (len(shared), layers)

    images = {}
    for arch in ("amd64", "arm64"):
        copy = tmp_path / f"copy-{arch}"
        subprocess.run([skopeo, "--insecure-policy", "copy", "--quiet", "--override-arch", arch,
                        ref, f"oci:{copy}:t"], check=True, capture_output=True)
        assert_valid_image(copy, "oci", ref="t", unpack_to=tmp_path / f"unpacked-{arch}")
        images[arch] = copy
    arm_root = tmp_path / "unpacked-arm64/rootfs"
    assert elf_machine(arm_root / "usr/bin/python3.11") == "aarch64"
    assert elf_machine(tmp_path / "unpacked-amd64/rootfs/usr/bin/python3.11") == "x86-64"

    # The entrypoint is the venv's launcher, a script: its interpreter is named explicitly,
    # since qemu is not registered with the kernel (binfmt_misc is never touched).
    config = json.loads((tmp_path / "unpacked-arm64/config.json").read_text())
    assert config["process"]["args"][:1] == ["/app/venv/bin/hello"]
    ran = run_arm64(arm_root, ["/app/venv/bin/python", "/app/venv/bin/hello", "Ada"])
    assert (ran.returncode, ran.stdout) == (0, GREETING), ran.stderr
    assert run_image(images["amd64"], ["Ada"], fmt="oci", ref="t") == (0, GREETING)
