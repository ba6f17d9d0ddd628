"""`debian_packages` per architecture, as a user would use it in a scratch repo: `pants
debian-lock` resolves every listed architecture from the machine's Debian mirror, and each image
gets the packages of its own `architecture`; a missing or unknown architecture is an error that
says what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from strata.target_types.debian import DebianArchitecturesField
from strata_harness.images import assert_valid_image
from strata_harness.qemu import elf_machine
from strata_harness.scratch import ScratchRepo

# busybox-static: one statically linked binary, no dependencies, built for every architecture.
BUILD = """
debian_packages(name="busybox", packages=["busybox-static"], architectures=["arm64", "amd64"])

debian_packages(name="amd64-only", packages=["busybox-static"], lockfile="amd64-only.lock.json")

oci_image(name="arm64", dependencies=[":busybox"], architecture="arm64", output_format="oci")

oci_image(
    name="amd64",
    dependencies=[":busybox"],
    entrypoint=["/usr/bin/busybox", "echo", "hello from amd64"],
)

oci_image(name="arm64-unlocked", dependencies=[":amd64-only"], architecture="arm64")
"""

ELF_MACHINES = {"amd64": "x86-64", "arm64": "aarch64"}  # as strata_harness.qemu names them


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchRepo]:
    """A scratch repo whose `debian_packages` targets are locked, through one pantsd."""
    scratch = ScratchRepo(tmp_path_factory.mktemp("debarch") / "repo", files={"deb/BUILD": BUILD})
    try:
        scratch.run("debian-lock", "deb:busybox", "deb:amd64-only", pantsd=True)
        yield scratch
    finally:
        scratch.stop_pantsd()


def test_the_lock_holds_each_architecture(repo: ScratchRepo) -> None:
    lock = json.loads((repo.root / "deb/debian.lock.json").read_text())
    assert (lock["lock_version"], lock["requested"]) == (2, ["busybox-static"])
    assert list(lock["architectures"]) == ["amd64", "arm64"]
    for arch, resolution in lock["architectures"].items():
        package = resolution["packages"]["busybox-static"]
        assert package["architecture"] == arch and package["path"].endswith(f"_{arch}.deb")
    amd64, arm64 = (lock["architectures"][a]["packages"]["busybox-static"]["sha256"]
                    for a in ("amd64", "arm64"))
    assert amd64 != arm64
    only = json.loads((repo.root / "deb/amd64-only.lock.json").read_text())
    assert list(only["architectures"]) == ["amd64"]


def test_an_image_gets_the_packages_of_its_architecture(
    repo: ScratchRepo, tmp_path: Path, run_image
) -> None:
    repo.run("package", "deb:arm64", "deb:amd64", pantsd=True)
    images = {"arm64": (repo.root / "dist/deb/arm64", "oci"),
              "amd64": (repo.root / "dist/deb/amd64.tar", "docker-archive")}
    for arch, (image, fmt) in images.items():
        bundle = tmp_path / arch
        assert_valid_image(image, fmt, unpack_to=bundle)
        rootfs = bundle / "rootfs"
        assert elf_machine(rootfs / "usr/bin/busybox") == ELF_MACHINES[arch]
        status = (rootfs / "var/lib/dpkg/status.d/busybox-static").read_text()
        assert f"\nArchitecture: {arch}\n" in status
    # The amd64 one runs here; the arm64 one would need an emulator.
    assert run_image(images["amd64"][0]) == (0, "hello from amd64\n")


def test_an_architecture_the_lock_lacks_is_an_error(repo: ScratchRepo) -> None:
    result = repo.run("package", "deb:arm64-unlocked", pantsd=True, check=False)
    assert result.returncode != 0
    assert (
        "deb:amd64-only is in an image of the Debian architecture arm64, for which its lockfile "
        "deb/amd64-only.lock.json holds no packages (it has ['amd64']): add 'arm64' to its "
        "`architectures` and run `pants debian-lock deb:amd64-only`."
    ) in " ".join(result.stderr.split()), result.stderr[-3000:]
    assert not (repo.root / "dist/deb/arm64-unlocked.tar").exists()


BUSYBOX = Address("deb", target_name="busybox")


def test_unknown_architectures_are_errors(repo: ScratchRepo) -> None:
    with pytest.raises(InvalidFieldException, match="The 'architectures' field in target "
                       "deb:busybox is invalid: 'aarch64' is not a Debian architecture: use "
                       "one of amd64, arm64, armel, armhf, i386, mips64el, ppc64el, riscv64, "
                       "s390x"):
        DebianArchitecturesField.compute_value(["arm64", "aarch64"], BUSYBOX)
    with pytest.raises(InvalidFieldException, match="needs at least one architecture"):
        DebianArchitecturesField.compute_value([], BUSYBOX)

    repo.write({
        "bad/BUILD": 'debian_packages(name="arch", packages=["a"], architectures=["aarch64"])\n',
        "sparc/BUILD": 'oci_image(dependencies=["deb:busybox"], architecture="sparc64")\n',
    })
    result = repo.run("debian-lock", "bad:arch", pantsd=True, check=False)
    assert result.returncode != 0
    assert ("The 'architectures' field in target bad:arch is invalid: 'aarch64' is not a "
            "Debian architecture") in result.stderr, result.stderr[-3000:]
    result = repo.run("package", "sparc", pantsd=True, check=False)
    assert result.returncode != 0
    assert ("The `architecture` field of sparc:sparc is 'sparc64', but the image holds Debian "
            "packages (deb:busybox): the architecture 'sparc64' has no Debian architecture"
            ) in " ".join(result.stderr.split()), result.stderr[-3000:]
