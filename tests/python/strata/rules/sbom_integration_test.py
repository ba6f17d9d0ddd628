"""SBOMs on a scratch repo: written beside the image and into it, following a lock's versions,
attached on publish as OCI referrers, and read back from a pulled base's registry.

The Debian package (strata_harness.debian, made with `dpkg-deb`) is served from a directory as
the repo's mirror, so a test can change a locked version for real (a new .deb, a new sha256).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import textwrap
from pathlib import Path

from strata_harness import (
    ScratchRepo,
    assert_valid_image,
    pushes,
    require_tool,
    start_registry,
)
from strata_harness.debian import PACKAGE, debian_lock, make_deb
from strata_harness.demo import demo_repo
from strata_harness.images import read_docker_archive
from strata_harness.sbom import (
    assert_valid_cyclonedx,
    assert_valid_spdx,
    cyclonedx_components,
    spdx_packages,
)
from strata_harness.served import serve_directory

def _build(host: str) -> str:
    return textwrap.dedent(
        f"""
        file(name="busybox", source="usr/bin/busybox")
        debian_packages(name="lib", packages=["{PACKAGE}"], architectures=["amd64"])
        oci_image(
            name="image",
            repository="strata/sbom",
            tag="v1",
            dependencies=[":busybox", ":lib"],
            embed_sbom=True,
            entrypoint=["/usr/bin/busybox", "cat", "/usr/share/sbom/image.cdx.json"],
            registries=["{host}"],
        )
        """
    )


def _top_layer_files(archive: Path) -> dict[str, bytes]:
    manifest, _, _ = read_docker_archive(archive)
    with tarfile.open(archive) as outer:
        top = outer.extractfile(manifest["Layers"][-1])
        with tarfile.open(fileobj=top) as layer:
            return {m.name: layer.extractfile(m).read() for m in layer if m.isfile()}


def test_sbom_follows_the_lock_is_embedded_published_and_read_from_a_base(
    tmp_path: Path, run_image
) -> None:
    mirror = tmp_path / "mirror"
    first, second = make_deb(mirror, "1.0-1"), make_deb(mirror, "1.0-2")
    with serve_directory(mirror) as url, start_registry(tmp_path / "registry") as registry:
        repo = ScratchRepo(tmp_path / "repo", config={"debian": {"mirror": url}})
        shutil.copy(require_tool("busybox"), tmp_path / "busybox")
        repo.write({
            "usr/bin/busybox": (tmp_path / "busybox").read_bytes(),
            "BUILD": _build(registry.host),
            "debian.lock.json": debian_lock(first),
        })
        (repo.root / "usr/bin/busybox").chmod(0o755)

        # Beside the image: both documents, valid, naming the locked version and the image.
        built = repo.run("package", "//:image")
        dist = repo.root / "dist"
        assert "image.spdx.json" in built.stderr and "image.cdx.json" in built.stderr
        spdx = assert_valid_spdx(dist / "image.spdx.json")
        cyclonedx = assert_valid_cyclonedx(dist / "image.cdx.json")
        assert spdx_packages(spdx)[PACKAGE] == "1.0-1"
        assert cyclonedx_components(cyclonedx)[PACKAGE] == "1.0-1"
        deb = next(p for p in spdx["packages"] if p["name"] == PACKAGE)
        assert deb["licenseDeclared"] == "MIT"
        purls = [r["referenceLocator"] for r in deb["externalRefs"]]
        assert "pkg:deb/debian/strata-demo-lib@1.0-1?arch=all" in purls
        assert any(p["name"] == "//:busybox" or p["name"] == ":busybox" or "busybox" in p["name"]
                   for p in spdx["packages"])
        manifest_digest = built.stderr.split("Manifest digest: ", 1)[1].split()[0]
        image_package = next(
            p for p in spdx["packages"] if p.get("primaryPackagePurpose") == "CONTAINER"
            and p["name"].startswith("strata/sbom")
        )
        image_purls = [r["referenceLocator"] for r in image_package["externalRefs"]]
        assert any(manifest_digest in purl for purl in image_purls), image_purls
        again = (dist / "image.spdx.json").read_bytes()

        # In the image: the top layer holds both, and the running image reads them.
        archive = dist / "image.tar"
        assert_valid_image(archive)
        top = _top_layer_files(archive)
        assert sorted(top) == ["usr/share/sbom/image.cdx.json", "usr/share/sbom/image.spdx.json"]
        embedded = (tmp_path / "embedded.spdx.json")
        embedded.write_bytes(top["usr/share/sbom/image.spdx.json"])
        assert spdx_packages(assert_valid_spdx(embedded))[PACKAGE] == "1.0-1"
        code, out = run_image(archive)
        assert code == 0 and cyclonedx_components(json.loads(out))[PACKAGE] == "1.0-1"

        # The same inputs give the same bytes; a new locked version is in the SBOM.
        repo.run("package", "//:image")
        assert (dist / "image.spdx.json").read_bytes() == again
        repo.write({"debian.lock.json": debian_lock(second)})
        repo.run("package", "//:image")
        spdx = assert_valid_spdx(dist / "image.spdx.json")
        assert spdx_packages(spdx)[PACKAGE] == "1.0-2"
        assert "1.0-1" not in (dist / "image.spdx.json").read_text()
        assert cyclonedx_components(assert_valid_cyclonedx(dist / "image.cdx.json"))[
            PACKAGE
        ] == "1.0-2"

        # Published: both documents are referrers of the pushed manifest, in the tag schema's
        # index, since docker-registry 2.8 has no referrers API.
        published = repo.run("publish", "//:image")
        pushed = pushes(published.stdout + published.stderr)[f"{registry.host}/strata/sbom"]
        digest = pushed.tags["v1"]
        referrers = registry.inspect(f"strata/sbom:sha256-{digest.split(':')[1]}", raw=True)
        by_type = {m["artifactType"]: m for m in referrers["manifests"]}
        assert sorted(by_type) == ["application/spdx+json", "application/vnd.cyclonedx+json"]
        artifact = registry.inspect(
            f"strata/sbom@{by_type['application/spdx+json']['digest']}", raw=True
        )
        assert artifact["subject"]["digest"] == digest
        status, blob = registry.get(f"/v2/strata/sbom/blobs/{artifact['layers'][0]['digest']}")
        attached = tmp_path / "attached.spdx.json"
        attached.write_bytes(blob)
        assert spdx_packages(assert_valid_spdx(attached))[PACKAGE] == "1.0-2"
        assert digest in blob.decode()

        # A pulled base: its attached SBOM's packages are in the SBOM of an image on it.
        repo.write({
            "BUILD": _build(registry.host) + textwrap.dedent(
                f"""
                oci_pull(name="base", registry="{registry.host}", repository="strata/sbom",
                         digest="{digest}")
                file(name="note", source="note.txt")
                oci_image(name="on_base", base=":base", dependencies=[":note"],
                          repository="strata/on-base")
                """
            ),
            "note.txt": "on a base\n",
        })
        repo.run("package", "//:on_base")
        on_base = assert_valid_spdx(dist / "on_base.spdx.json")
        assert_valid_cyclonedx(dist / "on_base.cdx.json")
        assert spdx_packages(on_base)[PACKAGE] == "1.0-2"
        base_package = next(
            p for p in on_base["packages"]
            if any(digest in r["referenceLocator"] for r in p.get("externalRefs", []))
        )
        assert base_package["name"].endswith("strata/sbom")


def test_the_demo_sbom_lists_its_locked_debian_packages_and_its_distributions(
    tmp_path: Path,
) -> None:
    repo = demo_repo(tmp_path / "repo")
    repo.run("package", "app:image-layout")
    spdx = spdx_packages(assert_valid_spdx(repo.root / "dist/app/image-layout.spdx.json"))
    cyclonedx = cyclonedx_components(
        assert_valid_cyclonedx(repo.root / "dist/app/image-layout.cdx.json")
    )
    lock = json.loads(Path("app/debian.lock.json").read_text())
    locked = {
        name: package["version"]
        for name, package in lock["architectures"]["amd64"]["packages"].items()
    }
    assert len(locked) > 20
    for found in (spdx, cyclonedx):
        assert {name: found.get(name) for name in locked} == locked
    pins = dict(
        line.split("==") for line in Path("3rdparty/python/app-constraints.txt").read_text().split()
        if "==" in line
    )
    for distribution in ("python-dateutil", "six"):
        assert spdx[distribution] == pins[distribution], distribution
        assert cyclonedx[distribution] == pins[distribution], distribution
