"""The `nix-closure` subcommand against real Nix (nix-build, nix path-info), each fact checked
against what nix-store itself says."""

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from strata.core.cli import main
from strata.core.nix.closure import nix_message, path_infos, sri_to_digest
from strata.core.errors import InvalidInput
from strata_harness.nix import busybox_expression, nix_bin, nix_command, nix_output, option_args

# A nonce of this test's own, so that its store paths are not another test's: `top` refers to
# itself and to `lib`, `lib` to a `toFile` (a store path without a deriver), `other` to nothing.
EXPRESSION = busybox_expression("strata-closure-test-1", lets=r"""
  note = builtins.toFile "strata-closure-note" "noted\n";
""", body=r"""rec {
  lib = build "strata-closure-lib" "${bb} mkdir $out && ${bb} echo ${note} > $out/lib";
  top = build "strata-closure-top" "${bb} mkdir $out && ${bb} echo $out ${lib} > $out/refs";
  other = build "strata-closure-other" "${bb} mkdir $out && ${bb} echo alone > $out/x";
  broken = build "strata-closure-broken" "${bb} echo the builder says no >&2; exit 3";
}
""")


@pytest.fixture()
def expression(tmp_path, monkeypatch) -> Path:
    nix_bin()  # no Nix skips the test (fails it under CI) before it writes anything
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test.nix").write_text(EXPRESSION)
    return tmp_path / "test.nix"


def nix_closure(*args: str) -> dict:
    assert main(["nix-closure", "--nix-bin", nix_bin(), *option_args(), *args,
                 "--out", "closure.json"]) == 0
    return json.loads(Path("closure.json").read_text())


def test_the_closure_of_attributes_is_what_nix_store_says(expression):
    closure = nix_closure("--file", str(expression), "--attr", "other", "--attr", "top")
    built = nix_output([nix_command("nix-build"), str(expression), "-A", "other", "-A", "top",
                        "--no-out-link", *option_args()]).split()
    assert closure["roots"] == built  # nix-build's order: the attributes' order
    requisites = nix_output([nix_command("nix-store"), "-qR", *built]).split()
    assert [info["path"] for info in closure["paths"]] == sorted(requisites)
    for info in closure["paths"]:
        path = info["path"]
        nar = nix_output([nix_command("nix-store"), "--dump", path], text=False)
        assert info["nar_hash"] == "sha256:" + hashlib.sha256(nar).hexdigest()
        assert info["nar_size"] == len(nar)
        references = nix_output([nix_command("nix-store"), "-q", "--references", path]).split()
        assert info["references"] == sorted(references)
        deriver = nix_output([nix_command("nix-store"), "-q", "--deriver", path]).strip()
        assert info["deriver"] == (None if deriver == "unknown-deriver" else deriver)
    by_name = {info["path"].split("-", 1)[1]: info for info in closure["paths"]}
    assert set(by_name) == {"strata-closure-top", "strata-closure-lib", "strata-closure-note",
                            "strata-closure-other"}
    top = by_name["strata-closure-top"]
    assert top["references"] == sorted([top["path"], by_name["strata-closure-lib"]["path"]])
    assert by_name["strata-closure-note"]["deriver"] is None


def test_store_paths_give_the_same_closure(expression):
    by_attribute = nix_closure("--file", str(expression), "--attr", "top")
    root = by_attribute["roots"][0]
    by_path = nix_closure("--store-path", root, "--store-path", root)
    assert by_path == by_attribute


def test_without_home_nix_gets_one_in_the_working_directory(expression, monkeypatch):
    monkeypatch.delenv("HOME", raising=False)
    closure = nix_closure("--file", str(expression), "--attr", "other")
    assert len(closure["roots"]) == 1
    assert Path(".nix-home").is_dir()


def failure(capsys, *args: str, bin_dir: str = "") -> tuple:
    code = main(["nix-closure", "--nix-bin", bin_dir or nix_bin(), *option_args(), *args,
                 "--out", "closure.json"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not Path("closure.json").exists()
    return code, err


def test_an_evaluation_error_is_nix_s_message(expression, capsys):
    code, err = failure(capsys, "--file", str(expression), "--attr", "missing")
    assert code == 1
    assert err == (f"strata.core nix-closure: error: nix-build {expression} -A missing failed "
                   f"(exit 1): error: attribute 'missing' in selection path 'missing' not "
                   f"found\n")


def test_a_build_failure_is_nix_s_message_then_the_builder_s_last_lines(expression, capsys):
    code, err = failure(capsys, "--file", str(expression), "--attr", "broken")
    assert code == 1
    assert err.startswith(f"strata.core nix-closure: error: nix-build {expression} -A broken "
                          f"failed (exit 100): error: builder for '/nix/store/")
    assert "strata-closure-broken.drv' failed with exit code 3" in err
    assert err.endswith("last 1 log lines: > the builder says no\n")  # one line, as the CLI says it
    assert "building '" not in err  # nix-build's progress lines come before `error:`


def test_a_store_path_that_is_not_valid(expression, capsys):
    missing = "/nix/store/" + "0" * 32 + "-strata-closure-missing"
    code, err = failure(capsys, "--store-path", missing)
    assert (code, err) == (1, f"strata.core nix-closure: error: nix path-info {missing} failed "
                              f"(exit 1): error: path '{missing}' is not valid\n")


@pytest.mark.parametrize("path", ["/nix/store/" + "0" * 32 + "-x/bin", "/tmp/x",
                                  "/nix/store/" + "0" * 32])
def test_a_path_that_is_no_store_path_is_refused_before_nix_runs(expression, capsys, path):
    code, err = failure(capsys, "--store-path", path, bin_dir="/nonexistent")
    assert (code, err) == (1, f"strata.core nix-closure: error: --store-path: {path!r} is not a "
                              f"Nix store path (/nix/store/<32-character hash>-<name>)\n")


def test_missing_nix_binaries_name_the_directory(expression, capsys):
    code, err = failure(capsys, "--file", str(expression), "--attr", "top",
                        bin_dir=str(expression.parent))
    assert (code, err) == (1, f"strata.core nix-closure: error: nix-build not found in "
                              f"{expression.parent}, the directory given for Nix's binaries "
                              f"(nix-build, nix and nix-store)\n")


@pytest.mark.parametrize("args", [
    ("--file", "f.nix"), ("--attr", "a"), (),
    ("--file", "f.nix", "--attr", "a", "--store-path", "/nix/store/x"), ("--option", "sandbox"),
])
def test_usage_errors(expression, capsys, args):
    assert main(["nix-closure", "--nix-bin", nix_bin(), *args, "--out", "closure.json"]) == 2


def test_nix_message_keeps_the_error_lines_only():
    stderr = ("this derivation will be built:\n  /nix/store/x.drv\nwarning: error: unable to "
              "download\nerror: syntax error, unexpected ';'\n\n       at /f.nix:1:10:\n")
    assert nix_message(stderr) == "error: syntax error, unexpected ';'\n\n       at /f.nix:1:10:"
    assert nix_message("no error line\n") == "no error line"


def test_nix_message_writes_sandbox_paths_as_the_repository_has_them():
    stderr = f"error: syntax error, unexpected ';'\n       at {os.getcwd()}/app/f.nix:1:10:\n"
    assert nix_message(stderr) == "error: syntax error, unexpected ';'\n       at app/f.nix:1:10:"


def test_later_nix_s_object_keyed_by_path_reads_as_2_8_s_list():
    # Nix 2.8 prints a list of objects with "path"; later versions an object keyed by path.
    path = "/nix/store/" + "1" * 32 + "-x"
    info = {"narHash": "sha256-" + base64.b64encode(bytes(32)).decode(), "narSize": 8,
            "references": [path], "deriver": None}
    assert path_infos({path: info}) == path_infos([{**info, "path": path}])
    assert path_infos([{**info, "path": path}])[0].to_json() == {
        "path": path, "nar_hash": "sha256:" + "00" * 32, "nar_size": 8, "references": [path],
        "deriver": None}
    with pytest.raises(InvalidInput, match=f"{path} is not a valid store path"):
        path_infos({path: {**info, "valid": False}})


def test_sri_hashes():
    digest = hashlib.sha256(b"x").digest()
    assert sri_to_digest("sha256-" + base64.b64encode(digest).decode(), "p") == \
        "sha256:" + digest.hex()
    with pytest.raises(InvalidInput, match="p has narHash 'sha512-AAAA', not a sha256 SRI"):
        sri_to_digest("sha512-AAAA", "p")
