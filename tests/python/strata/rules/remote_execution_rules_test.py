"""Where Processes run, with the engine mocked (run_rule_with_mocks): `run_process` asks for a
Process where the environment says, or on this machine; `this_machine` is the environment's
settings run here; under remote execution a layer's blob is an output beside layer.json (no
blob store, no named cache), and a layer with build-time commands runs on this machine. The
assembly's and `blobs_as`'s remote behaviour is tested in image_rules_test.py."""

from __future__ import annotations

import json
from typing import List, Optional

import pytest
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileDigest,
    FileEntry,
    MergeDigests,
    RemovePrefix,
)
from pants.engine.internals.native_engine import ProcessExecutionEnvironment
from pants.engine.process import (
    FallibleProcessResult,
    Process,
    ProcessResult,
    ProcessResultMetadata,
    ProductDescription,
)
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks
from pants.util.frozendict import FrozenDict

from strata.core.build.spec import Commands
from strata.rules.blobs import BlobStoreLocation
from strata.rules.commands import NEEDS as COMMANDS_NEED
from strata.rules.layers import (
    BuiltLayer,
    LayerSettings,
    _LayerProcessRequest,
    build_layer,
)
from strata.rules.processes import (
    Execution,
    OnThisMachine,
    ThisMachine,
    current_execution,
    run_on_this_machine,
    run_on_this_machine_or_fail,
    run_process,
    this_machine,
)
from strata.rules.tool import (
    BytecodeCompiler,
    BytecodeCompilerRequest,
    ImageTool,
    Interpreter,
    ZstdBinary,
    ZstdBinaryRequest,
)
from strata.subsystems import StrataSubsystem

REMOTE = ProcessExecutionEnvironment(
    environment_name="remote",
    platform="linux_x86_64",
    docker_image=None,
    remote_execution=True,
    remote_execution_extra_platform_properties=[("network", "on")],
)
PROCESS = Process(argv=("true",), description="Doing a thing")
OUTPUT = Digest("4" * 64, 4)
EMPTY_FILE = FileDigest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0)


def unexpected(*request):
    pytest.fail(f"unexpected request: {request!r}")


def fallible(exit_code: int = 0, output: Digest = OUTPUT) -> FallibleProcessResult:
    return FallibleProcessResult(
        b"", EMPTY_FILE, b"", EMPTY_FILE, exit_code, output,
        ProcessResultMetadata(None, REMOTE, "Ran", 0),
    )


def succeeded(result: FallibleProcessResult, description: ProductDescription) -> ProcessResult:
    assert result.exit_code == 0, description
    return ProcessResult(
        result.stdout, result.stdout_digest, result.stderr, result.stderr_digest,
        result.output_digest, result.metadata,
    )


def test_this_machine_is_the_environment_run_here() -> None:
    here = run_rule_with_mocks(this_machine, rule_args=[REMOTE])
    assert isinstance(here, ThisMachine)
    env = here.environment
    assert env.remote_execution is False
    assert env.remote_execution_extra_platform_properties == []
    assert env.docker_image is None
    assert (env.name, env.platform) == ("remote", "linux_x86_64")
    assert env.environment_type == "local"


def test_the_execution_is_the_environment_s() -> None:
    assert run_rule_with_mocks(current_execution, rule_args=[REMOTE]) == Execution(True)
    here = run_rule_with_mocks(this_machine, rule_args=[REMOTE]).environment
    assert run_rule_with_mocks(current_execution, rule_args=[here]) == Execution(False)


def asked_by_run_process(here: Optional[str], exit_code: int = 0, explain=None):
    """What run_process asks the engine for: ("there", process) or ("here", OnThisMachine)."""
    asked: List[tuple] = []

    def there(process: Process) -> FallibleProcessResult:
        asked.append(("there", process))
        return fallible(exit_code)

    def on_this_machine(request: OnThisMachine) -> FallibleProcessResult:
        asked.append(("here", request))
        return fallible(exit_code)

    def described(result, description):
        asked.append(("described", description))
        return succeeded(result, description)

    result = run_rule_with_mocks(
        run_process if here is None else (
            lambda process, explain: run_process(process, explain, here=here)
        ),
        rule_args=[PROCESS, explain],
        mock_gets=[
            MockGet(FallibleProcessResult, (Process,), there),
            MockGet(FallibleProcessResult, (OnThisMachine,), on_this_machine),
            MockGet(ProcessResult, (FallibleProcessResult, ProductDescription), described),
        ],
    )
    return result, asked


def test_run_process_runs_where_the_environment_says() -> None:
    result, asked = asked_by_run_process(None)
    assert asked == [("there", PROCESS), ("described", ProductDescription("Doing a thing"))]
    assert result.output_digest == OUTPUT


def test_run_process_here_runs_on_this_machine_saying_what_it_needs() -> None:
    result, asked = asked_by_run_process("x")
    assert asked == [
        ("here", OnThisMachine(PROCESS, "x")), ("described", ProductDescription("Doing a thing"))
    ]
    assert result.output_digest == OUTPUT


@pytest.mark.parametrize("here", [None, "x"])
def test_a_failure_explain_recognises_is_its_error_wherever_it_ran(here) -> None:
    with pytest.raises(ValueError, match="the field is wrong"):
        asked_by_run_process(here, 3, lambda failed: ValueError("the field is wrong"))


def test_a_process_on_this_machine_is_run_with_this_machine_s_environment() -> None:
    here = run_rule_with_mocks(this_machine, rule_args=[REMOTE])
    asked = []

    def run(process: Process, environment: ProcessExecutionEnvironment):
        asked.append((process, environment))
        return fallible()

    result = run_rule_with_mocks(
        run_on_this_machine,
        rule_args=[OnThisMachine(PROCESS, "x"), here],
        mock_gets=[
            MockGet(FallibleProcessResult, (Process, ProcessExecutionEnvironment), run),
        ],
    )
    assert asked == [(PROCESS, here.environment)]
    assert not asked[0][1].remote_execution
    assert result.output_digest == OUTPUT

    described = []
    run_rule_with_mocks(
        run_on_this_machine_or_fail,
        rule_args=[OnThisMachine(PROCESS, "x")],
        mock_gets=[
            MockGet(FallibleProcessResult, (OnThisMachine,), lambda r: fallible()),
            MockGet(ProcessResult, (FallibleProcessResult, ProductDescription),
                    lambda r, d: described.append(d) or succeeded(r, d)),
        ],
    )
    assert described == [ProductDescription("Doing a thing")]


# build_layer ---------------------------------------------------------------------------------

PYTHON_VERSION = "3.11.2 (main) [GCC]"
TOOL = ImageTool(
    Digest("1" * 64, 1), Digest("2" * 64, 1), Interpreter("/usr/bin/python3", PYTHON_VERSION)
)
STORE = BlobStoreLocation("/blobs", "strata_blobs")
SETTINGS = LayerSettings(1, True, 0, 0, "root", "root", "gzip")
CONTENT = Digest("3" * 64, 3)
INPUT = Digest("5" * 64, 5)
BLOB_DIGEST = "sha256:" + "b" * 64
LAYER_JSON = json.dumps({
    "diff_id": "sha256:" + "d" * 64, "size": 10, "digest": BLOB_DIGEST, "blob_size": 7,
    "compression": "gzip", "entries": 1,
})
COMMANDS = Commands(extra_commands="touch /app/x", timeout=60)


def strata() -> StrataSubsystem:
    return create_subsystem(StrataSubsystem, remote_cache_speculation_delay=0)


class Digests:
    """The digests a mocked build_layer makes, by what made them: a layer Process's output
    holds out/layer.json, out/layer.tar.gz (unless its blob went into the store), out's stamp
    and layer-paths.json."""

    def __init__(self, in_store: bool):
        self.files = {
            "out/layer.json": LAYER_JSON.encode(),
            "layer-paths.json": b"{}",
            **({"out/blob-stamp.json": b"[1, 2, 3, 4, 5]"} if in_store else
               {"out/layer.tar.gz": b"gzipped"}),
        }
        self.made: dict = {}
        self.subsets: list = []
        self.removed: list = []

    def digest_of(self, files: dict) -> Digest:
        digest = Digest(f"{len(self.made) + 100:064x}", len(self.made) + 100)
        self.made[digest] = files
        return digest

    def subset(self, request: DigestSubset) -> Digest:
        assert request.digest in self.made
        (globs,) = [request.globs.globs]
        self.subsets.append(globs)
        files = self.made[request.digest]
        chosen = {}
        for glob in globs:
            if glob.endswith("/*"):
                prefix = glob[:-1]
                chosen.update({p: c for p, c in files.items()
                               if p.startswith(prefix) and "/" not in p[len(prefix):]})
            elif glob in files:
                chosen[glob] = files[glob]
        return self.digest_of(chosen)

    def contents_of_subset(self, request: DigestSubset) -> DigestContents:
        return self.contents(self.subset(request))

    def contents(self, digest: Digest) -> DigestContents:
        return DigestContents([FileContent(p, c) for p, c in sorted(self.made[digest].items())])

    def _of(self, request, kind, prefix: str) -> Digest:
        """The digest a native RemovePrefix/AddPrefix of `prefix` was asked for (it shows no
        attribute, but compares equal to one made alike)."""
        (digest,) = [d for d in self.made if kind(d, prefix) == request]
        return digest

    def remove_prefix(self, request: RemovePrefix) -> Digest:
        # The layer Process's output directory.
        files = self.made[self._of(request, RemovePrefix, "out")]
        self.removed.append("out")
        assert all(p.startswith("out/") for p in files)
        return self.digest_of({p[len("out/"):]: c for p, c in files.items()})

    def add_prefix(self, request: AddPrefix) -> Digest:
        # The emit Process's input: the layer.json it checks its blob against.
        files = self.made[self._of(request, AddPrefix, "expected")]
        return self.digest_of({f"expected/{p}": c for p, c in files.items()})


def built(execution: Execution, commands: Optional[Commands] = None):
    """build_layer's BuiltLayer, the Processes it asked for (("there", process) or ("here",
    OnThisMachine)), and the digests it made."""
    digests = Digests(in_store=not execution.remote)
    asked: list = []

    def output() -> FallibleProcessResult:
        return fallible(output=digests.digest_of(dict(digests.files)))

    def there(process: Process) -> FallibleProcessResult:
        asked.append(("there", process))
        return output()

    def here(request: OnThisMachine) -> FallibleProcessResult:
        asked.append(("here", request))
        return output()

    request = _LayerProcessRequest(
        entries=(), settings=SETTINGS, comment="//app:bin", description="Building a layer",
        content=CONTENT, commands=commands,
    )
    layer = run_rule_with_mocks(
        build_layer,
        rule_args=[request, TOOL, strata(), STORE, execution],
        mock_gets=[
            MockGet(ZstdBinary, (ZstdBinaryRequest,), unexpected),
            MockGet(DigestEntries, (Digest,), lambda d: DigestEntries(
                [FileEntry("app/bin", FileDigest("a" * 64, 3), is_executable=True)]
            ) if d == CONTENT else unexpected(d)),
            MockGet(Digest, (CreateDigest,), lambda r: Digest("6" * 64, 6)),
            MockGet(Digest, (MergeDigests,), lambda r: INPUT),
            MockGet(BytecodeCompiler, (BytecodeCompilerRequest,), unexpected),
            MockGet(FallibleProcessResult, (Process,), there),
            MockGet(FallibleProcessResult, (OnThisMachine,), here),
            MockGet(ProcessResult, (FallibleProcessResult, ProductDescription), succeeded),
            MockGet(Digest, (DigestSubset,), digests.subset),
            MockGet(Digest, (RemovePrefix,), digests.remove_prefix),
            MockGet(DigestContents, (DigestSubset,), digests.contents_of_subset),
            MockGet(DigestContents, (Digest,), digests.contents),
            MockGet(Digest, (AddPrefix,), digests.add_prefix),
        ],
    )
    return layer, asked, digests


LAYER_ARGV = (
    "/usr/bin/python3", "-E", "-s", "-S", "-B", "-X", f"strata_python={PYTHON_VERSION}", "-m",
    "strata.core.build",
    "--spec", "layer-spec.json", "--out", "out", "--paths", "layer-paths.json",
)


def test_a_layer_under_remote_execution_writes_its_blob_beside_layer_json() -> None:
    layer, asked, digests = built(Execution(True))
    ((where, process),) = asked
    assert where == "there"  # where the environment says: on a remote worker
    assert process.argv == LAYER_ARGV
    assert process.append_only_caches == FrozenDict()
    assert isinstance(layer, BuiltLayer)
    assert layer.blob is None
    assert layer.metadata == LAYER_JSON
    # The layer's digest holds its layer.json and its blob, below no prefix.
    assert digests.made[layer.digest] == {
        "layer.json": LAYER_JSON.encode(), "layer.tar.gz": b"gzipped"
    }
    assert digests.made[layer.paths] == {"layer-paths.json": b"{}"}


def test_a_layer_without_remote_execution_puts_its_blob_into_the_store() -> None:
    layer, asked, digests = built(Execution(False))
    ((where, process),) = asked
    assert where == "there"
    assert process.argv == (*LAYER_ARGV, "--blob-store", ".strata-blobs")
    assert process.append_only_caches == FrozenDict({"strata_blobs": ".strata-blobs"})
    assert digests.made[layer.digest] == {"layer.json": LAYER_JSON.encode()}
    blob = layer.blob
    assert blob is not None
    assert (blob.digest, blob.size, blob.stamp) == (BLOB_DIGEST, 7, (1, 2, 3, 4, 5))
    assert blob.emitted == "out/layer.tar.gz"
    # Its emit: the same Process, checked against the layer.json it wrote.
    assert blob.emit.argv == (*process.argv, "--expect", "expected/layer.json")
    assert blob.emit.append_only_caches == process.append_only_caches
    assert blob.emit.description == "Building a layer: its bytes"


@pytest.mark.parametrize("remote", [False, True])
def test_a_layer_with_build_time_commands_runs_on_this_machine(remote) -> None:
    """Its command tools are this machine's: the layer Process runs here whatever the
    environment. Under remote execution its blob is an output all the same, for the remote
    Processes that read it have no blob store."""
    layer, asked, digests = built(Execution(remote), COMMANDS)
    ((where, request),) = asked
    assert where == "here"
    assert request.needs == COMMANDS_NEED
    process = request.process
    if remote:
        assert process.argv == LAYER_ARGV
        assert process.append_only_caches == FrozenDict()
        assert layer.blob is None
        assert "layer.tar.gz" in digests.made[layer.digest]
    else:
        assert process.argv == (*LAYER_ARGV, "--blob-store", ".strata-blobs")
        assert process.append_only_caches == FrozenDict({"strata_blobs": ".strata-blobs"})
        assert layer.blob is not None and layer.blob.digest == BLOB_DIGEST
