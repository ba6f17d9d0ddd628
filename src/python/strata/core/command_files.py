"""`command-files`: the host files that build-time commands' sandbox holds besides the programs
it runs (strata.core.build.commands), each with the sha256 of its content for the layer's cache
key. Run on the machine that builds, by the rules, with the programs' paths.

A program needs, followed to the end: an ELF's dynamic loader (its `PT_INTERP`) and the shared
libraries that loader resolves for it (`LOADER --list`, which runs none of the program's code;
a shared library without `PT_INTERP` is listed by the loader of the first program), a script's
`#!` interpreter, and for fakeroot's script the daemon and the preload library it names
(`FAKED=`, `FAKEROOT_LIB=` in one of `PATHS=`) and `/bin/ls`, which its exit trap runs so that
faked has handled every message before it saves its state. Each file is named by the path its
user asks for (the sandbox binds it there); its content is read through any symlinks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys

from strata.core.errors import InvalidInput

_PT_INTERP, _PT_DYNAMIC = 3, 2
FAKEROOT_FLUSH = "/bin/ls"
_ASSIGNMENT = re.compile(r"([A-Z_]+)=(\S*)$")


def sandbox_files(programs: list, fakeroot: str | None = None) -> dict:
    """{path: sha256} of what `programs` (and `fakeroot`, one of them) need; a program itself
    only where another one asks for it by that path."""
    loader = next(filter(None, (_elf(path)[0] for path in programs if _kind(path) == "elf")),
                  None)
    extra = _fakeroot_needs(fakeroot) if fakeroot is not None else []
    needed = dict.fromkeys(extra)
    pending = [*programs, *extra]
    while pending:
        path = pending.pop()
        for item in _needs(path, loader):
            if item not in needed:
                needed[item] = None
                pending.append(item)
    return {path: _sha256(path) for path in sorted(needed)}


def _kind(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    return "script" if head[:2] == b"#!" else "elf" if head == b"\x7fELF" else "other"


def _needs(path: str, loader: str | None) -> list:
    """What `path` itself asks for by path: its interpreter, loader and libraries."""
    kind = _kind(path)
    if kind == "script":
        with open(path, "rb") as f:
            words = f.readline(4096)[2:].split()
        if not words or not words[0].startswith(b"/"):
            raise InvalidInput(f"{path}: its `#!` line names no absolute interpreter")
        return [os.fsdecode(words[0])]
    if kind != "elf":
        return []
    interpreter, dynamic = _elf(path)
    if interpreter is not None:
        return [interpreter, *_libraries(interpreter, path)]
    if dynamic and loader is not None:  # a shared library
        return _libraries(loader, path)
    return []  # static


def _elf(path: str) -> tuple:
    """(PT_INTERP's path or None, whether there is a PT_DYNAMIC: it links shared libraries)."""
    with open(path, "rb") as f:
        ident = f.read(16)
        wide, endian = ident[4] == 2, "<" if ident[5] == 1 else ">"
        word = endian + ("Q" if wide else "I")
        f.seek(0x20 if wide else 0x1C)
        (phoff,) = struct.unpack(word, f.read(struct.calcsize(word)))
        f.seek(0x36 if wide else 0x2A)
        phentsize, phnum = struct.unpack(endian + "HH", f.read(4))
        interpreter, dynamic = None, False
        for index in range(phnum):
            f.seek(phoff + index * phentsize)
            header = f.read(phentsize)
            (kind,) = struct.unpack_from(endian + "I", header)
            if kind == _PT_DYNAMIC:
                dynamic = True
            elif kind == _PT_INTERP:  # p_offset and p_filesz
                (offset,) = struct.unpack_from(word, header, 8 if wide else 4)
                (size,) = struct.unpack_from(word, header, 32 if wide else 16)
                f.seek(offset)
                interpreter = os.fsdecode(f.read(size).rstrip(b"\0"))
        return interpreter, dynamic


def _libraries(loader: str, path: str) -> list:
    """The shared libraries `loader` resolves for `path`, with the loader itself: its
    `--list` lines `name => /path (address)` and `/loader (address)`."""
    listed = subprocess.run([loader, "--list", path], env={}, stdin=subprocess.DEVNULL,
                            capture_output=True)
    found = []
    for line in listed.stdout.decode("utf-8", "replace").splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        target = rest if arrow else name
        if arrow and target.startswith("not found"):
            raise InvalidInput(
                f"{path} needs the shared library {name}, which {loader} cannot find"
            )
        target = target.rsplit(" (0x", 1)[0]
        if target.startswith("/"):
            found.append(target)
    if listed.returncode:
        raise InvalidInput(f"{loader} --list {path} failed (exit {listed.returncode}): "
                           f"{listed.stderr.decode('utf-8', 'replace').strip()}")
    return found


def _fakeroot_needs(script: str) -> list:
    """The daemon and preload library fakeroot's script starts (its `FAKED=`, and the first of
    `PATHS=` holding `FAKEROOT_LIB=`, as the loader searches LD_LIBRARY_PATH), and `/bin/ls`."""
    values: dict = {}
    with open(script, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = _ASSIGNMENT.match(line.strip())
            if match and match[1] not in values:
                values[match[1]] = re.sub(r"\$\{?([A-Z_]+)\}?", lambda m: values.get(m[1], ""),
                                          match[2])
    faked, library = values.get("FAKED", ""), values.get("FAKEROOT_LIB", "")
    candidates = [os.path.join(directory, library)
                  for directory in values.get("PATHS", "").split(":") if directory and library]
    libraries = [path for path in candidates if os.path.isfile(path)]
    if not (faked.startswith("/") and os.path.isfile(faked) and libraries):
        raise InvalidInput(f"{script} is not a fakeroot script naming its daemon (`FAKED=`) and "
                           "preload library (`FAKEROOT_LIB=`, `PATHS=`) as Debian's does")
    return [faked, libraries[0], FAKEROOT_FLUSH]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def command_files_command(options) -> None:
    """`command-files [--program PATH]... [--host-program PATH]... [--fakeroot PATH]`:
    {"programs": {path: sha256}, "files": {path: sha256}} on stdout: the programs (those that
    run in the sandbox, and those that run on the host: bubblewrap) and what the first need."""
    programs = list(options.program)
    result = {"programs": {path: _sha256(path) for path in programs + options.host_program},
              "files": sandbox_files(programs, options.fakeroot)}
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
