"""`extra_commands` and `fake_root_commands` through `pants package` on a scratch repo: the
ownership fakeroot records reaches the customisation layer, podman runs the image as the user
the script added, and a failing, escaping or networking script fails the build naming its
target, with nothing in dist/ (the sandbox's boundary itself is tested in the core's
commands_test.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata_harness import (
    ScratchRepo,
    assert_valid_image,
    ran_processes,
    require_tool,
    serve_directory,
)

FAKE_ROOT = """
mkdir -p var/log/app && chown 1000:1000 var/log/app && chmod 2775 var/log/app
echo 'app:x:1000:1000::/home/app:/bin/sh' >> etc/passwd && echo 'app:x:1000:' >> etc/group
mkdir data && touch data/a && chown -R 1000:1000 data
"""
WRITES = "echo log > /var/log/app/x && echo d > /data/b && cat /var/log/app/x /data/b && id"
BUILD = f"""
    file(name="busybox", source="bin/busybox")
    oci_image(
        name="image",
        dependencies=[":busybox"],
        fake_nss=True,
        fake_root_commands={FAKE_ROOT!r},
        entrypoint=["/bin/busybox", "sh", "-c", {WRITES!r}],
    )
    oci_image(
        name="extra",
        dependencies=[":busybox"],
        extra_commands="mkdir -p srv && echo made > srv/made.txt && chmod 640 srv/made.txt",
        entrypoint=["/bin/busybox", "cat", "/srv/made.txt"],
    )
"""


@dataclass(frozen=True)
class Built:
    repo: ScratchRepo
    dist: Path  # a copy of dist/ right after the first build: later tests build in the repo


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("commands")
    repo = ScratchRepo(base / "repo", isolated_cache=True)
    repo.write({"bin/busybox": Path(require_tool("busybox")).read_bytes(), "BUILD": BUILD})
    (repo.root / "bin/busybox").chmod(0o755)
    repo.run("package", "//:image", "//:extra")
    return Built(repo, Path(shutil.copytree(repo.root / "dist", base / "dist")))


def top_layer(path: Path) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes]]:
    """A docker-archive's top layer (the customisation layer): its members and its files'
    contents, by path."""
    with tarfile.open(path) as outer:
        (manifest,) = json.load(outer.extractfile("manifest.json"))
        with tarfile.open(fileobj=outer.extractfile(manifest["Layers"][-1])) as layer:
            members = {m.name.rstrip("/"): m for m in layer.getmembers()}
            files = {p: layer.extractfile(m).read() for p, m in members.items() if m.isfile()}
    return members, files


def owner(member: tarfile.TarInfo) -> tuple[int, int, str, str, str]:
    return member.uid, member.gid, member.uname, member.gname, oct(member.mode)


def test_fake_root_commands_ownership_reaches_the_layer_and_the_container(
    built: Built, run_image
) -> None:
    image = built.dist / "image.tar"
    layer, files = top_layer(image)
    assert files["etc/passwd"].endswith(b"\napp:x:1000:1000::/home/app:/bin/sh\n")
    assert owner(layer["var/log/app"]) == (1000, 1000, "app", "app", "0o2775")
    assert owner(layer["data"]) == (1000, 1000, "app", "app", "0o755")
    assert owner(layer["data/a"]) == (1000, 1000, "app", "app", "0o644")
    # What fakeroot did not chown keeps the image's owner.
    assert owner(layer["etc/passwd"]) == (0, 0, "root", "root", "0o644")
    assert_valid_image(image, "docker-archive")
    code, out = run_image(image, user="1000")
    assert (code, out) == (0, "log\nd\nuid=1000(app) gid=1000(app) groups=1000(app)\n")


def test_extra_commands_alone_make_a_file_with_its_mode_and_the_image_owner(
    built: Built, run_image
) -> None:
    image = built.dist / "extra.tar"
    layer, _ = top_layer(image)
    assert owner(layer["srv/made.txt"]) == (0, 0, "root", "root", "0o640")
    assert_valid_image(image, "docker-archive")
    assert run_image(image) == (0, "made\n")


def test_one_layer_gets_the_content_the_commands_and_then_the_permissions(
    built: Built, run_image
) -> None:
    """`max_layers=1` (dockerTools' `buildImage`): the scripts run over all the content, and
    `permissions` apply after them, over what they left."""
    built.repo.write({"single/BUILD": """
        oci_image(
            name="image",
            dependencies=["//:busybox"],
            max_layers=1,
            fake_root_commands="mkdir -p var/log/app && chown 1000:1000 var/log/app && "
                               "chmod 2775 var/log/app && test -x bin/busybox",
            permissions={"/var/log/app": {"mode": "0750"}},
            entrypoint=["/bin/busybox", "stat", "-c", "%a %u:%g", "/var/log/app"],
        )
    """})
    built.repo.run("package", "//single:image")
    image = built.repo.root / "dist/single/image.tar"
    with tarfile.open(image) as outer:
        (manifest,) = json.load(outer.extractfile("manifest.json"))
    assert len(manifest["Layers"]) == 1
    layer, files = top_layer(image)
    assert "bin/busybox" in files
    assert owner(layer["var/log/app"]) == (1000, 1000, "", "", "0o750")
    assert_valid_image(image, "docker-archive")
    assert run_image(image) == (0, "750 1000:1000\n")


def test_a_rebuild_under_another_umask_gives_the_same_bytes(built: Built) -> None:
    old = os.umask(0o077)
    try:  # no cache: the customisation layer's scripts run again, under umask 077
        result = built.repo.run("--no-local-cache", "package", "//:image")
    finally:
        os.umask(old)
    assert ran_processes(result, "Building //:image: customisation layer")
    assert sha256(built.repo.root / "dist/image.tar") == sha256(built.dist / "image.tar")


def test_a_changed_script_reruns_only_the_customisation_layer(built: Built) -> None:
    build = built.repo.root / "BUILD"
    original = build.read_text()
    build.write_text(original.replace("chown -R 1000:1000 data", "chown -R 1000:1000 data && touch more"))
    try:
        result = built.repo.run("package", "//:image")
    finally:
        build.write_text(original)
    assert ran_processes(result, "Building //:") == ["Building //:image: customisation layer"]
    layer, _ = top_layer(built.repo.root / "dist/image.tar")
    assert "more" in layer


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "fields, fragments",
    [
        ({"fake_root_commands": "echo about to fail >&2; exit 3"},
         ["Building bad:image", "`fake_root_commands` script failed (exit code 3)",
          "about to fail"]),
        ({"extra_commands": "touch /tmp/strata-commands-escape"},
         ["Building bad:image", "`extra_commands` script failed", "No such file or directory"]),
        ({"extra_commands": "echo > ../escape"},
         ["Building bad:image", "`extra_commands` script failed", "Read-only file system"]),
        ({"extra_commands": "true", "command_tools": ["sh", "strata-no-such-tool"]},
         ["The `command_tools` field of bad:image names `strata-no-such-tool`, which is not "
          "in any of"]),
        ({"extra_commands": "echo started; sleep 600", "command_tools": ["sh", "echo", "sleep"],
          "command_timeout": 2},
         ["Building bad:image", "started", "the `extra_commands` script ran for longer than its "
          "2 s (`command_timeout`) and was stopped"]),
        ({"extra_commands": "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo the-end; exit 1",
          "command_tools": ["sh", "head", "tr", "echo"]},
         ["Building bad:image", "the-end", "the last 64 KiB of its output are above"]),
    ],
    ids=["exit-3", "writes-tmp", "writes-parent", "missing-tool", "timeout", "huge-output"],
)
def test_a_failing_script_fails_the_build_naming_target_and_field_and_writes_nothing(
    built: Built, fields: dict, fragments: list
) -> None:
    arguments = "".join(f", {name}={value!r}" for name, value in fields.items())
    built.repo.write({"bad/BUILD": f"oci_image(name='image', dependencies=['//:busybox']{arguments})\n"})
    result = built.repo.run("package", "//bad:image", check=False)
    assert result.returncode != 0
    for fragment in fragments:
        assert fragment in result.stderr
    assert len(result.stderr) < 200_000  # a script's output is kept to a bounded tail
    assert not (built.repo.root / "dist/bad").exists()
    assert not Path("/tmp/strata-commands-escape").exists()


def test_a_script_cannot_reach_the_network(built: Built) -> None:
    """A server on 127.0.0.1 answers the test, but not the script: its network is its own,
    with nothing listening on its loopback."""
    with serve_directory(built.repo.root) as url:
        built.repo.write({"net/BUILD": f"""
            oci_image(
                name="image",
                dependencies=["//:busybox"],
                command_tools=["sh", "busybox"],
                extra_commands="busybox wget -O fetched {url}/",
            )
        """})
        assert urllib.request.urlopen(url, timeout=5).status == 200
        result = built.repo.run("package", "//net:image", check=False)
    assert result.returncode != 0
    for fragment in ("Building net:image", "extra_commands", "Connection refused"):
        assert fragment in result.stderr
    assert not (built.repo.root / "dist/net").exists()


def test_another_build_of_a_host_tool_reruns_the_layer(built: Built, tmp_path: Path) -> None:
    """A tool's content is in the layer's cache key: the same path with other bytes (a Debian
    upgrade) runs the scripts again."""
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy(shutil.which("true"), tools / "strata-true")
    search = f"--strata-command-search-paths={[str(tools), '/usr/bin', '/bin']}"
    built.repo.write({"fp/BUILD": """
        oci_image(name="image", dependencies=["//:busybox"], extra_commands="strata-true",
                  command_tools=["sh", "strata-true"])
    """})
    first = built.repo.run(search, "package", "//fp:image")
    with open(tools / "strata-true", "ab") as f:
        f.write(b"\0")  # still runs: bytes past the ELF's segments
    second = built.repo.run(search, "package", "//fp:image")
    for result in (first, second):
        assert ran_processes(result, "Building fp:image") == ["Building fp:image: customisation layer"]
