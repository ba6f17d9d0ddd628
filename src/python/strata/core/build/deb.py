"""Debian binary packages (.deb) as layer content.

A .deb is read as a stream (ar, then the compressed data.tar) and its entries become explicit
layer entries (strata.core.build.parts.entries), checked and added like any other: the same sorting,
normalisation, digests and layer.json. Ownership and mtime are normalised by the layer
settings; modes (setuid, sticky, ...) are kept, as dpkg would install them.
"""

import bz2
import gzip
import io
import lzma
import os
import shutil
import tarfile
import zlib
from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from strata.core.build.compression import CHUNK, ZstdReader
from strata.core.build.deb822 import parse_deb822
from strata.core.build.spec import normalise_path

# Top-level directories that merged-/usr turns into symlinks to usr/<dir>: every directory
# debootstrap links on some architecture, so one set serves all of them.
MERGED_USR_DIRS = ("bin", "lib", "lib32", "lib64", "libo32", "libx32", "sbin")

STATUS_DIR = "var/lib/dpkg/status.d"

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
# What a damaged or truncated member raises while being decompressed and untarred.
_CORRUPT = (OSError, EOFError, tarfile.TarError, lzma.LZMAError, zlib.error)


class _Member(io.RawIOBase):
    """The next `size` bytes of `f`: one ar member, read in place."""

    def __init__(self, f, size: int, name: str):
        super().__init__()
        self._f = f
        self._left = size
        self.size = size
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._left)
        if not count:
            return 0
        count = self._f.readinto(memoryview(buffer)[:count])
        if not count:
            raise ValueError(f"the .deb ends inside member {self.name!r}")
        self._left -= count
        return count

    def skip(self) -> None:
        while self.read(CHUNK):
            pass


def _ar_members(f) -> Iterator[_Member]:
    if f.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise ValueError("not a .deb: no ar archive signature")
    while True:
        header = f.read(_AR_HEADER)
        if not header:
            return
        size = header[48:58].strip()
        if len(header) != _AR_HEADER or header[58:60] != b"`\n" or not size.isdigit():
            raise ValueError("not a .deb: corrupt ar member header")
        name = header[:16].decode("ascii", "replace").rstrip(" ").rstrip("/")
        member = _Member(f, int(size), name)
        yield member
        member.skip()
        if member.size % 2:  # members are padded to an even size
            f.read(1)


@contextmanager
def _decompressed(member: _Member, zstd: Optional[str]) -> Iterator:
    """The member's uncompressed bytes, read to the end on success so every checksum is seen."""
    suffix = member.name.partition(".tar")[2]
    openers = {".gz": lambda: gzip.GzipFile(fileobj=member), ".xz": lambda: lzma.LZMAFile(member),
               ".lzma": lambda: lzma.LZMAFile(member), ".bz2": lambda: bz2.BZ2File(member)}
    if suffix == "":
        yield member
    elif suffix == ".zst":
        if not zstd:
            raise ValueError(f"{member.name} needs the zstd binary: set settings.zstd to its "
                             f"absolute path")
        with ZstdReader(zstd, member, member.name) as stream:
            yield stream
            while stream.read(CHUNK):
                pass
    elif suffix in openers:
        with openers[suffix]() as stream:
            yield stream
            while stream.read(CHUNK):
                pass
    else:
        raise ValueError(f"unsupported .deb member {member.name!r}")


def _open_tar(stream) -> tarfile.TarFile:
    # Stream mode: members are read in order, never seeking back.
    return tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")


@contextmanager
def open_deb(f, zstd: Optional[str] = None) -> Iterator[Tuple[str, tarfile.TarFile]]:
    """(the control file's text, the data.tar as a stream-mode TarFile) of the .deb in `f`."""
    members = _ar_members(f)
    first = next(members, None)
    if first is None or first.name != "debian-binary" or not first.read(4).startswith(b"2."):
        raise ValueError("not a .deb: it does not start with debian-binary 2.x")
    control = None
    for member in members:
        if member.name.startswith("control.tar"):
            try:
                with _decompressed(member, zstd) as stream, _open_tar(stream) as tar:
                    for info in tar:
                        if info.isreg() and normalise_path(info.name, member.name) == "control":
                            control = tar.extractfile(info).read().decode("utf-8")
            except _CORRUPT as e:
                raise ValueError(f"{member.name}: {e}") from None
        elif member.name.startswith("data.tar"):
            if control is None:
                raise ValueError("the .deb has no control file before its data.tar")
            try:
                with _decompressed(member, zstd) as stream, _open_tar(stream) as tar:
                    yield control, tar
            except _CORRUPT as e:
                raise ValueError(f"{member.name}: {e}") from None
            return
        elif not member.name.startswith("_"):  # deb(5): "_" members are for extensions
            raise ValueError(f"unexpected .deb member {member.name!r}")
    raise ValueError("the .deb has no data.tar member")


def control_fields(control: str) -> Dict[str, str]:
    paragraphs = parse_deb822(control.splitlines())
    if len(paragraphs) != 1 or "Package" not in paragraphs[0]:
        raise ValueError("the .deb's control file is not one paragraph with a Package field")
    return paragraphs[0]


def status_paragraph(fields: Mapping[str, str]) -> str:
    """The package's dpkg status entry (what SBOM scanners read): its control fields plus the
    Status dpkg records after a successful install."""
    lines = [f"Package: {fields['Package']}", "Status: install ok installed"]
    lines += [f"{key}: {value}" for key, value in fields.items()
              if key not in ("Package", "Status")]
    return "\n".join(lines) + "\n"


def _merged_usr(path: str) -> str:
    top = path.split("/", 1)[0]
    return f"usr/{path}" if top in MERGED_USR_DIRS else path


def deb_entries(deb_path: str, package: str, work: str, sandbox_root: str,
                 zstd: Optional[str]) -> List[dict]:
    """Layer spec entries for one .deb; file contents are extracted under `work`."""
    entries: List[dict] = []
    sources: Dict[str, str] = {}  # data.tar name (normalised, before merged-/usr) -> content
    originals: Dict[str, str] = {}  # image path of each regular file -> its data.tar name
    with open(deb_path, "rb") as f, open_deb(f, zstd) as (control, tar):
        fields = control_fields(control)
        if fields["Package"] != package:
            raise ValueError(f"expected package {package!r}, but the .deb holds "
                             f"{fields['Package']!r}")
        for info in tar:
            what = f"{package}: data.tar entry {info.name!r}"
            original = normalise_path(info.name, what)
            if not original:
                continue  # the root directory itself
            path = _merged_usr(original)
            mode = info.mode & 0o7777
            if info.isdir():
                entries.append({"path": path, "type": "dir", "mode": mode})
            elif info.issym():
                if original in MERGED_USR_DIRS:
                    if info.linkname.strip("/") != f"usr/{original}":
                        raise ValueError(f"{what}: a symlink to {info.linkname!r}, but "
                                         f"merged-/usr needs /{original} -> usr/{original}")
                    continue  # merged_usr_entries() adds it once
                entries.append({"path": path, "type": "symlink", "target": info.linkname})
            elif info.isreg():
                if path in originals:
                    raise ValueError(f"{what}: /{originals[path]} and /{original} are both "
                                     f"/{path} on merged-/usr")
                originals[path] = original
                content = os.path.join(work, path)
                os.makedirs(os.path.dirname(content), exist_ok=True)
                with tar.extractfile(info) as data, open(content, "xb") as out:
                    shutil.copyfileobj(data, out, CHUNK)
                sources[original] = os.path.relpath(content, sandbox_root)
                entries.append({"path": path, "type": "file", "source": sources[original],
                                "mode": mode})
            elif info.islnk():
                target = normalise_path(info.linkname, what)
                if target not in sources:
                    raise ValueError(f"{what}: a hard link to {info.linkname!r}, which is not "
                                     f"an earlier regular file")
                sources[original] = sources[target]
                entries.append({"path": path, "type": "file", "source": sources[target],
                                "mode": mode})
            else:
                raise ValueError(f"{what}: device and fifo entries cannot go into a layer")
    status = os.path.join(work, STATUS_DIR, package)
    os.makedirs(os.path.dirname(status), exist_ok=True)
    with open(status, "x", encoding="utf-8") as out:
        out.write(status_paragraph(fields))
    entries.append({"path": f"{STATUS_DIR}/{package}", "type": "file",
                    "source": os.path.relpath(status, sandbox_root), "mode": 0o644})
    return entries
