"""Build-time commands: `extra_commands` and `fake_root_commands` (strata.core.spec.Commands)
over a layer's collected entries, whose result replaces them, as dockerTools' extraCommands and
fakeRootCommands make its customisation layer.

The entries are written to a scratch `root/` (files copied: a sandbox file may be a hardlink
into Pants' store), each script runs there as `sh -eu` with an empty environment but for a PATH
of the named host tools, isolated by strata.core.build.isolate (only `root/`, and under
fakeroot its state's directory, are writable; no network), then `root/` is read back.
`fake_root_commands` runs under `fakeroot -s`, whose saved state gives the modes and owners it
faked; everything else keeps its mode on disk and the layer settings' owner. Timestamps are the
layer's, as always.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

from strata.core.build import isolate
from strata.core.build.layer import _Collector, _Entry
from strata.core.build.tarstream import Owner
from strata.core.errors import InvalidInput

# The host tools that run the scripts (strata.core.spec.Commands.runners); fakeroot's own
# script runs getopt, sed, cut and sleep.
RUNNERS = ("unshare", "env", "sh")
FAKEROOT_RUNNERS = ("fakeroot", "getopt", "sed", "cut", "sleep")

_KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink"}
_OTHER_KINDS = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
                stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


def runner_names(fake_root: bool) -> tuple:
    return RUNNERS + (FAKEROOT_RUNNERS if fake_root else ())


def run_commands(commands, entries: dict, context) -> dict:
    """The entries (by image path) that `root/` holds after the scripts ran over `entries`."""
    if os.geteuid() != 0:
        raise InvalidInput("build-time commands need root: their sandbox is a mount namespace")
    work = os.path.realpath(os.path.join(context.scratch(), "commands"))
    root, state_dir, tools = (os.path.join(work, name) for name in ("root", "state", "tools"))
    for directory in (root, state_dir, f"{tools}/bin", f"{tools}/runners"):
        os.makedirs(directory)
    _materialise(entries, root)
    _link(commands.tools, f"{tools}/bin")
    runners = _link(commands.runners, f"{tools}/runners")
    env = {"PATH": f"{tools}/runners", "HOME": "/nonexistent", "LC_ALL": "C", "TZ": "UTC",
           "SOURCE_DATE_EPOCH": str(context.settings.mtime)}
    state = None
    for field in ("extra_commands", "fake_root_commands"):
        script = getattr(commands, field)
        if script is None:
            continue
        with open(f"{tools}/{field}", "w", encoding="utf-8") as f:
            f.write(script)
        command = [runners["env"], f"PATH={tools}/bin", runners["sh"], "-eu", f"{tools}/{field}"]
        writable = [root]
        if field == "fake_root_commands":  # faked saves its state when the script is done
            state = f"{state_dir}/fakeroot"
            command = [runners["fakeroot"], "-s", state, "--", *command]
            writable.append(state_dir)
        # The script's output goes to stderr, which Pants shows when the layer Process fails.
        done = subprocess.run(isolate.argv(runners["unshare"], writable, command),
                              env=env, stdin=subprocess.DEVNULL, stdout=2)
        if done.returncode:
            raise InvalidInput(
                f"the `{field}` script failed (exit code {done.returncode}); its output is "
                "above. It runs in a directory holding the customisation layer's content, which "
                "is all it may write (the rest of the file system is read-only), with no "
                "network and only its command tools on PATH."
            )
    return _read_back(root, _fakeroot_state(state) if state else {})


def _link(tools, directory: str) -> dict:
    """Symlinks named after each tool to its host binary; {name: the symlink's path}."""
    links = {}
    for name, path, _ in tools:
        links[name] = os.path.join(directory, name)
        os.symlink(path, links[name])
    return links


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
    collector = _Collector()
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
                    entry = _Entry(path, kind, 0o777, origin, target=os.readlink(child.path))
                else:
                    entry = _Entry(path, kind, stat.S_IMODE(mode), origin,
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
