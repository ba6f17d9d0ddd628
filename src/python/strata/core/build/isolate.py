"""`python isolate.py DIR... -- ARGV`: runs ARGV in DIR (the first) with every
mount read-only except the DIRs, under `unshare --mount --net` (see `argv`), so that a build-time
script can write nowhere else and reach no network (a new network namespace has only a `lo`,
down). The mounts change in the new mount namespace only; the machine's are untouched. Run as
a file, not a module: it imports nothing of Strata, so it needs no `strata` on sys.path.
"""

from __future__ import annotations

import os
import sys

_MS_RDONLY, _MS_REMOUNT, _MS_BIND = 0x1, 0x20, 0x1000
# Per-mount flags a read-only remount keeps (mountinfo's options field names them).
_KEPT = {"nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "noatime": 0x400, "nodiratime": 0x800,
         "relatime": 0x200000}


def argv(unshare: str, writable: list, command: list) -> list:
    """The command line that runs `command` in `writable[0]` (real paths), isolated, with this
    interpreter (as root: a mount namespace needs CAP_SYS_ADMIN)."""
    return [unshare, "--mount", "--net", "--fork", "--", sys.executable, "-E", "-s", "-S", "-B",
            os.path.abspath(__file__), *writable, "--", *command]


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as `\\ooo` (octal)."""
    head, *rest = field.split("\\")
    return head + "".join(chr(int(part[:3], 8)) + part[3:] for part in rest)


def _mount(libc, source, target: str, flags: int) -> None:
    import ctypes

    if libc.mount(source and source.encode(), target.encode(), None, flags, None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), target)


def _isolate(writable: list) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for path in writable:  # each its own mount, which the remounts below leave writable
        _mount(libc, path, path, _MS_BIND)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        target = _unescape(fields[4])
        if target in writable:
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        for option in fields[5].split(","):
            flags |= _KEPT.get(option, 0)
        try:
            _mount(libc, None, target, flags)
        except FileNotFoundError:
            pass  # under a mount stacked over its parent: unreachable anyway


def main(args: list) -> None:
    split = args.index("--")
    writable, command = args[:split], args[split + 1:]
    try:
        _isolate(writable)
    except OSError as e:
        sys.exit(f"strata: cannot isolate build-time commands: {e}")
    os.umask(0o022)
    os.chdir(writable[0])
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
