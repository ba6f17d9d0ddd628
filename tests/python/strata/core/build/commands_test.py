"""Build-time commands over a small layer, run for real (bubblewrap, fakeroot)."""

import contextlib
import hashlib
import os
import random
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from strata.core.build import layer
from strata.core.command_files import sandbox_files
from strata.core.build.spec import LayerSpec
from strata_harness import require_tool
from strata_harness.tools import unavailable

TOOLS = ("sh", "cat", "chmod", "chown", "echo", "id", "ln", "mkdir", "mkfifo", "mknod", "touch")
RUNNERS = ("bwrap", "env", "sh", "fakeroot", "getopt", "sed", "cut", "sleep")
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
    require_tool("fakeroot")
    require_tool("bwrap")
    root = tmp_path / "sandbox"
    (root / "custom").mkdir(parents=True)
    (root / "custom/passwd").write_text(PASSWD)
    (root / "custom/group").write_text(GROUP)
    (root / "custom/big").write_bytes(b"x" * (512 << 10))
    (root / "custom/big").chmod(0o555)
    return root


def commands_spec(tools=TOOLS, timeout: int = 60) -> dict:
    """`commands` without its scripts, as the rules find and fingerprint its programs."""
    tools, runners = [tool(name) for name in tools], [tool(name) for name in RUNNERS]
    programs = [path for name, path, _ in tools + runners if name != "bwrap"]
    files = sandbox_files(programs, fakeroot=shutil.which("fakeroot"))
    return {"tools": tools, "runners": runners, "files": [list(f) for f in files.items()],
            "timeout": timeout}


def spec(extra: str = None, fake_root: str = None, tools=TOOLS, timeout: int = 60) -> dict:
    files = [{"path": f"etc/{name}", "type": "file", "source": f"custom/{name}", "mode": 0o644}
             for name in ("passwd", "group")]
    files.append({"path": "opt/big", "type": "file", "source": "custom/big", "mode": 0o755})
    commands = commands_spec(tools, timeout)
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


def test_writes_outside_the_layer_fail_and_reach_nothing(sandbox: Path, capfd) -> None:
    for script, error in (("touch /tmp/strata-escape-test", "No such file or directory"),
                          ("echo > ../escape", "Read-only file system")):
        with pytest.raises(ValueError):
            build(sandbox, spec(script))
        assert error in capfd.readouterr().err
    assert not Path("/tmp/strata-escape-test").exists()
    assert not (sandbox.parent / "escape").exists()


FIELDS = ("extra_commands", "fake_root_commands")


def spec_for(field: str, script: str, **options) -> dict:
    return spec(**{"extra" if field == "extra_commands" else "fake_root": script}, **options)


@pytest.mark.parametrize("field", FIELDS)
def test_a_script_cannot_write_through_a_host_process_root(
    sandbox: Path, tmp_path: Path, field: str
) -> None:
    """The issue's escape: /proc/PID/root of a host process is the host's own file system."""
    marker = tmp_path / "marker"
    script = f'for p in /proc/[0-9]*; do echo x > "$p/root{marker}" && break; done'
    try:
        build(sandbox, spec_for(field, script))
    except ValueError:
        pass  # failing is as good: what matters is the host
    assert not marker.exists()


@pytest.mark.parametrize("field", FIELDS)
def test_a_script_cannot_kill_a_host_process(sandbox: Path, field: str) -> None:
    victim = subprocess.Popen(["sleep", "300"])
    try:
        with pytest.raises(ValueError, match=f"the `{field}` script failed"):
            build(sandbox, spec_for(field, f"kill -9 {victim.pid}"))
        time.sleep(0.2)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@contextlib.contextmanager
def logging_server():
    """A TCP server on the host's 127.0.0.1: (its port, the list of connections it got)."""
    connections = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, address = server.accept()
            except OSError:
                continue
            connections.append(address)
            connection.sendall(b"HTTP/1.0 200 OK\r\n\r\nreached\n")
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], connections
    finally:
        done.set()
        thread.join()
        server.close()


@pytest.mark.parametrize("field", FIELDS)
def test_a_script_cannot_reach_a_server_on_the_host(sandbox: Path, field: str, capfd) -> None:
    """Neither through the sandbox's own network nor by entering the host's (nsenter)."""
    require_tool("busybox")
    with logging_server() as (port, connections):
        url = f"http://127.0.0.1:{port}/"
        script = (f"busybox nsenter --net=/proc/{os.getpid()}/ns/net busybox wget -O got {url} "
                  f"|| busybox wget -O got {url}")
        with pytest.raises(ValueError, match=f"the `{field}` script failed"):
            build(sandbox, spec_for(field, script, tools=("sh", "busybox")))
    assert connections == []
    assert "Connection refused" in capfd.readouterr().err  # the sandbox's own, empty, lo


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("script", [
    "cat /etc/shadow > x",
    "/usr/bin/python3 -c 'open(\"x\", \"w\").write(\"ran\")'",
    "cat {host_file} > x",
], ids=["etc-shadow", "absolute-path-program", "host-file"])
def test_a_script_reads_and_runs_nothing_of_the_host(
    sandbox: Path, tmp_path: Path, field: str, script: str, capfd
) -> None:
    """No host file but the tools and what they need: not /etc/shadow, not a program by its
    absolute path, not a file whose content the layer's cache key would not hold."""
    host_file = tmp_path / "host-file"
    host_file.write_text("host content\n")
    with pytest.raises(ValueError, match=f"the `{field}` script failed"):
        build(sandbox, spec_for(field, script.format(host_file=host_file)))
    assert not (sandbox / "out").exists()
    err = capfd.readouterr().err
    assert "No such file or directory" in err or "/usr/bin/python3: not found" in err


def test_a_file_changed_since_its_fingerprint_fails_the_build(sandbox: Path) -> None:
    """The fingerprints are the cache key's part of what a script can read: a host file that
    no longer matches its fingerprint may not run."""
    changed = spec("true")
    path, _ = changed["commands"]["files"][0]
    changed["commands"]["files"][0] = [path, "0" * 64]
    with pytest.raises(ValueError, match=f"{path} changed after it was fingerprinted"):
        build(sandbox, changed)


def test_only_the_tail_of_a_failing_script_output_is_kept(sandbox: Path, capfd) -> None:
    script = "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo the-end; exit 1"
    with pytest.raises(ValueError, match="the last 64 KiB of its output are above"):
        build(sandbox, spec(script, tools=TOOLS + ("head", "tr")))
    err = capfd.readouterr().err
    assert len(err) < (64 << 10) + 200
    assert err.endswith("x\nthe-end\n")


def test_a_script_running_too_long_is_stopped_naming_the_field(sandbox: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"the `extra_commands` script ran for longer than its "
                                         r"1 s \(`command_timeout`\) and was stopped"):
        build(sandbox, spec("echo going; sleep 60", tools=("sh", "echo", "sleep"), timeout=1))
    assert time.monotonic() - started < 20


def host_processes(argument: str) -> list:
    """The pids of this machine's processes with `argument` in their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and argument.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("field", FIELDS)
def test_a_background_child_neither_holds_the_build_nor_survives_it(
    sandbox: Path, field: str
) -> None:
    seconds = str(random.randrange(100000, 999999))
    started = time.monotonic()
    _, members, _ = build(sandbox, spec_for(field, f"sleep {seconds} & touch made",
                                            tools=("sh", "sleep", "touch")))
    assert time.monotonic() - started < 20
    assert "made" in members
    assert host_processes(f"sleep\0{seconds}") == []


@pytest.mark.parametrize("commands, message", [
    ({"tools": [], "runners": [], "files": [], "timeout": 1},
     "extra_commands or fake_root_commands must be a script"),
    ({"extra_commands": ["true"], "tools": [], "runners": [], "files": [], "timeout": 1},
     "must be a script"),
    ({"extra_commands": "true", "tools": []}, r"missing keys \['runners', 'files', 'timeout'\]"),
    ({"extra_commands": "true", "tools": [["sh", "bin/sh", "0"]], "runners": [], "files": [],
      "timeout": 1}, r"commands.tools: a tool is \[name, absolute path, sha256\]"),
    ({"extra_commands": "true", "tools": [], "runners": [["x/sh", "/bin/sh", "0"]], "files": [],
      "timeout": 1}, r"commands.runners: a tool is"),
    ({"extra_commands": "true", "tools": [], "runners": [], "files": [["lib/x", "0"]],
      "timeout": 1}, r"commands.files: a file is \[absolute path, sha256\]"),
    ({"extra_commands": "true", "tools": [], "runners": [], "files": [], "timeout": 0},
     r"commands.timeout: expected a positive number of seconds: 0"),
    ({"extra_commands": "true", "tools": [], "runners": [], "files": [], "timeout": True},
     r"commands.timeout: expected a positive number of seconds"),
])
def test_invalid_commands_are_rejected(commands: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LayerSpec.from_json({"commands": commands})
