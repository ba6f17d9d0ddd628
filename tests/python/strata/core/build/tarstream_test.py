import hashlib
import io
import os
import stat
import subprocess
import tarfile

import pytest

from strata.core.build.tarstream import Owner, TarWriter

SPLIT_NAME = "s" * 60 + "/" + "t" * 60  # > 100 bytes, fits ustar's prefix + name
DEEP_NAME = "/".join(["d" * 50] * 6) + "/leaf.txt"  # > 255 bytes: PAX
LONG_COMPONENT = "x" * 150  # a name part > 100 bytes cannot be split: PAX
UNICODE_DIR = "ünïcödé"
UNICODE_FILE = UNICODE_DIR + "/日本語.txt"
LONG_TARGET = "../" + "t" * 120
BIG = bytes(range(256)) * (5 * 4096) + b"tail"  # > 1 MiB, not a multiple of 512

# (kind, path, mode, content-or-target) in writing order, parents first.
ENTRIES = [
    ("dir", "bin", 0o755, None),
    ("file", "bin/tool", 0o755, b"#!/bin/sh\necho hi\n"),
    ("symlink", "bin/link", None, "tool"),
    ("symlink", "bin/long-link", None, LONG_TARGET),
    ("symlink", "bin/uni-link", None, "../" + UNICODE_FILE),
    ("file", "big.bin", 0o644, BIG),
    ("dir", "d" * 50, 0o755, None),
    ("dir", "/".join(["d" * 50] * 2), 0o755, None),
    ("dir", "/".join(["d" * 50] * 3), 0o755, None),
    ("dir", "/".join(["d" * 50] * 4), 0o755, None),
    ("dir", "/".join(["d" * 50] * 5), 0o755, None),
    ("dir", "/".join(["d" * 50] * 6), 0o755, None),
    ("file", DEEP_NAME, 0o644, b"deep\n"),
    ("dir", "empty", 0o755, None),
    ("file", "empty-file", 0o644, b""),
    ("dir", "s" * 60, 0o755, None),
    ("file", SPLIT_NAME, 0o644, b"split\n"),
    ("dir", "tmp", 0o1777, None),
    ("dir", UNICODE_DIR, 0o755, None),
    ("file", UNICODE_FILE, 0o600, "ja\n".encode()),
    ("file", LONG_COMPONENT, 0o644, b"long\n"),
]


def write_archive(entries=ENTRIES, stream_files=True, **settings):
    out = io.BytesIO()
    tar = TarWriter(out, **{"mtime": 1, **settings})
    for kind, path, mode, value in entries:
        if kind == "dir":
            tar.add_dir(path, mode)
        elif kind == "symlink":
            tar.add_symlink(path, value)
        else:
            tar.add_file(path, len(value), io.BytesIO(value) if stream_files else value, mode)
    tar.close()
    return out.getvalue()


def test_python_tarfile_reads_back_everything():
    data = write_archive()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [path for _, path, _, _ in ENTRIES]
        for member, (kind, path, mode, value) in zip(members, ENTRIES):
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "root", "root")
            assert member.mtime == 1 and (member.devmajor, member.devminor) == (0, 0)
            assert not {"mtime", "atime", "ctime"} & set(member.pax_headers)
            if kind == "dir":
                assert member.isdir() and member.mode == mode
            elif kind == "symlink":
                assert member.issym() and member.linkname == value and member.mode == 0o777
            else:
                assert member.isfile() and member.mode == mode
                assert tar.extractfile(member).read() == value
    by_name = {m.name: m for m in members}
    assert by_name[SPLIT_NAME].pax_headers == {}  # ustar prefix/name split, no PAX
    assert by_name[DEEP_NAME].pax_headers == {"path": DEEP_NAME}
    assert by_name[LONG_COMPONENT].pax_headers == {"path": LONG_COMPONENT}
    assert by_name["bin/long-link"].pax_headers == {"linkpath": LONG_TARGET}


def test_gnu_tar_lists_and_extracts(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(write_archive())
    listing = subprocess.run(["tar", "-tvf", str(archive)], check=True, capture_output=True,
                             text=True, env={"LC_ALL": "C.UTF-8"}).stdout
    lines = listing.splitlines()
    assert len(lines) == len(ENTRIES)
    assert lines[0].split()[:2] == ["drwxr-xr-x", "root/root"]
    assert "bin/long-link -> " + LONG_TARGET in listing
    assert DEEP_NAME in listing and LONG_COMPONENT in listing and SPLIT_NAME in listing
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xpf", str(archive), "-C", str(dest)], check=True)
    for kind, path, mode, value in ENTRIES:
        target = dest / path
        st = target.lstat()
        if kind == "dir":
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == mode
        elif kind == "symlink":
            assert os.readlink(target) == value
        else:
            assert stat.S_IMODE(st.st_mode) == mode and target.read_bytes() == value
    assert sorted(os.listdir(dest / "empty")) == []


def test_layout_is_exact():
    data = write_archive()
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))
    first = data[:512]
    assert first[257:265] == b"ustar\x0000"
    assert first[:4] == b"bin/" and first[156:157] == b"5"
    assert first[100:108] == b"0000755\0"
    pax_names = {data[i : i + 100].rstrip(b"\0") for i in range(0, len(data), 512)
                 if data[i + 156 : i + 157] == b"x" and data[i + 257 : i + 263] == b"ustar\0"}
    assert pax_names == {b"PaxHeaders/long-link", b"PaxHeaders/uni-link", b"PaxHeaders/leaf.txt",
                         b"PaxHeaders/" + b"d" * 50, b"PaxHeaders/?n?c?d?", b"PaxHeaders/???.txt",
                         (b"PaxHeaders/" + LONG_COMPONENT.encode())[:100]}


def test_ustar_headers_match_tarfiles_encoding():
    """An independent encoder agrees byte for byte (tarfile leaves devmajor/minor blank; GNU
    tar and this writer write zeros)."""

    def reference(name, kind, mode, size=0, link=""):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.linkname, info.mtime = kind, mode, size, link, 5
        info.uname = info.gname = "root"
        block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
        block[329:345] = b"0000000\0" * 2
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
        return bytes(block)

    out = io.BytesIO()
    tar = TarWriter(out, mtime=5)
    tar.add_dir("bin")
    tar.add_file("bin/x", 3, b"abc", 0o755)
    tar.add_symlink("bin/y", "x")
    tar.add_file(SPLIT_NAME, 0, b"")
    assert out.getvalue() == b"".join((
        reference("bin", tarfile.DIRTYPE, 0o755),
        reference("bin/x", tarfile.REGTYPE, 0o755, 3), b"abc" + bytes(509),
        reference("bin/y", tarfile.SYMTYPE, 0o777, link="x"),
        reference(SPLIT_NAME, tarfile.REGTYPE, 0o644),
    ))


def test_empty_archive_is_two_zero_blocks():
    out = io.BytesIO()
    TarWriter(out, mtime=0).close()
    assert out.getvalue() == bytes(1024)


def test_deterministic_and_pinned():
    data = write_archive()
    assert write_archive(stream_files=False) == data
    small = write_archive([
        ("dir", "bin", 0o755, None),
        ("file", "bin/tool", 0o755, b"#!/bin/sh\necho hi\n"),
        ("symlink", "bin/link", None, "tool"),
        ("dir", UNICODE_DIR, 0o755, None),
        ("file", UNICODE_FILE, 0o600, "ja\n".encode()),
        ("file", LONG_COMPONENT, 0o644, b"long\n"),
    ])
    # Pins the exact bytes: any change in the encoding must be deliberate.
    assert hashlib.sha256(small).hexdigest() == (
        "a51ed96f5bb443e33a9ee5f621ee3645f3e682f86397ee4602bd5b7f482674cb"
    )


def test_settings_land_in_every_header():
    data = write_archive(ENTRIES[:2], mtime=1234567, uid=1000, gid=100, uname="app", gname="users")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (1234567, 1000, 100, "app", "users")


def test_sizes_of_8_gib_and_more_use_pax():
    class Endless(io.RawIOBase):
        def read(self, n=-1):
            raise EOFError("header written")

    out = io.BytesIO()
    tar = TarWriter(out, mtime=1)
    with pytest.raises(EOFError):
        tar.add_file("huge", 8 * 2**30, Endless())
    member = tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:").firstmember
    assert member.name == "huge" and member.size == 8 * 2**30
    assert member.pax_headers == {"size": str(8 * 2**30)}


def test_short_data_is_an_error():
    tar = TarWriter(io.BytesIO(), mtime=1)
    with pytest.raises(ValueError, match="ended after 3 of 10 bytes"):
        tar.add_file("f", 10, io.BytesIO(b"abc"))
    with pytest.raises(ValueError, match="not the declared"):
        tar.add_file("f", 10, b"abc")


@pytest.mark.parametrize(
    "settings", [{"uname": "é"}, {"gname": ""}, {"uid": -1}, {"mtime": 8**11}]
)
def test_unrepresentable_settings_are_rejected(settings):
    with pytest.raises(ValueError):
        TarWriter(io.BytesIO(), **{"mtime": 1, **settings})


@pytest.mark.parametrize("buffer_size", [0, 4096])
def test_an_entry_may_name_its_own_owner(buffer_size):
    """`permissions` and fakeroot give single entries their owner; the rest keep the settings'.
    An empty name leaves readers the number (GNU tar maps names before numbers)."""
    out = io.BytesIO()
    tar = TarWriter(out, mtime=1, uid=7, gid=8, uname="seven", gname="eight",
                    buffer_size=buffer_size)
    app = Owner(1000, 1000, "app", "app")
    tar.add_dir("data", 0o2775, app)
    tar.add_file("data/x", 3, b"abc", 0o4755, Owner(1001, 0, "", "root"))
    tar.add_symlink("data/l", "x", app)
    tar.add_file("plain", 1, b"p")
    tar.close()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:  # checks every checksum
        seen = {m.name: (m.uid, m.gid, m.uname, m.gname, m.mode) for m in archive}
    assert seen == {
        "data": (1000, 1000, "app", "app", 0o2775),
        "data/x": (1001, 0, "", "root", 0o4755),
        "data/l": (1000, 1000, "app", "app", 0o777),
        "plain": (7, 8, "seven", "eight", 0o644),
    }


@pytest.mark.parametrize("owner", [Owner(-1, 0, "a", "a"), Owner(0, 8**7, "a", "a"),
                                   Owner(0, 0, "x" * 32, "a"), Owner(0, 0, "a", "é")])
def test_unrepresentable_owners_are_rejected(owner):
    with pytest.raises(ValueError):
        TarWriter(io.BytesIO(), mtime=1).add_dir("d", 0o755, owner)
