"""The `nix-db` subcommand, checked by Nix itself: a store at a root holding a closure's paths
and the written database must pass `nix-store --verify --check-contents`, and answer queries
as the real store does."""

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from strata.core.cli import main
from strata.core.nix.db import SCHEMA
from strata_harness.nix import busybox_expression, nix_bin, nix_command, option_args

# A nonce of this test's own. `app` refers to itself and to `lib`; `lib` to a `toFile`;
# `tool` to nothing: two closures that share nothing, and one with three paths.
EXPRESSION = busybox_expression("strata-db-test-1", lets=r"""
  note = builtins.toFile "strata-db-note" "noted\n";
""", body=r"""rec {
  lib = build "strata-db-lib" "${bb} mkdir $out && ${bb} echo ${note} > $out/lib";
  app = build "strata-db-app" ''
    ${bb} mkdir -p $out/bin && ${bb} echo "$out ${lib}" > $out/bin/app &&
    ${bb} chmod 555 $out/bin/app && ${bb} ln -s ${lib}/lib $out/lib
  '';
  tool = build "strata-db-tool" "${bb} echo tool > $out";
}
""")


@pytest.fixture()
def closures(tmp_path) -> dict:
    """{attribute: closure.json's data}, written by nix-closure to tmp_path/<attribute>.json."""
    (tmp_path / "test.nix").write_text(EXPRESSION)
    found = {}
    for attr in ("app", "tool"):
        assert main(["nix-closure", "--nix-bin", nix_bin(), *option_args(), "--file",
                     str(tmp_path / "test.nix"), "--attr", attr,
                     "--out", str(tmp_path / f"{attr}.json")]) == 0
        found[attr] = json.loads((tmp_path / f"{attr}.json").read_text())
    found["dir"] = tmp_path
    return found


def nix_db(closures: dict, out: str, *names: str, time: str = "1700000000") -> int:
    """nix-db over closure files in the fixture's directory, into a directory there."""
    top = closures["dir"]
    args = [word for name in names for word in ("--closure", str(top / name))]
    return main(["nix-db", *args, "--registration-time", time, "--out", str(top / out)])


def store_at(root: Path, paths) -> None:
    (root / "nix/store").mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", *paths, str(root / "nix/store")], check=True)


def nix_store(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([nix_command("nix-store"), "--store", f"local?root={root}", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)


def test_nix_verifies_the_store_and_knows_its_references(closures, tmp_path):
    assert nix_db(closures, "r", "app.json", "tool.json") == 0
    root = tmp_path / "r"
    infos = [info for name in ("app", "tool") for info in closures[name]["paths"]]
    assert len(infos) == 4
    store_at(root, [info["path"] for info in infos])
    verified = nix_store(root, "--verify", "--check-contents")
    assert verified.returncode == 0, verified.stderr
    assert "checking store hashes" in verified.stderr and "modified" not in verified.stderr
    for info in infos:
        references = nix_store(root, "-q", "--references", info["path"])
        assert references.returncode == 0, references.stderr
        assert sorted(references.stdout.split()) == info["references"]
    app = closures["app"]["roots"][0]
    requisites = nix_store(root, "-qR", app).stdout.split()
    assert sorted(requisites) == [info["path"] for info in closures["app"]["paths"]]
    assert (root / "nix/var/nix/db/schema").read_bytes() == b"10"


def test_a_corrupted_file_is_what_nix_finds(closures, tmp_path):
    # The negative control: the same check fails once a file differs from its NAR hash.
    assert nix_db(closures, "r", "app.json") == 0
    root = tmp_path / "r"
    store_at(root, [info["path"] for info in closures["app"]["paths"]])
    app = closures["app"]["roots"][0]
    corrupted = root / app.lstrip("/") / "bin/app"
    corrupted.chmod(0o755)
    corrupted.write_text("changed\n")
    verified = nix_store(root, "--verify", "--check-contents")
    assert verified.returncode != 0
    assert f"path '{app}' was modified! expected hash" in verified.stderr


def test_the_rows_are_what_nix_store_load_db_registers(closures, tmp_path):
    assert nix_db(closures, "r", "app.json") == 0
    db = sqlite3.connect(tmp_path / "r/nix/var/nix/db/db.sqlite")
    paths = closures["app"]["paths"]
    rows = db.execute("select id, path, hash, registrationTime, deriver, narSize, ultimate, "
                      "sigs, ca from ValidPaths order by id").fetchall()
    assert rows == [(index, info["path"], info["nar_hash"], 1700000000, info["deriver"],
                     info["nar_size"], None, None, None) for index, info in enumerate(paths, 1)]
    ids = {info["path"]: index for index, info in enumerate(paths, 1)}
    refs = db.execute("select referrer, reference from Refs order by rowid").fetchall()
    assert refs == [(ids[info["path"]], ids[ref]) for info in paths
                    for ref in info["references"]]
    assert any(referrer == reference for referrer, reference in refs)  # app refers to itself
    assert db.execute("pragma journal_mode").fetchone() == ("delete",)
    assert sorted(os.listdir(tmp_path / "r/nix/var/nix/db")) == ["db.sqlite", "schema"]


def test_the_schema_is_the_one_nix_creates(closures, tmp_path):
    # Nix 2.8 creating its own database (any store root) stores the same table definitions.
    nix_root = tmp_path / "nix-made"
    assert nix_store(nix_root, "--init").returncode == 0  # creates the store and its db
    assert nix_db(closures, "r", "tool.json") == 0

    def schema(path):
        db = sqlite3.connect(path)
        return sorted(db.execute("select type, name, tbl_name, sql from sqlite_master"))

    assert schema(tmp_path / "r/nix/var/nix/db/db.sqlite") == schema(
        nix_root / "nix/var/nix/db/db.sqlite")
    assert "create table if not exists ValidPaths" in SCHEMA


def test_same_closures_same_bytes(closures, tmp_path):
    assert nix_db(closures, "one", "app.json", "tool.json") == 0
    assert nix_db(closures, "two/deeper", "tool.json", "app.json") == 0
    db = "nix/var/nix/db/db.sqlite"
    assert (tmp_path / "one" / db).read_bytes() == (tmp_path / "two/deeper" / db).read_bytes()
    assert nix_db(closures, "three", "app.json", "tool.json", time="1700000001") == 0
    assert (tmp_path / "three" / db).read_bytes() != (tmp_path / "one" / db).read_bytes()


def test_the_output_is_replaced_not_added_to(closures, tmp_path):
    assert nix_db(closures, "r", "app.json", "tool.json") == 0
    assert nix_db(closures, "r", "tool.json") == 0
    db = sqlite3.connect(tmp_path / "r/nix/var/nix/db/db.sqlite")
    assert db.execute("select count(*) from ValidPaths").fetchone() == (1,)


def test_closures_that_disagree_about_a_path(closures, tmp_path, capsys):
    data = json.loads(closures["dir"].joinpath("tool.json").read_text())
    data["paths"][0]["nar_size"] += 1
    closures["dir"].joinpath("tool-changed.json").write_text(json.dumps(data))
    assert nix_db(closures, "r", "tool.json", "tool-changed.json") == 1
    assert f"two closures disagree about {data['paths'][0]['path']}" in capsys.readouterr().err


def test_a_closure_must_hold_what_its_paths_reference(closures, tmp_path, capsys):
    data = json.loads(closures["dir"].joinpath("app.json").read_text())
    data["paths"] = [info for info in data["paths"] if "strata-db-note" not in info["path"]]
    closures["dir"].joinpath("open.json").write_text(json.dumps(data))
    assert nix_db(closures, "r", "open.json") == 1
    assert "-strata-db-note, which the closure does not hold" in capsys.readouterr().err


@pytest.mark.parametrize("time", ["-1", "soon", "1.5"])
def test_registration_time_is_seconds(closures, time):
    assert nix_db(closures, "r", "tool.json", time=time) == 2
