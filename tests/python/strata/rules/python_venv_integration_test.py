"""`python_venv` built as a user would (`pants package`) in a scratch copy of the demo repo: a
venv from `python_sources` and a requirement with a console script, run read-only; an image
without the venv's interpreter, or without its entrypoint's program, refused; wheels for
another architecture's image; a requirement with no wheel refused unless `allow_sdists`; the
same venv layers from two checkouts; a venv's resolve apart from the plugin's. (Wheels that do not fit the interpreter are refused by the
layer step: tests/python/strata/core/build/python_test.py.)"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

from strata_harness.demo import demo_repo, pin
from strata_harness.images import assert_valid_image
from strata_harness.qemu import elf_machine

TOOL = {
    "app/tool/__init__.py": "",
    "app/tool/main.py": (
        "import pyflakes\n"
        "\n"
        "print('tool ran as', __name__, 'with pyflakes', pyflakes.__version__)\n"
    ),
    "app/tool/BUILD": """
python_requirement(name="pyflakes", requirements=["pyflakes==3.2.0"])

python_sources(name="src", interpreter_constraints=["CPython==3.11.*"],
               dependencies=[":pyflakes"])

python_venv(
    name="tool",
    dependencies=[":src"],
    python="/usr/bin/python3.11",
    entry_point="tool.main",
    bytecode="checked-hash",
)

oci_image(name="image", dependencies=[":tool", "app:python"], output_format="oci")

# A newcomer's mistakes: no interpreter, an interpreter where Debian's is not, and a program
# the image does not have (Debian's python3.11 has no `python3`).
oci_image(name="no_python", dependencies=[":tool"], output_format="oci")
python_venv(name="misplaced", dependencies=[":src"], python="/usr/local/bin/python3.11",
            entry_point="tool.main")
oci_image(name="misplaced_image", dependencies=[":misplaced", "app:python"], output_format="oci")
oci_image(name="no_python3", dependencies=[":tool", "app:python"], output_format="oci",
          entrypoint=["python3", "-m", "tool.main"])
""",
}

# A stand-in for the image's interpreter where no test runs it: no Debian packages to download.
STAND_IN_PYTHON = {"usr/bin/python3.11": "#!/bin/sh\n",
                   "usr/bin/BUILD": 'file(name="python3.11", source="python3.11")\n'}


def write_stand_in_python(repo) -> str:
    """Writes STAND_IN_PYTHON, executable, into the repo; its target's address."""
    repo.write(STAND_IN_PYTHON)
    (repo.root / "usr/bin/python3.11").chmod(0o755)
    return "usr/bin:python3.11"

SITE = "opt/venv/lib/python3.11/site-packages"


def test_a_venv_from_sources_and_requirements_runs_read_only(tmp_path: Path, run_image) -> None:
    repo = demo_repo(tmp_path / "repo")
    repo.write(TOOL)
    pin(repo, "pyflakes==3.2.0")
    repo.run("package", "app/tool:image")
    layout = repo.root / "dist/app.tool/image"
    rootfs = tmp_path / "unpacked" / "rootfs"
    assert_valid_image(layout, "oci", unpack_to=tmp_path / "unpacked")

    # pip's layout: the console script's shebang is the venv's python, which links to the
    # image's interpreter; the dist-info has a RECORD that lists the script.
    script = (rootfs / "opt/venv/bin/pyflakes").read_text()
    assert script.startswith("#!/opt/venv/bin/python\n"), script[:80]
    assert (rootfs / "opt/venv/bin/python").readlink() == Path("/usr/bin/python3.11")
    record = (rootfs / SITE / "pyflakes-3.2.0.dist-info/RECORD").read_text()
    assert "../../../bin/pyflakes,sha256=" in record
    assert (rootfs / SITE / "pyflakes-3.2.0.dist-info/INSTALLER").read_text() == "strata\n"
    # checked-hash pycs (PEP 552 flags 0b11), for first-party and third-party modules alike.
    for pyc in (f"{SITE}/tool/__pycache__/main.cpython-311.pyc",
                f"{SITE}/pyflakes/__pycache__/checker.cpython-311.pyc"):
        assert (rootfs / pyc).read_bytes()[4:8] == b"\x03\x00\x00\x00", pyc

    with open(layout / "index.json") as f:
        manifest_digest = json.load(f)["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest).read_text())
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"].split(":")[1])
                        .read_text())
    assert config["config"]["Entrypoint"] == ["/opt/venv/bin/tool"]

    assert run_image(layout, fmt="oci", read_only=True) == (
        0, "tool ran as __main__ with pyflakes 3.2.0\n")
    assert run_image(layout, ["--version"], fmt="oci", read_only=True,
                     entrypoint="/opt/venv/bin/pyflakes") == (0, "3.2.0 Python 3.11.2 on Linux\n")

    # Images that would not start are build errors naming the target and field; dist/ gets
    # nothing of them.
    for image, message in [
        ("no_python",
         "The `python` field of app/tool:tool is /usr/bin/python3.11, but in the image "
         "app/tool:no_python, /usr/bin/python3.11 is not in the image: add a `debian_packages` "
         "target with `python3.11` to the image's dependencies"),
        ("misplaced_image",
         "The `python` field of app/tool:misplaced is /usr/local/bin/python3.11, but in the image "
         "app/tool:misplaced_image, /usr/local/bin/python3.11 is not in the image"),
        ("no_python3",
         "The `entrypoint` field of app/tool:no_python3 runs 'python3', but no directory of the "
         "image's PATH holds it (/usr/local/sbin/python3 is not in the image;"),
    ]:
        result = repo.run("package", f"app/tool:{image}", check=False)
        assert result.returncode != 0 and message in " ".join(result.stderr.split()), (
            result.stderr)
        assert not (repo.root / "dist/app.tool" / image).exists()


def test_an_arm64_image_gets_arm64_wheels_and_an_unversioned_python_is_an_error(
    tmp_path: Path,
) -> None:
    repo = demo_repo(tmp_path / "repo")
    python = write_stand_in_python(repo)
    pin(repo, "MarkupSafe==2.1.5")
    repo.write({
        "app/arm/BUILD": f"""
python_requirement(name="markupsafe", requirements=["MarkupSafe==2.1.5"])
python_venv(name="venv", dependencies=[":markupsafe"], python="/usr/bin/python3.11")
oci_image(name="image", dependencies=[":venv", "{python}"], architecture="arm64",
          output_format="oci")

python_venv(name="unversioned", dependencies=[":markupsafe"], python="/usr/bin/python3")
oci_image(name="unversioned_image", dependencies=[":unversioned"])
""",
    })
    # pex resolves for the image's platform, not this machine's: MarkupSafe's C extension is
    # the aarch64 build, and its dist-info says so.
    repo.run("package", "app/arm:image")
    assert_valid_image(repo.root / "dist/app.arm/image", "oci", unpack_to=tmp_path / "unpacked")
    site = tmp_path / "unpacked/rootfs" / SITE
    (speedups,) = (site / "markupsafe").glob("_speedups*.so")
    assert elf_machine(speedups) == "aarch64"
    assert "aarch64" in (site / "MarkupSafe-2.1.5.dist-info/WHEEL").read_text()

    result = repo.run("package", "app/arm:unversioned_image", check=False)
    assert result.returncode != 0
    assert "The `python_version` field of app/arm:unversioned is required" in result.stderr


def venv_layers(root: Path) -> dict:
    """{history comment: diff_id} of the layers of the scratch repo's venv-only image."""
    with tarfile.open(root / "dist/app.repro/image.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(manifest["Config"]))
    comments = [entry["comment"] for entry in config["history"]]
    return dict(zip(comments, config["rootfs"]["diff_ids"]))


def test_venv_layers_are_the_same_bytes_from_two_checkouts(tmp_path: Path) -> None:
    # Each checkout has a store of its own: its layer Processes (installs, bytecode) run anew.
    # The demo's venv alone: no Debian packages to download twice.
    first, second = (demo_repo(tmp_path / name, isolated_cache=True) for name in ("a", "bb"))
    for repo in (first, second):
        # Only a stand-in interpreter in it, so nothing to run: an empty entrypoint, not the
        # launcher's.
        python = write_stand_in_python(repo)
        repo.write({"app/repro/BUILD": 'oci_image(name="image", dependencies=["app:hello", '
                                       f'"{python}"], entrypoint=[])\n'})
        repo.run("package", "app/repro:image")
        assert_valid_image(repo.root / "dist/app.repro/image.tar", "docker-archive")
    layers = venv_layers(first.root)
    # two distributions, the sources, the skeleton; and the stand-in interpreter
    assert len(layers) == 5, layers
    assert venv_layers(second.root) == layers


def test_a_venv_resolves_in_its_own_resolve_apart_from_the_plugins_pins(tmp_path: Path) -> None:
    """black 24.10 requires packaging>=22, which the plugin's resolve pins at 21.3 (for Pants):
    the venv's `app` resolve has its own pins, as a pex_binary's would."""
    repo = demo_repo(tmp_path / "repo", config={"python": {"resolves": {
        "app": "3rdparty/python/app-constraints.txt",
        "plugin": "3rdparty/python/constraints.txt",
    }}})
    shutil.copy("3rdparty/python/constraints.txt", repo.root / "3rdparty/python")
    assert "packaging==21.3" in (repo.root / "3rdparty/python/constraints.txt").read_text()
    python = write_stand_in_python(repo)
    pin(repo, "black==24.10.0", "click==8.1.8", "mypy-extensions==1.0.0", "packaging==24.2",
        "pathspec==0.12.1", "platformdirs==4.3.6")
    repo.write({"app/black/BUILD": f"""
python_requirement(name="black", requirements=["black==24.10.0"], resolve="app")
python_venv(name="venv", dependencies=[":black"], python="/usr/bin/python3.11")
oci_image(name="image", dependencies=[":venv", "{python}"], entrypoint=[])
"""})
    repo.run("package", "app/black:image")
    assert_valid_image(repo.root / "dist/app.black/image.tar", "docker-archive")
    with tarfile.open(repo.root / "dist/app.black/image.tar") as tar:
        names = {name for layer in json.load(tar.extractfile("manifest.json"))[0]["Layers"]
                 for name in tarfile.open(fileobj=tar.extractfile(layer)).getnames()}
    assert f"{SITE}/packaging-24.2.dist-info/METADATA" in names
    assert f"{SITE}/black-24.10.0.dist-info/METADATA" in names


def sdist(directory: Path, name: str, version: str) -> Path:
    """A source distribution of one empty package, with no wheel beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.tar.gz"
    files = {
        # Built in an isolated environment with setuptools from the index: the build machine's
        # CPython of the image's version (Debian's) may have none.
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
                          'build-backend = "setuptools.build_meta"\n',
        "setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
                    f"packages=[{name!r}])\n",
        f"{name}/__init__.py": "VALUE = 1\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_requirement_with_no_wheel_is_an_error_unless_sdists_are_allowed(
    tmp_path: Path,
) -> None:
    links = sdist(tmp_path / "links", "strata_sdist_only", "1.0").parent
    repo = demo_repo(tmp_path / "repo")
    python = write_stand_in_python(repo)
    pin(repo, "strata_sdist_only==1.0")
    repo.write({"app/sdist/BUILD": f"""
python_requirement(name="req", requirements=["strata_sdist_only==1.0"])
python_venv(name="wheels_only", dependencies=[":req"], python="/usr/bin/python3.11")
python_venv(name="built", dependencies=[":req"], python="/usr/bin/python3.11",
            allow_sdists=True)
oci_image(name="wheels_only_image", dependencies=[":wheels_only", "{python}"], entrypoint=[])
oci_image(name="built_image", dependencies=[":built", "{python}"], entrypoint=[])
"""})
    find_links = f"--python-repos-find-links=['file://{links}']"
    result = repo.run(find_links, "package", "app/sdist:wheels_only_image", check=False)
    assert result.returncode != 0
    assert (
        "app/sdist:wheels_only requires strata_sdist_only 1.0, which has no wheel for the "
        "image's platform, linux/amd64 (CPython 3.11, x86_64)"
    ) in " ".join(result.stderr.split()), result.stderr
    assert not (repo.root / "dist/app.sdist/wheels_only_image.tar").exists()

    # Allowed, pex builds it (on this machine, for this machine).
    repo.run(find_links, "package", "app/sdist:built_image")
    with tarfile.open(repo.root / "dist/app.sdist/built_image.tar") as tar:
        names = {name for layer in json.load(tar.extractfile("manifest.json"))[0]["Layers"]
                 for name in tarfile.open(fileobj=tar.extractfile(layer)).getnames()}
    assert f"{SITE}/strata_sdist_only/__init__.py" in names
