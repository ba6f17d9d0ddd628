import hashlib
import io

from strata.core.build.hashing import HashingWriter


def test_writes_through_while_hashing_and_counting():
    out = io.BytesIO()
    writer = HashingWriter(out)
    assert writer.write(b"hello ") == 6
    writer.write(memoryview(b"world"))
    assert out.getvalue() == b"hello world"
    assert writer.size == 11
    assert writer.hexdigest() == hashlib.sha256(b"hello world").hexdigest()
    assert writer.digest_str() == "sha256:" + hashlib.sha256(b"hello world").hexdigest()


def test_empty():
    writer = HashingWriter(io.BytesIO())
    assert writer.size == 0
    assert writer.digest_str() == "sha256:" + hashlib.sha256(b"").hexdigest()
