from strata.core.publish import PushedBlobs


def test_the_repository_holding_most_blobs_is_the_mount_source(tmp_path):
    record = PushedBlobs(tmp_path / "pushed.json")
    record.record("reg:5000", "team/base", ["sha256:a", "sha256:b"])
    record.record("reg:5000", "team/other", ["sha256:c"])
    record.record("elsewhere:443", "x/y", ["sha256:a", "sha256:b", "sha256:c"])

    reloaded = PushedBlobs(tmp_path / "pushed.json")
    assert reloaded.best_source("reg:5000", "team/app", ["sha256:a", "sha256:b", "sha256:c"]) == (
        "team/base"
    )
    # The target repository itself is never a source; unknown blobs give no source.
    assert reloaded.best_source("reg:5000", "team/base", ["sha256:a", "sha256:b"]) is None
    assert reloaded.best_source("reg:5000", "team/app", ["sha256:z"]) is None


def test_a_missing_or_corrupt_record_is_empty(tmp_path):
    path = tmp_path / "pushed.json"
    assert PushedBlobs(path).best_source("r", "a/b", ["sha256:a"]) is None
    path.write_text("{not json")
    assert PushedBlobs(path).best_source("r", "a/b", ["sha256:a"]) is None
