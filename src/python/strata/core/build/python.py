"""Python virtualenvs as layer content: a venv's skeleton, distributions installed into it as
pip installs them, and first-party sources in its site-packages.

A distribution arrives as pex's installed-wheel chroot (a packed PEX's `.deps/<wheel>` zip,
pex 2.1.137 `pex/pep_376.py`): importable files and the `.dist-info` at the top, scripts,
headers and data under the stash directory (`.prefix`), with `pythonX.Y` standing for the
interpreter's version in paths and `#!python` for its path in script shebangs. Installing it
is what pex's `InstalledWheel.reinstall_venv` does: the top into site-packages, the stash into
the venv, the placeholders filled in, and a RECORD written (pex deleted the wheel's). Every
generated file (RECORD, INSTALLER, scripts, pycs, pyvenv.cfg, launchers) is written in the
layer's scratch directory, so the same inputs give the same bytes.
"""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import base64
import csv
import hashlib
import io
import json
import os
import posixpath
import py_compile
import shutil
import stat
import sys
import zipfile

from strata.core.build.compression import CHUNK
from strata.core.build.collector import LayerEntry

_LAYOUT_JSON = ".layout.json"
_VERSION_PLACEHOLDER = "pythonX.Y"  # pex's stand-in for the `pythonX.Y` path component
_SHEBANG_PLACEHOLDER = b"#!python"  # pip's, which pex keeps: a script for "this venv's python"
_INSTALLER = b"strata\n"
_INVALIDATION = {"checked-hash": py_compile.PycInvalidationMode.CHECKED_HASH,
                 "unchecked-hash": py_compile.PycInvalidationMode.UNCHECKED_HASH}

BYTECODE_MODES = ("none", "checked-hash", "unchecked-hash")


def python_version(value, what: str) -> str:
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"{what}: version must be MAJOR.MINOR, such as '3.11': {value!r}")
    return value


def bytecode_mode(value, what: str) -> str:
    if value not in BYTECODE_MODES:
        raise ValueError(f"{what}: bytecode must be one of {list(BYTECODE_MODES)}: {value!r}")
    return value


def site_packages(venv: str, version: str) -> str:
    """The image path of a venv's site-packages, where its python imports from."""
    return f"{venv}/lib/python{version}/site-packages"


def venv_python(venv: str) -> str:
    """The shebang of the venv's scripts: its python, so they import its site-packages."""
    return f"#!/{venv}/bin/python"


def write_file(work: str, path: str, data: bytes) -> str:
    """Writes a generated file at image path `path` under `work`; returns where it is."""
    target = os.path.join(work, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "xb") as f:
        f.write(data)
    return target


def check_interpreter(version: str, bytecode: str, what: str) -> None:
    """Pycs are marshalled code objects of the interpreter that compiles them: only CPython of
    the image's version writes pycs the image's python reads."""
    if bytecode == "none":
        return
    running = "%s %d.%d" % (sys.implementation.name, *sys.version_info[:2])
    if running != f"cpython {version}":
        raise ValueError(
            f"{what}: bytecode needs CPython {version} to run the layer step, not {running}; "
            f"set bytecode='none' or run the layer step with CPython {version}")
    # Before 3.11, marshal writes a set's elements in hash order (3.11 sorts them: bpo-37596),
    # so only a fixed hash seed gives the same pycs twice.
    if sys.version_info < (3, 11) and sys.flags.hash_randomization:
        raise ValueError(
            f"{what}: bytecode for CPython {version} needs hash randomisation off in the layer "
            f"step (PYTHONHASHSEED=0, and no -E), or its pycs would differ from run to run")


def compile_pycs(sources: list[tuple[str, str]], work: str, version: str, bytecode: str,
             origin: str) -> list[LayerEntry]:
    """Pycs for the `.py` files among `sources` (image path, file), as the image's python
    writes them into `__pycache__`, compiled in image path order; a file that does not compile
    (Python 2 code in some wheels) stays without one, as pip leaves it."""
    if bytecode == "none":
        return []
    tag = "cpython-" + version.replace(".", "")
    entries = []
    for path, source in sorted(sources):
        if not path.endswith(".py"):
            continue
        directory, name = posixpath.split(path)
        pyc = f"{directory}/__pycache__/{name[:-len('.py')]}.{tag}.pyc"
        cfile = os.path.join(work, pyc)
        try:
            py_compile.compile(source, cfile, dfile=f"/{path}", doraise=True, optimize=0,
                               invalidation_mode=_INVALIDATION[bytecode])
        except py_compile.PyCompileError:
            continue
        entries.append(LayerEntry(pyc, "file", 0o644, f"{origin} (bytecode)", cfile))
    return entries


# --- wheels ------------------------------------------------------------------------------------

def _expand_tags(line: str) -> list[str]:
    """A WHEEL `Tag:` value's tags: each part may be `.`-compressed (`py2.py3-none-any`)."""
    parts = line.split("-")
    if len(parts) != 3:
        return [line]
    return [f"{py}-{abi}-{platform}" for py in parts[0].split(".")
            for abi in parts[1].split(".") for platform in parts[2].split(".")]


def _platform_matches(platform: str, machine: str) -> bool:
    """pip's rule for a glibc Linux: `linux_<machine>` or any manylinux of that machine. The
    image's glibc version is not known here, so manylinux_2_X is not checked against it."""
    return platform == "any" or platform == f"linux_{machine}" or (
        platform.startswith("manylinux") and platform.endswith(f"_{machine}"))


def _tag_matches(tag: str, version: str, machine: str) -> bool:
    """Whether CPython `version` on a glibc Linux `machine` can install a wheel of `tag`, by
    pip's rules (packaging.tags.sys_tags)."""
    python, abi, platform = (tag.split("-") + ["", ""])[:3]
    major, minor = (int(part) for part in version.split("."))
    cpython = f"cp{major}{minor}"
    if not _platform_matches(platform, machine):
        return False
    if abi == cpython:
        return python == cpython
    if abi == "abi3":  # the stable ABI of CPython 3.2 and later, up to this one
        older = python[len(f"cp{major}"):]
        return python.startswith(f"cp{major}") and older.isdigit() and 2 <= int(older) <= minor
    if abi == "none":
        if python in (cpython, f"py{major}"):
            return True
        older = python[len(f"py{major}"):]
        return python.startswith(f"py{major}") and older.isdigit() and int(older) <= minor
    return False


def _check_compatible(wheel_metadata: str, dist: str, version: str, machine: str,
                      what: str) -> None:
    tags = [tag for line in wheel_metadata.splitlines() if line.startswith("Tag:")
            for tag in _expand_tags(line[len("Tag:"):].strip())]
    if any(_tag_matches(tag, version, machine) for tag in tags):
        return
    musl = any(tag.split("-")[-1].startswith("musllinux") for tag in tags)
    raise ValueError(
        f"{what}: {dist} is not compatible with CPython {version} on {machine}: its tags are "
        f"{', '.join(tags) or 'none'}"
        + ("; musllinux wheels need musl libc, and the image's CPython uses glibc"
           if musl else ""))


def _zip_path(name: str, what: str) -> str:
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\0" in name:
        raise ValueError(f"{what}: the chroot's entry {name!r} escapes it")
    return "/".join(part for part in parts if part not in ("", "."))


class _Installed:
    """A distribution's installed files, as layer entries, and the RECORD that lists them."""

    def __init__(self, work: str, site: str, origin: str):
        self.work, self.site, self.origin = work, site, origin
        self.entries: list[LayerEntry] = []

    def add(self, path: str, mode: int, source: str) -> None:
        self.entries.append(LayerEntry(path, "file", mode, self.origin, source))

    def record(self, record_path: str) -> None:
        """Writes RECORD as pip does: a row per file, its path relative to site-packages,
        `sha256=<urlsafe base64, no padding>` and size; RECORD's own row without them."""
        rows = [(posixpath.relpath(record_path, self.site), "", "")]
        for entry in self.entries:
            digest = hashlib.sha256()
            with open(entry.source, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    digest.update(chunk)
            hashed = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")
            rows.append((posixpath.relpath(entry.path, self.site), f"sha256={hashed}",
                         str(os.stat(entry.source).st_size)))
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(sorted(rows))
        self.add(record_path, 0o644, write_file(self.work, record_path, text.getvalue().encode()))


def _read_layout(chroot: zipfile.ZipFile, what: str) -> tuple[str, str]:
    """(the stash directory, the .dist-info directory) of pex's `.layout.json`."""
    try:
        layout = json.loads(chroot.read(_LAYOUT_JSON))
        stash, record = layout["stash_dir"], layout["record_relpath"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{what}: not a pex installed-wheel chroot: no valid {_LAYOUT_JSON} "
                         f"with stash_dir and record_relpath") from None
    dist_info, _, name = str(record).rpartition("/")
    if (not isinstance(stash, str) or not stash or "/" in stash or stash in (".", "..")
            or name != "RECORD" or "/" in dist_info or not dist_info.endswith(".dist-info")):
        raise ValueError(f"{what}: {_LAYOUT_JSON} holds an unexpected layout: {layout!r}")
    return stash, dist_info


def wheel_entries(chroot: zipfile.ZipFile, wheel, work: str, what: str) -> list[LayerEntry]:
    """The installed files of the chroot's distribution; `what` names it in errors."""
    stash, dist_info = _read_layout(chroot, what)
    dist = dist_info[: -len(".dist-info")]
    try:
        metadata = chroot.read(f"{dist_info}/WHEEL").decode("utf-8")
    except KeyError:
        raise ValueError(f"{what}: {dist} has no {dist_info}/WHEEL file, which says which "
                         f"interpreters it is for") from None
    _check_compatible(metadata, dist, wheel.version, wheel.machine, what)

    site = site_packages(wheel.venv, wheel.version)
    installed = _Installed(work, site, f"{what}: {dist}")
    shebang = venv_python(wheel.venv).encode() + b"\n"
    skip = {_LAYOUT_JSON, f"{dist_info}/RECORD", f"{dist_info}/INSTALLER"}
    for info in chroot.infolist():
        if info.is_dir():
            continue  # directories come from the files' paths (pex chroots hold a bogus `../`)
        name = _zip_path(info.filename, what)
        parts = name.split("/")
        if name in skip or "__pycache__" in parts or name.endswith(".pyc"):
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(f"{what}: the chroot's entry {name!r} is a symlink")
        mode = 0o755 if info.external_attr >> 16 & 0o111 else 0o644
        script = parts[0] == stash and parts[1:2] == ["bin"]
        if parts[0] != stash:
            path = f"{site}/{name}"
        elif script:
            path, mode = f"{wheel.venv}/{name[len(stash) + 1:]}", 0o755
        else:
            rest = [f"python{wheel.version}" if part == _VERSION_PLACEHOLDER else part
                    for part in parts[1:]]
            path = "/".join([wheel.venv, *rest])
        target = os.path.join(work, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            with chroot.open(info) as data, open(target, "xb") as out:
                if script:  # pip's rule: a `#!python...` first line becomes the venv's python
                    first = data.readline()
                    out.write(shebang if first.startswith(_SHEBANG_PLACEHOLDER) else first)
                shutil.copyfileobj(data, out, CHUNK)
        except FileExistsError:
            raise ValueError(f"{what}: the chroot holds {path!r} twice") from None
        installed.add(path, mode, target)
    installer = f"{site}/{dist_info}/INSTALLER"
    installed.add(installer, 0o644, write_file(work, installer, _INSTALLER))
    sources = [(entry.path, entry.source) for entry in installed.entries
               if entry.path.startswith(f"{site}/")]
    installed.entries += compile_pycs(sources, work, wheel.version, wheel.bytecode, installed.origin)
    installed.record(f"{site}/{dist_info}/RECORD")
    return installed.entries
