import gzip
import io
import os
import random
import subprocess
from pathlib import Path

import pytest

from strata.core.build.compression import open_compressor

ZSTD = "/usr/bin/zstd"
DATA = random.Random(0).randbytes(3 << 20) + bytes(2 << 20)


def zstd_binary():
    if Path(ZSTD).is_file():
        return ZSTD
    if os.environ.get("CI") == "true":
        pytest.fail(f"{ZSTD} is missing: CI must exercise zstd compression")
    pytest.skip(f"{ZSTD} is not installed")


def compress(kind, data=DATA, chunk=1 << 20, **kwargs):
    out = io.BytesIO()
    with open_compressor(kind, out, **kwargs) as compressor:
        for start in range(0, len(data), chunk):
            compressor.write(data[start : start + chunk])
    assert not out.closed
    return out.getvalue()


def test_none_passes_bytes_through():
    assert compress("none") == DATA


def test_gzip_is_deterministic_and_standard():
    blob = compress("gzip")
    assert compress("gzip", chunk=4096) == blob  # chunking does not change the bytes
    # Magic, deflate, no flags (no name), mtime 0, no extra flags, OS 255.
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    assert gzip.decompress(blob) == DATA
    gunzip = subprocess.run(["gzip", "-dc"], input=blob, capture_output=True, check=True)
    assert gunzip.stdout == DATA


def test_gzip_of_nothing():
    assert gzip.decompress(compress("gzip", b"")) == b""


def test_zstd_is_deterministic_and_round_trips(monkeypatch):
    binary = zstd_binary()
    blob = compress("zstd", zstd=binary)
    monkeypatch.setenv("ZSTD_CLEVEL", "19")  # must not leak into the output
    assert compress("zstd", chunk=4096, zstd=binary) == blob
    assert len(blob) < len(DATA)
    plain = subprocess.run([binary, "-dc"], input=blob, capture_output=True, check=True).stdout
    assert plain == DATA


def test_zstd_needs_an_absolute_binary():
    with pytest.raises(ValueError, match="absolute"):
        open_compressor("zstd", io.BytesIO(), zstd="zstd")
    with pytest.raises(ValueError, match="absolute path"):
        open_compressor("zstd", io.BytesIO())


def test_zstd_failure_is_reported():
    with pytest.raises(OSError, match="/bin/false exited with status 1"):
        compress("zstd", zstd="/bin/false")


def test_zstd_output_failure_does_not_hang():
    binary = zstd_binary()

    class Broken:
        def write(self, data):
            raise OSError("disk full")

    compressor = open_compressor("zstd", Broken(), zstd=binary)
    with pytest.raises(OSError, match="disk full"):
        for _ in range(64):
            compressor.write(os.urandom(1 << 20))
        compressor.close()


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown compression 'xz'"):
        open_compressor("xz", io.BytesIO())
