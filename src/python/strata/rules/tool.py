"""Strata's image tool as Pants runs it: the core's sources and a system CPython."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from pants.core.util_rules.system_binaries import (
    BinaryPathRequest,
    BinaryPaths,
    BinaryPathTest,
)
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import CreateDigest, Digest, FileContent
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from strata import core as strata_core
from strata.core.__main__ import layer_sources
from strata.core.build.program import INTERPRETER_OPTION
from strata.rules.processes import Execution, OnThisMachine
from strata.subsystems import StrataSubsystem

# The shell of the Processes that run a command line, the lookups on this machine among them.
SHELL = "/bin/sh"


@dataclass(frozen=True)
class Interpreter:
    """A CPython that runs the core, as found where its Processes run (on a remote worker under
    remote execution): its path and its `sys.version`. Every Process it runs names both in
    its command line, so a cache key holds the interpreter's build, not only its path, and
    the core refuses to run under another (strata.core.build.program.check_interpreter)."""

    path: str
    version: str

    def argv(self, *args: str, ignore_environment: bool = True) -> Tuple[str, ...]:
        # -E/-s/-S: no environment variable, user or system site-packages (nor the .pth files
        # there, which run code at startup) may change the output, the cache key or the speed.
        flags = ("-E",) if ignore_environment else ()
        return (self.path, *flags, "-s", "-S", "-B",
                "-X", f"{INTERPRETER_OPTION}={self.version}", *args)


@dataclass(frozen=True)
class ImageTool:
    """Strata's core, as files to put in a sandbox, and the interpreter that runs it."""

    digest: Digest  # the whole core
    layer_digest: Digest  # just what writing a layer needs (`layer_sources`)
    python: Interpreter

    def argv(self, *args: str) -> Tuple[str, ...]:
        return self.python.argv("-m", "strata.core", *args)

    def layer_argv(self, *args: str) -> Tuple[str, ...]:
        """The layer step's command line, which runs with `layer_digest` alone."""
        return self.python.argv("-m", "strata.core.build", *args)


@dataclass(frozen=True)
class BytecodeCompiler:
    """A CPython of the version a venv's bytecode is for (a pyc is version-specific), to run
    the layer step that compiles it, with a fixed hash seed: set-typed constants are marshalled
    in hash order, so a random seed would give different bytes each time."""

    python: Interpreter

    def layer_argv(self, *args: str) -> Tuple[str, ...]:
        # Without -E, which would ignore PYTHONHASHSEED: a Process's environment is only `env()`.
        return self.python.argv("-m", "strata.core.build", *args, ignore_environment=False)

    @staticmethod
    def env() -> Dict[str, str]:
        return {"PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class BytecodeCompilerRequest:
    version: str  # MAJOR.MINOR


@dataclass(frozen=True)
class ZstdBinary:
    """The `zstd` binary, if installed: some steps need it only for some inputs (a base image's
    zstd layers), so a missing one is an error only where it is required."""

    path: Optional[str]
    search_paths: Tuple[str, ...]

    def require(self, why: str) -> str:
        if self.path is None:
            raise EnvironmentError(
                f"{why} needs the `zstd` binary in one of {list(self.search_paths)} "
                "([strata].zstd_search_paths)."
            )
        return self.path


@dataclass(frozen=True)
class ZstdBinaryRequest:
    pass


@dataclass(frozen=True)
class InstalledBinary:
    """The first binary a `BinaryPathRequest` finds, or None: every lookup Strata makes."""

    path: Optional[str]


@rule(desc="Finding a binary", level=LogLevel.DEBUG)
async def find_binary(request: BinaryPathRequest) -> InstalledBinary:
    paths = await Get(BinaryPaths, BinaryPathRequest, request)
    return InstalledBinary(paths.first_path.path if paths.first_path else None)


@dataclass(frozen=True)
class BinaryOnThisMachine:
    """A binary for Processes that run on this machine (`OnThisMachine`), looked up here
    whatever the environment, with its output for `version_args`, if any."""

    name: str
    search_path: Tuple[str, ...]
    needs: str  # what the Processes that use it need of this machine
    version_args: Tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundOnThisMachine:
    path: Optional[str]
    version: str = ""  # the binary's stdout for `version_args`


_FIRST_EXECUTABLE = (
    'name=$1; shift; for dir; do '
    'if [ -f "$dir/$name" ] && [ -x "$dir/$name" ]; then echo "$dir/$name"; exit 0; fi; done'
)


@rule(desc="Finding a binary on this machine", level=LogLevel.DEBUG)
async def find_binary_on_this_machine(request: BinaryOnThisMachine) -> FoundOnThisMachine:
    """Looked up again once per pantsd, as Pants looks up binaries."""
    found = await Get(ProcessResult, OnThisMachine(Process(
        argv=(SHELL, "-c", _FIRST_EXECUTABLE, "sh", request.name, *request.search_path),
        description=f"Finding {request.name} on this machine",
        level=LogLevel.DEBUG,
        cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
    ), request.needs))
    path = found.stdout.decode().strip() or None
    if path is None or not request.version_args:
        return FoundOnThisMachine(path)
    version = await Get(ProcessResult, OnThisMachine(Process(
        argv=(path, *request.version_args),
        description=f"Asking {path} its version",
        level=LogLevel.DEBUG,
        cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
    ), request.needs))
    return FoundOnThisMachine(path, version.stdout.decode(errors="replace").strip())


async def _python(name: str, version_check: str, strata: StrataSubsystem) -> Optional[Interpreter]:
    """The first `name` of `[strata].python_search_paths` whose `sys.version_info` passes
    `version_check`, with its `sys.version`, or None. Looked up where the Processes it runs
    run (on a remote worker under remote execution), again once per pantsd, as Pants looks up
    binaries."""
    found = await Get(
        InstalledBinary,
        BinaryPathRequest(
            binary_name=name,
            search_path=strata.python_search_paths,
            test=BinaryPathTest(
                ["-c", f"import sys; assert sys.version_info{version_check}"],
                fingerprint_stdout=False,
            ),
        ),
    )
    if found.path is None:
        return None
    version = await Get(ProcessResult, Process(
        argv=(found.path, "-E", "-s", "-S", "-c", "import sys; sys.stdout.write(sys.version)"),
        description=f"Asking {found.path} its version",
        level=LogLevel.DEBUG,
        cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
    ))
    return Interpreter(found.path, version.stdout.decode())


def _where(execution: Execution) -> str:
    return "on the remote execution workers" if execution.remote else "on this machine"


@rule(desc="Finding Strata's image tool", level=LogLevel.DEBUG)
async def find_image_tool(strata: StrataSubsystem, execution: Execution) -> ImageTool:
    core_dir = Path(strata_core.__file__).parent
    package = FileContent("strata/__init__.py", b"")
    modules = {
        source.relative_to(core_dir).as_posix(): FileContent(
            f"strata/core/{source.relative_to(core_dir).as_posix()}", source.read_bytes()
        )
        for source in sorted(core_dir.rglob("*.py"))
    }
    python = await _python("python3", ">= (3, 9)", strata)
    if python is None:
        raise EnvironmentError(
            f"Strata needs CPython 3.9 or newer as `python3` {_where(execution)}, in one of "
            f"{list(strata.python_search_paths)} ([strata].python_search_paths)."
        )
    digest, layer_digest = await MultiGet(
        Get(Digest, CreateDigest([package, *modules.values()])),
        Get(Digest, CreateDigest([package, *(modules[name] for name in layer_sources(core_dir))])),
    )
    return ImageTool(digest, layer_digest, python)


@rule(desc="Finding a CPython to compile bytecode", level=LogLevel.DEBUG)
async def find_bytecode_compiler(
    request: BytecodeCompilerRequest, strata: StrataSubsystem, execution: Execution
) -> BytecodeCompiler:
    major, minor = request.version.split(".")
    python = await _python(f"python{request.version}", f"[:2] == ({major}, {minor})", strata)
    if python is None:
        raise EnvironmentError(
            f"Compiling bytecode for a CPython {request.version} venv needs `python"
            f"{request.version}` {_where(execution)}, in one of "
            f"{list(strata.python_search_paths)} ([strata].python_search_paths), or set the "
            "venv's `bytecode` field to `none`."
        )
    return BytecodeCompiler(python)


@rule(desc="Finding zstd", level=LogLevel.DEBUG)
async def find_zstd(_: ZstdBinaryRequest, strata: StrataSubsystem) -> ZstdBinary:
    found = await Get(
        InstalledBinary,
        BinaryPathRequest(
            binary_name="zstd", search_path=strata.zstd_search_paths, test=BinaryPathTest(["-V"])
        ),
    )
    return ZstdBinary(found.path, tuple(strata.zstd_search_paths))


@dataclass(frozen=True)
class RegistryAccessEnv:
    """The environment of a pull or push: where it finds the docker config.json
    (DOCKER_CONFIG, HOME) and the credential helpers it names (PATH). Paths only, never a
    secret: a pull's environment is part of its cache key, and Pants logs both at -ldebug."""

    env: Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class RegistryAccessEnvRequest:
    pass


@rule(desc="Finding registry credentials' config and helpers", level=LogLevel.DEBUG)
async def registry_access_env(
    _: RegistryAccessEnvRequest, strata: StrataSubsystem
) -> RegistryAccessEnv:
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(("DOCKER_CONFIG", "HOME", "PATH")))
    search_path = []
    for entry in strata.credential_helper_search_paths:
        if entry == "<PATH>":
            search_path.extend(p for p in (env.get("PATH") or "").split(":") if p)
        else:
            search_path.append(entry)
    found = {name: env[name] for name in ("DOCKER_CONFIG", "HOME") if env.get(name)}
    found["PATH"] = ":".join(dict.fromkeys(search_path))
    return RegistryAccessEnv(tuple(sorted(found.items())))


def rules():
    return collect_rules()
