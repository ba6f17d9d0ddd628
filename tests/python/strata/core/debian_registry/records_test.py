import json
import os
import threading

import pytest

from strata.core.debian_registry.records import read_record, write_record


def test_a_record_reads_back_and_a_missing_one_is_none(tmp_path):
    path = str(tmp_path / "layers" / "abc.json")  # the kind's directory is made
    assert read_record(path) is None
    write_record(path, {"digest": "sha256:" + "0" * 64, "size": 3})
    assert read_record(path) == {"digest": "sha256:" + "0" * 64, "size": 3}


def test_a_failed_write_leaves_no_file(tmp_path):
    path = str(tmp_path / "images" / "abc.json")
    with pytest.raises(TypeError):
        write_record(path, {"oci": object()})  # fails halfway through the JSON
    assert read_record(path) is None
    assert os.listdir(tmp_path / "images") == []


def test_a_failed_rewrite_leaves_the_old_record_whole(tmp_path):
    path = str(tmp_path / "abc.json")
    write_record(path, {"size": 1})
    with pytest.raises(TypeError):
        write_record(path, {"size": 2, "bad": {1, 2}})
    assert read_record(path) == {"size": 1}
    assert os.listdir(tmp_path) == ["abc.json"]


def test_concurrent_writers_of_one_record_never_show_a_partial_one(tmp_path):
    path = str(tmp_path / "abc.json")
    records = [{"writer": i, "padding": "x" * 200_000} for i in range(4)]
    write_record(path, records[0])
    done, seen, errors = threading.Event(), [], []

    def reporting(work):
        def run():
            try:
                work()
            except Exception as e:  # a thread's exception would go unseen
                errors.append(e)
        return threading.Thread(target=run)

    def read_until_done():
        while not done.is_set():
            with open(path, encoding="utf-8") as f:
                seen.append(json.load(f)["writer"])  # a partial record fails to parse

    reader = reporting(read_until_done)
    reader.start()
    writers = [reporting(lambda r=r: [write_record(path, r) for _ in range(5)])
               for r in records]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert errors == [] and set(seen) <= {0, 1, 2, 3} and seen
    assert os.listdir(tmp_path) == ["abc.json"]
