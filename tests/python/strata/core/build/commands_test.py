"""Build-time commands over a small layer, run for real (unshare, fakeroot; as root)."""

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from strata.core.build import layer
from strata.core.spec import LayerSpec
from strata_harness import require_tool, serve_directory
from strata_harness.tools import unavailable

TOOLS = ("sh", "cat", "chmod", "chown", "echo", "id", "ln", "mkdir", "mkfifo", "mknod", "touch")
RUNNERS = ("unshare", "env", "sh", "fakeroot", "getopt", "sed", "cut", "sleep")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def tool(name: str) -> list:
    path = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        unavailable(f"`{name}` is not installed")
    return [name, path, hashlib.sha256(Path(path).read_bytes()).hexdigest()]


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A layer sandbox with a tiny customisation content: etc/passwd and etc/group, as
    `fake_nss` gives them, and a large file Pants would hardlink from its store, read-only."""
    if os.geteuid() != 0:
        unavailable("build-time commands need root: they run in a mount namespace")
    require_tool("fakeroot")
    root = tmp_path / "sandbox"
    (root / "custom").mkdir(parents=True)
    (root / "custom/passwd").write_text(PASSWD)
    (root / "custom/group").write_text(GROUP)
    (root / "custom/big").write_bytes(b"x" * (512 << 10))
    (root / "custom/big").chmod(0o555)
    return root


def spec(extra: str = None, fake_root: str = None, tools=TOOLS) -> dict:
    files = [{"path": f"etc/{name}", "type": "file", "source": f"custom/{name}", "mode": 0o644}
             for name in ("passwd", "group")]
    files.append({"path": "opt/big", "type": "file", "source": "custom/big", "mode": 0o755})
    commands = {"tools": [tool(name) for name in tools], "runners": [tool(n) for n in RUNNERS]}
    if extra is not None:
        commands["extra_commands"] = extra
    if fake_root is not None:
        commands["fake_root_commands"] = fake_root
    return {"settings": {"mtime": 7, "compression": "none"}, "entries": files,
            "commands": commands}


def build(sandbox: Path, spec_json: dict, out: str = "out") -> tuple[dict, dict, dict]:
    """(layer.json, members by path, file contents by path)."""
    info = layer.build_layer(LayerSpec.from_json(spec_json), sandbox, sandbox / out)
    with tarfile.open(sandbox / out / "layer.tar") as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        files = {p: tar.extractfile(m).read() for p, m in members.items() if m.isfile()}
    return info, members, files


def stamp(member: tarfile.TarInfo) -> tuple:
    return member.uid, member.gid, member.uname, member.gname, oct(member.mode), member.mtime


FAKE_ROOT = """
mkdir -p var/log/app && chown 1000:1000 var/log/app && chmod 2775 var/log/app
echo 'app:x:1000:1000::/home/app:/bin/sh' >> etc/passwd
mkdir data && touch data/a && chown -R 1000:65534 data
ln -s ../data var/data
id -u > whoami
"""


def test_fake_root_ownership_and_modes_reach_the_layer(sandbox: Path) -> None:
    _, members, files = build(sandbox, spec("echo extra > made && chmod 600 made", FAKE_ROOT))
    assert stamp(members["var/log/app"]) == (1000, 1000, "app", "", "0o2775", 7)
    assert stamp(members["data"]) == (1000, 65534, "app", "nogroup", "0o755", 7)
    assert stamp(members["data/a"]) == (1000, 65534, "app", "nogroup", "0o644", 7)
    assert members["var/data"].issym() and members["var/data"].linkname == "../data"
    # Untouched by fakeroot: the layer's owner; extra_commands' mode is kept.
    assert stamp(members["made"]) == (0, 0, "root", "root", "0o600", 7)
    assert stamp(members["opt/big"])[4] == "0o755"
    assert files["etc/passwd"] == (PASSWD + "app:x:1000:1000::/home/app:/bin/sh\n").encode()
    assert files["whoami"] == b"0\n"  # fakeroot's root


def test_the_scripts_change_copies_never_the_sandbox_files(sandbox: Path) -> None:
    _, _, files = build(sandbox, spec("echo more >> opt/big && echo more >> etc/group"))
    assert files["etc/group"] == (GROUP + "more\n").encode()
    assert (sandbox / "custom/group").read_text() == GROUP
    assert (sandbox / "custom/big").read_bytes() == b"x" * (512 << 10)


def test_the_same_scripts_give_the_same_bytes_whatever_the_umask(sandbox: Path) -> None:
    script = "mkdir -p a/b && touch a/b/c && echo x > d"
    digests = []
    for mask, out in ((0o022, "out-022"), (0o077, "out-077")):
        old = os.umask(mask)
        try:
            info, members, _ = build(sandbox, spec(script, FAKE_ROOT), out)
        finally:
            os.umask(old)
        assert [oct(members[p].mode) for p in ("a/b", "a/b/c", "d")] == ["0o755", "0o644", "0o644"]
        digests.append(info["digest"])
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    "extra, fake_root, message",
    [
        ("echo failing >&2; exit 3", None, "the `extra_commands` script failed (exit code 3)"),
        (None, "false", "the `fake_root_commands` script failed (exit code 1)"),
        ("wc -l etc/passwd", None, "`extra_commands` script failed (exit code 127)"),  # not a tool
        ("mkfifo pipe", None, "made 'pipe' a fifo: a layer holds only files, directories"),
        (None, "mknod dev-null c 1 3", "made 'dev-null' a character device"),
    ],
    ids=["exit-3", "fake-root-false", "tool-not-named", "fifo", "fakeroot-mknod"],
)
def test_failures_name_the_field_and_what_went_wrong(
    sandbox: Path, extra, fake_root, message
) -> None:
    with pytest.raises(ValueError) as error:
        build(sandbox, spec(extra, fake_root))
    assert message in str(error.value)
    assert not (sandbox / "out").exists()


def test_the_escapes_fail_on_a_read_only_file_system(sandbox: Path, capfd) -> None:
    for script in ("touch /tmp/strata-escape-test", "echo > ../escape"):
        with pytest.raises(ValueError):
            build(sandbox, spec(script))
        assert "Read-only file system" in capfd.readouterr().err
    assert not Path("/tmp/strata-escape-test").exists()
    assert not (sandbox.parent / "escape").exists()


def test_the_network_is_unreachable(sandbox: Path, capfd) -> None:
    """A server on 127.0.0.1 that this test reaches, but the script does not."""
    busybox = require_tool("busybox")
    with serve_directory(sandbox) as url:
        script = f"{Path(busybox).name} wget -O fetched {url}/"
        with pytest.raises(ValueError, match="`extra_commands` script failed"):
            build(sandbox, spec(script, tools=("sh", "busybox")))
    assert "Network is unreachable" in capfd.readouterr().err


@pytest.mark.parametrize("commands, message", [
    ({"tools": [], "runners": []}, "extra_commands or fake_root_commands must be a script"),
    ({"extra_commands": ["true"], "tools": [], "runners": []}, "must be a script"),
    ({"extra_commands": "true", "tools": []}, r"missing keys \['runners'\]"),
    ({"extra_commands": "true", "tools": [["sh", "bin/sh", "0"]], "runners": []},
     r"commands.tools: a tool is \[name, absolute path, sha256\]"),
    ({"extra_commands": "true", "tools": [], "runners": [["x/sh", "/bin/sh", "0"]]},
     r"commands.runners: a tool is"),
])
def test_invalid_commands_are_rejected(commands: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LayerSpec.from_json({"commands": commands})


def test_without_root_the_error_says_so(sandbox: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ValueError, match="build-time commands need root: their sandbox is a mount"):
        build(sandbox, spec("true"))
