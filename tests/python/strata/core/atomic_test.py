import os

import pytest

from strata.core.atomic import write_bytes_atomically, write_dir_atomically, write_file_atomically


def fail_halfway(target):
    if isinstance(target, str):  # a directory
        with open(os.path.join(target, "half"), "wb") as f:
            f.write(b"half")
    else:
        target.write(b"half")
    raise OSError("disk full")


def test_a_failed_write_leaves_the_old_file_and_nothing_else(tmp_path):
    path = tmp_path / "image.tar"
    write_bytes_atomically(path, b"old")
    with pytest.raises(OSError, match="disk full"):
        write_file_atomically(path, fail_halfway)
    assert os.listdir(tmp_path) == ["image.tar"] and path.read_bytes() == b"old"


def test_a_failed_write_leaves_the_old_directory_and_nothing_else(tmp_path):
    path = tmp_path / "layout"
    write_dir_atomically(path, lambda d: open(os.path.join(d, "index.json"), "wb").close())
    with pytest.raises(OSError, match="disk full"):
        write_dir_atomically(path, fail_halfway)
    assert os.listdir(tmp_path) == ["layout"] and os.listdir(path) == ["index.json"]


def test_a_write_replaces_what_was_there(tmp_path):
    path = tmp_path / "layout"
    write_bytes_atomically(path, b"a file where the directory goes")
    write_dir_atomically(path, lambda d: None)
    assert path.is_dir() and os.listdir(tmp_path) == ["layout"]
