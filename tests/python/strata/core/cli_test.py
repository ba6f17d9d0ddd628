import json
import logging

import pytest

from strata.core import cli
from strata.core.build.program import Command, parse
from strata.core.cli import COMMANDS, main
from strata.core.errors import Interrupted, InvalidInput, UsageError
from strata.core.oci.platforms import PlatformError

PUSH = COMMANDS["push"]


def test_the_usage_line_declares_the_options():
    assert PUSH.options() == {
        "layout": "required", "manifest": "required", "repository": "required",
        "registry": "repeated", "tag": "repeated", "mount-from": "optional", "insecure": "flag",
        "attach": "repeated", "credentials-file": "optional", "stall-bytes": "optional",
        "stall-seconds": "optional",
    }


def test_options_flags_and_repeated_options():
    options = parse(PUSH, ["--layout", "L", "--manifest=M", "--registry", "a:5000",
                           "--registry=b", "--repository", "r", "--insecure"])
    assert (options.layout, options.manifest, options.repository) == ("L", "M", "r")
    assert options.registry == ["a:5000", "b"] and options.tag == []
    assert options.insecure is True and options.mount_from is None


def test_an_option_of_two_values_takes_both_each_time():
    nix = COMMANDS["nix-closure"]
    assert nix.options()["option"] == "repeated" and nix.arities()["option"] == ("repeated", 2)
    options = parse(nix, ["--nix-bin", "/usr/bin", "--option", "sandbox", "false",
                          "--option", "substituters", "", "--store-path", "/nix/store/x",
                          "--out", "c.json"])
    assert options.option == [("sandbox", "false"), ("substituters", "")]
    assert options.store_path == ["/nix/store/x"] and options.attr == []
    for argv in (["--option", "sandbox"], ["--option=sandbox", "false"]):
        with pytest.raises(UsageError, match="^argument --option: expected 2 arguments$"):
            parse(nix, argv)


@pytest.mark.parametrize("argv, message", [
    (["--layout"], "argument --layout: expected one argument"),
    (["--layout", "a", "--layout", "b"], "argument --layout: given twice"),
    (["--insecure=yes"], "argument --insecure: takes no value"),
    (["layout", "x"], "unrecognized argument: layout"),
    (["--colour", "x"], "unrecognized argument: --colour"),
    (["--layout", "L"], "the following arguments are required: --manifest, --repository"),
])
def test_usage_errors(argv, message):
    with pytest.raises(UsageError, match=f"^{message}$"):
        parse(PUSH, argv)


def _command_raising(monkeypatch, error):
    def run(options):
        raise error

    monkeypatch.setattr(cli, "_raise_for_test", run, raising=False)
    monkeypatch.setitem(COMMANDS, "fail", Command("strata.core.cli:_raise_for_test", ""))


@pytest.mark.parametrize("error, code, kind", [
    (InvalidInput("bad\nspec"), 1, "error"),
    (ValueError("bad value"), 1, "error"),
    (FileNotFoundError(2, "No such file or directory", "x"), 1, "error"),
    (Interrupted("2 of 3 blobs in place"), 130, "interrupted"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_each_failure_is_one_line_and_its_exit_code(monkeypatch, capsys, error, code, kind):
    _command_raising(monkeypatch, error)
    assert main(["fail"]) == code
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"strata.core fail: {kind}: ")


def test_details_go_to_stdout_as_json(monkeypatch, capsys):
    _command_raising(monkeypatch, PlatformError("linux/s390x", "x.tar", [], ["linux/amd64"]))
    assert main(["fail"]) == 3
    out, err = capsys.readouterr()
    assert json.loads(out)["available"] == ["linux/amd64"]
    assert err == "strata.core fail: error: platform linux/s390x is not in x.tar: it holds linux/amd64\n"


def test_unknown_subcommand_prints_usage(capsys):
    assert main(["nonsense"]) == 2
    assert capsys.readouterr().err.startswith("usage: python -m strata.core {layer,")


def test_network_subcommands_show_their_warnings(monkeypatch, capsys):
    def run(options):
        logging.getLogger("strata.core.registry").warning("GET /v2/: 503; trying again in 0.50s")

    monkeypatch.setattr(cli, "_log_for_test", run, raising=False)
    monkeypatch.setitem(COMMANDS, "talk", Command("strata.core.cli:_log_for_test", "", logs=True))
    monkeypatch.setattr(logging.root, "handlers", [])
    assert main(["talk"]) == 0
    assert "strata.core talk: GET /v2/: 503; trying again in 0.50s" in capsys.readouterr().err
