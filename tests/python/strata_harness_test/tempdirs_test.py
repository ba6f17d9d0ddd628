import tempfile

from strata_harness.tempdirs import PREFIX, SessionDir, remove_abandoned


def test_only_abandoned_session_dirs_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = SessionDir()
    abandoned = tmp_path / f"{PREFIX}dead"
    abandoned.mkdir()
    (abandoned / ".lock").touch()  # what a killed session leaves: a lock nobody holds
    starting = tmp_path / f"{PREFIX}new"  # created, not yet locked
    starting.mkdir()
    remove_abandoned()
    assert live.path.is_dir() and starting.is_dir() and not abandoned.exists()
    live.remove()
    assert not live.path.exists()
