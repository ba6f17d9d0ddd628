"""The `nix-closure` subcommand: what a Nix expression's attributes (or given store paths) are,
with every store path of their closure, as closure.json (strata.core.nix.spec.NixClosure).

    nix-build FILE -A ATTR... --no-out-link [--option NAME VALUE]...   -> the roots
    nix --extra-experimental-features nix-command path-info --json --recursive ROOTS...

both from the one `--nix-bin` directory, with the same `--option`s. Nix's own error message
(its `error:` lines, without the build log or warnings before them) is the failure's message.
"""

import base64
import json
import os
import subprocess

from strata.core.atomic import write_bytes_atomically
from strata.core.errors import InvalidInput, StrataError, UsageError
from strata.core.build.spec import nix_store_path
from strata.core.nix.spec import NixClosure, NixPathInfo


class NixError(StrataError):
    """A Nix command failed: its message ends with Nix's own."""


def nix_message(stderr: str) -> str:
    """What Nix says went wrong: its output from the first line that starts with `error:`,
    after the last lines of the build log when a builder failed (Nix 2.8 prints the log before
    the error; warnings and progress lines are left out), else its last lines. Paths in the
    sandbox are written relative to it, as the user's repository has them."""
    sandbox = os.getcwd() + os.sep
    lines = [line.replace(sandbox, "") for line in stderr.rstrip().splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("error:")), None)
    if start is None:
        return "\n".join(lines[-_LOG_LINES:]) or "(no message)"
    error = lines[start:]
    if "builder for" not in lines[start]:
        return "\n".join(error)
    log = [line for line in lines[:start] if not line.startswith(_NOT_LOG)]
    if not log:
        return "\n".join(error)
    return "\n".join([*error, f"last {min(len(log), _LOG_LINES)} log lines:",
                      *(f"> {line}" for line in log[-_LOG_LINES:])])


_LOG_LINES = 10
# nix-build's own lines before a builder's error: warnings, and what it builds.
_NOT_LOG = ("warning:", "building '", "these ", "this ", "  /nix/store/")


def nix_binary(nix_bin: str, name: str) -> str:
    path = os.path.join(nix_bin, name)
    if not os.access(path, os.X_OK) or os.path.isdir(path):
        raise StrataError(f"{name} not found in {nix_bin}, the directory given for Nix's "
                          "binaries (nix-build, nix and nix-store)")
    return path


def nix_environment() -> dict:
    """The caller's environment, with a HOME inside the working directory when it has none
    (Nix wants one for its caches)."""
    env = dict(os.environ)
    if not env.get("HOME"):
        env["HOME"] = os.path.abspath(".nix-home")
        os.makedirs(env["HOME"], exist_ok=True)
    return env


def run_nix(argv: list, what: str) -> str:
    """Runs a Nix command; its stdout, or NixError with `what` and Nix's message."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=nix_environment())
    if done.returncode != 0:
        raise NixError(f"{what} failed (exit {done.returncode}): {nix_message(done.stderr)}")
    return done.stdout


def sri_to_digest(sri: str, path: str) -> str:
    """Nix's SRI narHash ("sha256-<base64>") as "sha256:<hex>"."""
    algorithm, _, encoded = sri.partition("-") if isinstance(sri, str) else ("", "", "")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raw = b""
    if algorithm != "sha256" or len(raw) != 32:
        raise InvalidInput(f"nix path-info: {path} has narHash {sri!r}, not a sha256 SRI hash")
    return "sha256:" + raw.hex()


def path_infos(data) -> list:
    """NixPathInfo of each path `nix path-info --json` printed (a list in Nix 2.8, an object
    keyed by path in later versions), sorted by path."""
    if isinstance(data, dict):
        data = [{**info, "path": path} for path, info in data.items()]
    infos = []
    for item in data:
        path = item["path"]
        if not item.get("valid", True):
            raise InvalidInput(f"nix path-info: {path} is not a valid store path")
        references = sorted(set(item.get("references", ())))
        infos.append(NixPathInfo.from_json({
            "path": path, "nar_hash": sri_to_digest(item.get("narHash"), path),
            "nar_size": item.get("narSize"), "references": references,
            "deriver": item.get("deriver"),
        }, f"nix path-info: {path}"))
    return sorted(infos)


def nix_closure(nix_bin: str, options: list, file: str = None, attrs=(),
                store_paths=()) -> NixClosure:
    """The closure of `file`'s attributes (nix-build builds them) or of `store_paths`."""
    nix_options = [word for pair in options for word in ("--option", *pair)]
    if file is not None:
        argv = [nix_binary(nix_bin, "nix-build"), file,
                *(word for attr in attrs for word in ("-A", attr)), "--no-out-link",
                *nix_options]
        what = f"nix-build {file} {' '.join('-A ' + attr for attr in attrs)}"
        roots = []
        for line in run_nix(argv, what).splitlines():
            if line and line not in roots:
                roots.append(nix_store_path(line, f"{what}: output"))
    else:
        roots = list(dict.fromkeys(nix_store_path(path, "--store-path") for path in store_paths))
    argv = [nix_binary(nix_bin, "nix"), "--extra-experimental-features", "nix-command",
            "path-info", "--json", "--recursive", *nix_options, *roots]
    try:
        data = json.loads(run_nix(argv, f"nix path-info {' '.join(roots)}"))
    except json.JSONDecodeError as e:
        raise InvalidInput(f"nix path-info printed no JSON: {e}") from None
    return NixClosure.from_json({"roots": roots,
                                 "paths": [info.to_json() for info in path_infos(data)]})


def nix_closure_command(options) -> None:
    """`nix-closure --nix-bin DIR [--option NAME VALUE]... (--file F --attr A... |
    --store-path P...) --out FILE`."""
    if (options.file is None) == (not options.store_path) or (
            (options.file is None) != (not options.attr)):
        raise UsageError("give --file and at least one --attr, or --store-path (not both)")
    closure = nix_closure(options.nix_bin, options.option, options.file, options.attr,
                          options.store_path)
    text = json.dumps(closure.to_json(), indent=2, sort_keys=True) + "\n"
    write_bytes_atomically(options.out, text.encode())
