"""Running Pants, with the Strata plugin loaded, on a scratch repo written by a test."""

from __future__ import annotations

import functools
import importlib.util
import json
import hashlib
import os
import re
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

from strata_harness.tools import run_tool, unavailable

DEFAULT_PANTS_VENV = "/opt/strata/pants-venv-2.17.1"
PLUGIN_DIR = "pants-plugins"
# Settings taken over from the main repo's pants.toml: whole sections, then single keys.
MAIN_SECTIONS = ("python-bootstrap", "python-infer", "pex", "pex-cli", "pytest", "test")
MAIN_KEYS = {
    "GLOBAL": ("pants_version", "ignore_warnings", "backend_packages"),
    "python": ("interpreter_constraints",),
}

# Pants logs "Completed: <description>" (at INFO, the default level of a Process) for each
# process that actually executed, and nothing for a process whose result came from the cache.
_COMPLETED = re.compile(r"^[\d:.]+ \[[A-Z]+\] Completed: (.*)$", re.MULTILINE)
_COUNTER = re.compile(r"^\s+([a-z_]+): (\d+)$", re.MULTILINE)


def strata_root() -> Path:
    """The main checkout (exported by ./pants, passed to tests by [test].extra_env_vars)."""
    root = os.environ.get("STRATA_ROOT")
    if not root:
        unavailable("STRATA_ROOT is not set: run the tests through ./pants, which exports it")
    return Path(root)


def copy_tracked_files(source: Path, dest: Path) -> None:
    """What a fresh clone holds, taken from the working tree so uncommitted changes count."""
    if shutil.which("git") is None:
        unavailable("git is not on PATH: it lists the repository's tracked files")
    listed = subprocess.run(["git", "-C", str(source), "ls-files", "-z"],
                            capture_output=True, check=True)
    for rel in listed.stdout.decode().split("\0"):
        if rel and (source / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest / rel)


def pants_binary() -> Path:
    venv = Path(os.environ.get("STRATA_PANTS_VENV", DEFAULT_PANTS_VENV))
    if not (venv / "bin" / "pants").is_file():
        unavailable(f"no Pants venv at {venv}: ./pants bootstraps it (build-support/bootstrap.sh)")
    return venv / "bin" / "pants"


@functools.lru_cache(maxsize=None)
def main_pants_toml() -> dict[str, Any]:
    """The main repo's pants.toml, parsed by the same TOML library Pants itself uses."""
    python = pants_binary().parent / "python"
    script = "import json, sys, toml; print(json.dumps(toml.load(sys.argv[1])))"
    return json.loads(
        run_tool([str(python), "-c", script, str(strata_root() / "pants.toml")]).stdout
    )


def _at_main_buildroot(value: Any, root: str) -> Any:
    """Main-repo values mean the main buildroot by %(buildroot)s, e.g. the pex CLI's URL."""
    if isinstance(value, str):
        return value.replace("%(buildroot)s", root)
    if isinstance(value, list):
        return [_at_main_buildroot(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _at_main_buildroot(v, root) for k, v in value.items()}
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are valid TOML
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def to_toml(config: Mapping[str, Mapping[str, Any]]) -> str:
    return "".join(
        f"[{_toml_key(section)}]\n"
        + "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in values.items())
        + "\n"
        for section, values in config.items()
    )


def _plugin_source() -> Path:
    """The `strata` package as the test process sees it: in a Pants sandbox, source roots are
    stripped, so it is `<cwd>/strata` (the test needs a dependency on src/python/strata)."""
    spec = importlib.util.find_spec("strata")
    if spec is None or spec.origin is None:
        raise AssertionError("the strata plugin is not importable: depend on src/python/strata")
    return Path(spec.origin).parent


def ran_processes(output: str | subprocess.CompletedProcess[str], prefix: str = "") -> list[str]:
    """Descriptions of the processes that ran (not cache hits) whose description starts with
    `prefix`, from a Pants run's stderr (or its CompletedProcess)."""
    text = output if isinstance(output, str) else output.stderr
    return [d for d in _COMPLETED.findall(text) if d.startswith(prefix)]


def counters(output: str | subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The counters `--stats-log` prints at the end of a run ("Counters:", then one
    "  name: value" line each), by name."""
    text = output if isinstance(output, str) else output.stderr
    start = text.rfind("Counters:")
    assert start != -1, f"no --stats-log counters in:\n{text[-4000:]}"
    return {name: int(value) for name, value in _COUNTER.findall(text[start:])}


def executed_processes(output: str | subprocess.CompletedProcess[str]) -> int:
    """How many processes a Pants run executed (cache misses, at any log level), from the
    counters `--stats-log` prints."""
    return counters(output)["local_execution_requests"]


def plugin_requirement(wheel: Path) -> str:
    """`name==version` for `[GLOBAL].plugins`, from a wheel's file name (PEP 427)."""
    name, version = wheel.name.split("-")[:2]
    return f"{name.replace('_', '-')}=={version}"


class ScratchRepo:
    """A fresh Pants repo under `root` that loads the Strata plugin (a copy, under
    pants-plugins/, on `pythonpath`) with the main repo's bootstrap, pex and pytest settings.

    config: extra pants.toml settings, merged over those per section ({"python": {...}}).
    backends: backend packages added to the main repo's (which include `strata`).
    isolated_cache: a local store (files and process cache) and a blob store of this repo's own,
    so a first run executes every process regardless of earlier test runs; the shared named
    caches (pip, pex) are still used.
    plugin_wheel: install the plugin from this wheel as a user's repo does (`[GLOBAL].plugins`,
    its directory in `[python-repos].find_links`) instead: no Strata source anywhere on the
    repo's paths.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        files: Mapping[str, str | bytes] | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        backends: Sequence[str] = (),
        isolated_cache: bool = False,
        plugin_wheel: Path | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.pants = pants_binary()
        self.strata_root = strata_root()
        self.local_store = self.root / ".pants-store" if isolated_cache else None
        self.blob_store = self.root / ".blob-store"  # with isolated_cache
        if plugin_wheel is None:
            shutil.copytree(
                _plugin_source(),
                self.root / PLUGIN_DIR / "strata",
                ignore=shutil.ignore_patterns(
                    "__pycache__", "BUILD*", "*_test.py", "test_*.py", "conftest.py"
                ),
            )
        self.config = self._config(config or {}, backends, plugin_wheel)
        (self.root / "pants.toml").write_text(to_toml(self.config))
        self.write(files or {})

    def _config(
        self,
        extra: Mapping[str, Mapping[str, Any]],
        backends: Sequence[str],
        plugin_wheel: Path | None,
    ) -> dict[str, dict[str, Any]]:
        main = main_pants_toml()
        config: dict[str, dict[str, Any]] = {
            section: {k: main[section][k] for k in keys if k in main.get(section, {})}
            for section, keys in MAIN_KEYS.items()
        }
        config.update((section, main[section]) for section in MAIN_SECTIONS if section in main)
        config = _at_main_buildroot(config, str(self.strata_root))
        config["GLOBAL"]["backend_packages"] = [
            *config["GLOBAL"].get("backend_packages", []),
            *backends,
        ]
        if plugin_wheel is None:
            config["GLOBAL"]["pythonpath"] = [f"%(buildroot)s/{PLUGIN_DIR}"]
        else:
            config["GLOBAL"]["plugins"] = [plugin_requirement(plugin_wheel)]
            config["python-repos"] = {"find_links": [f"file://{plugin_wheel.parent}"]}
        if self.local_store is not None:
            config["GLOBAL"]["local_store_dir"] = str(self.local_store)
            config.setdefault("strata", {})["blob_store"] = str(self.blob_store)
        for section, values in extra.items():
            config.setdefault(section, {}).update(values)
        return config

    def dist_digests(self) -> dict[str, str]:
        """The sha256 of every file under dist/ (a link into the blob store read through), by
        path: two builds' outputs, byte for byte."""
        dist = self.root / "dist"
        return {
            str(p.relative_to(dist)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dist.rglob("*"))
            if p.is_file()
        }

    def write(self, files: Mapping[str, str | bytes]) -> None:
        """Writes files relative to the repo root; str contents are dedented."""
        for rel, content in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content).lstrip("\n"))

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 1200,
        env: Mapping[str, str] | None = None,
        pantsd: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Runs `pants ARGS` here (see `command`), output captured as text; check=True asserts
        it exits 0."""
        cmd, pants_env = self.command(*args, env=env, pantsd=pantsd)
        proc = subprocess.run(
            cmd,
            cwd=self.root,
            env=pants_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`{' '.join(cmd[1:])}` in {self.root} exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr[-20000:]}"
            )
        return proc

    def command(
        self, *args: str, env: Mapping[str, str] | None = None, pantsd: bool = False
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run `pants ARGS` here.

        env: extra variables for the Pants process (overriding the defaults below), e.g.
        registry credentials for `publish`.

        By default --no-pantsd: every run is a fresh process, so a second run sees only the
        persistent caches (what reproducibility tests compare); pantsd=True runs through (and
        starts) this repo's pantsd instead, watching the filesystem: stop it with
        `stop_pantsd()`. --no-pantsrc: no ~/.pants.rc or /etc/pantsrc.
        """
        pants_env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": os.path.expanduser("~"),  # ~/.cache/pants: shared named caches
            "LANG": "C.UTF-8",  # Pants refuses to start under a non-UTF-8 locale
            "NO_SCIE_WARNING": "1",
            "STRATA_ROOT": str(self.strata_root),
        }
        if "CI" in os.environ:
            pants_env["CI"] = os.environ["CI"]
        pants_env.update(env or {})
        if pantsd:  # as ./pants runs it: the native client, falling back to self.pants
            native = self.pants.with_name("pants-native-client")
            pants_env["_PANTS_SERVER_EXE"] = str(self.pants)
            cmd = [str(native if native.is_file() else self.pants), "--pantsd", "--no-pantsrc"]
        else:
            cmd = [str(self.pants), "--no-pantsd", "--no-pantsrc", "--no-watch-filesystem"]
        return [*cmd, *args], pants_env

    def assert_package_fails(self, target: str, message: str) -> None:
        """`pants package TARGET` (through this repo's pantsd) fails saying `message` (compared
        with whitespace folded, as Pants wraps lines) and writes nothing to dist/ for TARGET's
        directory."""
        result = self.run("package", target, check=False, pantsd=True)
        assert result.returncode != 0, result.stderr[-3000:]
        assert message in " ".join(result.stderr.split()), result.stderr[-3000:]
        assert not (self.root / "dist" / target.split(":")[0]).exists()

    def _pantsd_pids(self) -> list[int]:
        """This repo's pantsd processes (their process title names the buildroot)."""
        title = f"pantsd [{self.root}]".encode()
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(title):
                    pids.append(int(proc.name))
            except OSError:
                continue  # gone meanwhile
        return pids

    def pantsd_pid(self) -> int | None:
        """The pid of this repo's pantsd, or None when none runs."""
        return min(self._pantsd_pids(), default=None)

    def pantsd_rss_mb(self) -> float | None:
        """The resident memory of this repo's pantsd, or None when none runs."""
        for pid in self._pantsd_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop_pantsd(self) -> None:
        """Stops this repo's pantsd, if one runs."""
        for pid in self._pantsd_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
