"""Build-time commands: `extra_commands` and `fake_root_commands` (strata.core.build.spec.Commands)
over a layer's collected entries, whose result replaces them, as dockerTools' extraCommands and
fakeRootCommands make its customisation layer.

The entries are written to a scratch `root/` (files copied: a sandbox file may be a hardlink
into Pants' store), each script runs there as `sh -eu` in bubblewrap's sandbox
(`_sandbox_argv`): new user, PID, mount, network, IPC and UTS namespaces, no capability, and a
file system holding only `root/` (at /layer, writable; under fakeroot its state's directory
too), the tools, the runners and the host files they need (all read-only, each checked against
the sha256 the layer's cache key holds), and a minimal /dev. Then `root/` is read back.
`fake_root_commands` runs under `fakeroot -s`, whose saved state gives the modes and owners it
faked; everything else keeps its mode on disk and the layer settings' owner. Timestamps are the
layer's, as always. A script runs for `timeout` seconds at most; only the last `OUTPUT_TAIL`
bytes of its output are kept, and shown when it fails.
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import stat
import subprocess
import sys
import time

from strata.core.build.collector import Collector, LayerEntry
from strata.core.build.tarstream import Owner
from strata.core.errors import InvalidInput

# The host programs that run the scripts (strata.core.build.spec.Commands.runners): bubblewrap,
# which makes the sandbox (it runs on the host, the others in the sandbox); fakeroot's own
# script runs getopt, sed, cut and sleep.
SANDBOX = "bwrap"
RUNNERS = (SANDBOX, "env", "sh")
FAKEROOT_RUNNERS = ("fakeroot", "getopt", "sed", "cut", "sleep")
OUTPUT_TAIL = 64 << 10
_LAYER, _STATE = "/layer", "/state"

_KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink"}
_OTHER_KINDS = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
                stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


def runner_names(fake_root: bool) -> tuple:
    return RUNNERS + (FAKEROOT_RUNNERS if fake_root else ())


def run_commands(commands, entries: dict, context) -> dict:
    """The entries (by image path) that `root/` holds after the scripts ran over `entries`."""
    _check_fingerprints(commands)
    work = os.path.realpath(os.path.join(context.scratch(), "commands"))
    root, state_dir = os.path.join(work, "root"), os.path.join(work, "state")
    for directory in (root, state_dir):
        os.makedirs(directory)
    _materialise(entries, root)
    env = {"PATH": "/runners", "HOME": "/nonexistent", "LC_ALL": "C", "TZ": "UTC",
           "SOURCE_DATE_EPOCH": str(context.settings.mtime)}
    state = None
    for field in ("extra_commands", "fake_root_commands"):
        script = getattr(commands, field)
        if script is None:
            continue
        with open(f"{work}/{field}", "w", encoding="utf-8") as f:
            f.write(script)
        command = ["/runners/env", "PATH=/tools", "/runners/sh", "-eu", "/script"]
        writable, script_env = [(root, _LAYER)], env
        if field == "fake_root_commands":  # faked saves its state when the script is done
            state = f"{state_dir}/fakeroot"
            command = ["/runners/fakeroot", "-s", f"{_STATE}/fakeroot", "--", *command]
            writable.append((state_dir, _STATE))
            # The user namespace maps uid and gid 0 alone: a real chown to another id fails
            # with EINVAL, which fakeroot reports (it ignores EPERM only) unless told not to try.
            script_env = {**env, "FAKEROOTDONTTRYCHOWN": "1"}
        _run(_sandbox_argv(commands, f"{work}/{field}", writable, command), script_env,
             commands.timeout, field)
    return _read_back(root, _fakeroot_state(state) if state else {})


def _sandbox_argv(commands, script: str, writable: list, command: list) -> list:
    """bubblewrap's command line running `command` in /layer, over binds chosen one by one:
    tools at /tools/NAME, runners at /runners/NAME, `files` at their own paths, the script at
    /script (all read-only), `writable` [(host directory, sandbox path)], a minimal /dev; the
    rest of its root is an empty read-only tmpfs. Inside, the user is uid/gid 0 of its own
    user namespace (the builder outside) with no capability, whoever builds."""
    runners = {name: path for name, path, _ in commands.runners}
    binds = [
        *(("--ro-bind", path, f"/tools/{name}") for name, path, _ in commands.tools),
        *(("--ro-bind", path, f"/runners/{name}") for name, path, _ in commands.runners
          if name != SANDBOX),
        *(("--ro-bind", path, path) for path, _ in commands.files),
        ("--ro-bind", script, "/script"),
        *(("--bind", source, target) for source, target in writable),
    ]
    return [runners[SANDBOX], "--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0",
            "--hostname", "strata", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--dev", "/dev", *(word for bind in binds for word in bind),
            "--remount-ro", "/", "--chdir", _LAYER, "--", *command]


def _check_fingerprints(commands) -> None:
    """Every host file the sandbox binds still has the content the layer's cache key holds."""
    files = [*((path, sha) for _, path, sha in (*commands.tools, *commands.runners)),
             *commands.files]
    for path, expected in files:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise InvalidInput(
                f"{path} changed after it was fingerprinted (sha256 {expected}), so the "
                "layer's cache key would not hold what the build-time commands ran with: "
                "build again once it is fingerprinted anew (Pants does so when pantsd restarts)"
            )


def _run(command: list, env: dict, timeout: int, field: str) -> None:
    """Runs `command` for `timeout` seconds at most, keeping the last OUTPUT_TAIL bytes of its
    output (stdout and stderr), which go to stderr if it fails. Killing bubblewrap kills the
    whole sandbox (--die-with-parent), and the sandbox ends with its first process (its PID
    namespace's), so nothing it started outlives it or holds its output open."""
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, umask=0o022)
    tail, truncated, deadline = bytearray(), False, time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
                _show(tail, truncated)
                raise InvalidInput(
                    f"the `{field}` script ran for longer than its {timeout} s "
                    "(`command_timeout`) and was stopped, with everything it started; "
                    "the end of its output is above"
                )
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            tail += chunk
            if len(tail) > OUTPUT_TAIL:
                truncated = True
                del tail[:-OUTPUT_TAIL]
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    if code:
        _show(tail, truncated)
        output = (f"the last {OUTPUT_TAIL >> 10} KiB of its output are" if truncated
                  else "its output is")
        raise InvalidInput(
            f"the `{field}` script failed (exit code {code}); {output} above. "
            f"It runs in {_LAYER}, which holds the customisation layer's content and is all it "
            "may write, in a sandbox holding only its command tools (on PATH) and their "
            "libraries besides: no other host file, no network, no host process."
        )


def _show(tail: bytearray, truncated: bool) -> None:
    if truncated:
        sys.stderr.write(f"[... the output's first bytes dropped: its last {OUTPUT_TAIL} "
                         "bytes follow]\n")
    sys.stderr.write(tail.decode("utf-8", "replace"))
    sys.stderr.flush()


def _materialise(entries: dict, root: str) -> None:
    """The entries as files under `root`, each with its spec mode (directories' last, so that
    a read-only one can still be filled)."""
    dirs = []
    for path in sorted(entries):  # parents first
        entry, target = entries[path], os.path.join(root, path)
        if entry.kind == "dir":
            os.mkdir(target)
            dirs.append((target, entry.mode))
        elif entry.kind == "symlink":
            os.symlink(entry.target, target)
        else:
            shutil.copyfile(entry.source, target)
            os.chmod(target, entry.mode)
    for target, mode in reversed(dirs):
        os.chmod(target, mode)


def _fakeroot_state(path: str) -> dict:
    """faked's saved database: {(st_dev, st_ino): (st_mode, uid, gid)} of what it faked.
    A line is `dev=<hex>,ino=<dec>,mode=<octal>,uid=<dec>,gid=<dec>,nlink=<dec>,rdev=<dec>`."""
    faked = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            fields = dict(item.split("=", 1) for item in line.strip().split(","))
            key = (int(fields["dev"], 16), int(fields["ino"]))
            faked[key] = (int(fields["mode"], 8), int(fields["uid"]), int(fields["gid"]))
    return faked


def _read_back(root: str, faked: dict) -> dict:
    """`root`'s files, directories and symlinks as entries by image path: modes and owners
    from fakeroot's state where it faked them, else the mode on disk and the layer's owner."""
    collector = Collector()
    pending = [(root, "")]
    while pending:
        directory, image_dir = pending.pop()
        with os.scandir(directory) as children:
            for child in children:
                path = f"{image_dir}/{child.name}" if image_dir else child.name
                st = child.stat(follow_symlinks=False)
                mode, owner = st.st_mode, None
                if (st.st_dev, st.st_ino) in faked:
                    mode, uid, gid = faked[st.st_dev, st.st_ino]
                    owner = Owner(uid, gid, "", "")  # named below, from the result's etc/
                # fakeroot's mknod makes an empty file that it says is a device.
                kind = _KINDS.get(stat.S_IFMT(st.st_mode))
                if kind is None or stat.S_IFMT(mode) != stat.S_IFMT(st.st_mode):
                    raise InvalidInput(
                        f"the build-time commands made {path!r} a {_describe(mode)}: a layer "
                        "holds only files, directories and symlinks"
                    )
                origin = f"the build-time commands' {path!r}"
                if kind == "symlink":
                    entry = LayerEntry(path, kind, 0o777, origin, target=os.readlink(child.path))
                else:
                    entry = LayerEntry(path, kind, stat.S_IMODE(mode), origin,
                                   child.path if kind == "file" else "")
                    if kind == "dir":
                        pending.append((child.path, path))
                collector.add(entry._replace(owner=owner))
    return _named(collector.entries)


def _named(entries: dict) -> dict:
    """The owners fakeroot recorded, named from the layer's own etc/passwd and etc/group (not
    the machine's): root for 0, else numeric only (an empty name) for an id they lack."""
    users, groups = (_ids(entries.get(f"etc/{database}")) for database in ("passwd", "group"))

    def name(names: dict, number: int) -> str:
        return names.get(number, "root" if number == 0 else "")

    return {
        path: entry if entry.owner is None else entry._replace(owner=entry.owner._replace(
            uname=name(users, entry.owner.uid), gname=name(groups, entry.owner.gid)))
        for path, entry in entries.items()
    }


def _ids(entry) -> dict:
    """{id: name} from a passwd or group file entry (the first line with an id wins, as in
    getpwuid); {} when there is no such file."""
    if entry is None or entry.kind != "file":
        return {}
    names = {}
    with open(entry.source, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                names.setdefault(int(fields[2]), fields[0])
    return names


def _describe(mode: int) -> str:
    return {**_KINDS, **_OTHER_KINDS}.get(stat.S_IFMT(mode), f"file of type {mode:o}")
