"""The shell's decisions in rules/image.py, with the engine mocked (run_rule_with_mocks): which
Process each output format gets, what the image spec says, what `run` executes. The integration
tests (image_test.py, base_integration_test.py) run the same rules for real."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pants.core.util_rules.system_binaries import BinaryPath, BinaryPathRequest, BinaryPaths
from pants.engine.addresses import Address
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    MergeDigests,
)
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

from strata.rules.base import BaseImage
from strata.rules.closure import ImageClosure, ImageClosureRequest
from strata.rules.image import (
    AssembleRequest,
    BaseRequest,
    ImageInputs,
    OciImageFieldSet,
    assemble_image,
    prepare_image,
    run_oci_image,
)
from strata.rules.layers import BuiltLayer, BuiltLayers, LayersRequest
from strata.rules.tool import ImageTool, ZstdBinary, ZstdBinaryRequest
from strata.subsystems import StrataSubsystem
from strata.target_types import OciImageTarget

ADDRESS = Address("app", target_name="image")
TOOL = ImageTool(Digest("1" * 64, 1), Digest("2" * 64, 1), "/usr/bin/python3")
CORE = ("/usr/bin/python3", "-E", "-s", "-S", "-B", "-m", "strata.core")
INPUTS = Digest("3" * 64, 3)
OUTPUT = Digest("4" * 64, 4)


def image(**fields) -> OciImageTarget:
    return OciImageTarget({"dependencies": [":bin"], **fields}, ADDRESS)


def strata(**options) -> StrataSubsystem:
    return create_subsystem(
        StrataSubsystem, **{"remote_cache_speculation_delay": 0, "loader": "auto", **options}
    )


def unexpected(request):
    pytest.fail(f"unexpected request: {request!r}")


@pytest.mark.parametrize(
    "fmt, output, files, directories, kept",
    [
        ("docker-archive", "app/image.tar", ("app/image.tar", "image.json"), (), "app/image.tar"),
        ("oci-archive", "app/image.tar", ("app/image.tar", "image.json"), (), "app/image.tar"),
        # A layout is a directory; its metadata lives beside it, not inside.
        ("oci", "app/image", ("image.json",), ("app/image",), "app/image/**"),
    ],
)
@pytest.mark.parametrize("reproducible", [True, False])
def test_assemble_process_per_output_format(
    fmt, output, files, directories, kept, reproducible
) -> None:
    processes, subsets = [], []

    def run(process: Process) -> SimpleNamespace:
        processes.append(process)
        return SimpleNamespace(output_digest=OUTPUT)

    def subset(request: DigestSubset) -> Digest:
        subsets.append(request.globs.globs)
        return Digest("5" * 64, 5)

    request = AssembleRequest(OciImageFieldSet.create(image()), fmt, output)
    assembled = run_rule_with_mocks(
        assemble_image,
        rule_args=[request, TOOL, strata(remote_cache_speculation_delay=7)],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), lambda r: ImageInputs(INPUTS, reproducible)),
            MockGet(ProcessResult, (Process,), run),
            MockGet(Digest, (DigestSubset,), subset),
            MockGet(
                DigestContents,
                (DigestSubset,),
                lambda r: DigestContents([FileContent("image.json", b'{"layers": []}')]),
            ),
        ],
    )
    (process,) = processes
    assert process.argv == (
        *CORE, "assemble", "--spec", "image-spec.json", "--out", output, "--metadata", "image.json"
    )  # fmt: skip
    assert process.input_digest == INPUTS
    assert process.output_files == files
    assert process.output_directories == directories
    # A build with a "now" timestamp is redone in each session, never cached.
    assert process.cache_scope == (
        ProcessCacheScope.SUCCESSFUL if reproducible else ProcessCacheScope.PER_SESSION
    )
    assert process.remote_cache_speculation_delay_millis == 7
    assert subsets == [(kept,)]
    assert assembled.metadata == {"layers": []}


def loader_paths(found: dict):
    searched = []

    def paths(request: BinaryPathRequest) -> BinaryPaths:
        searched.append(request.binary_name)
        path = found.get(request.binary_name)
        return BinaryPaths(request.binary_name, [BinaryPath(path)] if path else [])

    return searched, paths


STREAM = "/usr/bin/python3 -E -s -S -B -m strata.core stream --spec image-spec.json"


@pytest.mark.parametrize(
    "loader, found, searched, command",
    [
        ("auto", {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}, ["podman"],
         f"{STREAM} | /usr/bin/podman load"),
        ("auto", {"docker": "/usr/local/bin/docker"}, ["podman", "docker"],
         f"{STREAM} | /usr/local/bin/docker load"),
        # No loader: the archive goes to stdout.
        ("auto", {}, ["podman", "docker"], STREAM),
        ("docker", {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}, ["docker"],
         f"{STREAM} | /usr/bin/docker load"),
        ("stdout", {"podman": "/usr/bin/podman"}, [], STREAM),
    ],
)  # fmt: skip
def test_run_streams_a_docker_archive_into_the_loader(loader, found, searched, command) -> None:
    requests = []

    def inputs(request: AssembleRequest) -> ImageInputs:
        requests.append(request)
        return ImageInputs(INPUTS, True)

    was_searched, paths = loader_paths(found)
    run = run_rule_with_mocks(
        run_oci_image,
        rule_args=[OciImageFieldSet.create(image()), TOOL, strata(loader=loader)],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), inputs),
            MockGet(BinaryPaths, (BinaryPathRequest,), paths),
        ],
    )
    ((_, fmt, output, compression),) = [
        (r.field_set, r.fmt, r.output, r.compression) for r in requests
    ]
    # The image is never written whole: the spec and layers stream into the loader.
    assert (fmt, output, compression) == ("docker-archive", "image.tar", None)
    assert run.digest == INPUTS
    assert run.args == ("/bin/bash", "-c", f"set -o pipefail; cd {{chroot}} && {command}")
    assert was_searched == searched


def test_run_with_a_missing_chosen_loader_is_an_error() -> None:
    _, paths = loader_paths({"podman": "/usr/bin/podman"})
    with pytest.raises(EnvironmentError, match=r"\[strata\].loader is 'docker'"):
        run_rule_with_mocks(
            run_oci_image,
            rule_args=[OciImageFieldSet.create(image()), TOOL, strata(loader="docker")],
            mock_gets=[
                MockGet(ImageInputs, (AssembleRequest,), lambda r: ImageInputs(INPUTS, True)),
                MockGet(BinaryPaths, (BinaryPathRequest,), paths),
            ],
        )


def spec_of(target: OciImageTarget, fmt: str, *, base_layers: int = 0, zstd=None):
    """The image spec prepare_image writes, and what it asked for on the way."""
    asked: dict = {"base": [], "zstd": 0, "layers": []}
    created = []

    def base(request: BaseRequest) -> BaseImage:
        asked["base"].append(request)
        return BaseImage(Digest("6" * 64, 6), base_layers)

    def layers(request: LayersRequest) -> BuiltLayers:
        asked["layers"].append(request)
        return BuiltLayers((BuiltLayer(Digest("7" * 64, 7), "//app:bin", "{}"),))

    def zstd_binary(request: ZstdBinaryRequest) -> ZstdBinary:
        asked["zstd"] += 1
        return ZstdBinary(zstd, ("/usr/bin",))

    def create(request: CreateDigest) -> Digest:
        created.extend(request)
        return Digest("8" * 64, 8)

    run_rule_with_mocks(
        prepare_image,
        rule_args=[AssembleRequest(OciImageFieldSet.create(target), fmt, "out"), TOOL],
        mock_gets=[
            MockGet(ImageClosure, (ImageClosureRequest,), lambda r: ImageClosure(())),
            MockGet(WrappedTarget, (WrappedTargetRequest,), lambda r: WrappedTarget(target)),
            # Only for `ca_certificates` and the customisation layer's checks.
            MockGet(ProcessResult, (Process,), unexpected),
            MockGet(DigestEntries, (Digest,), unexpected),
            MockGet(BaseImage, (BaseRequest,), base),
            MockGet(BuiltLayers, (LayersRequest,), layers),
            MockGet(ZstdBinary, (ZstdBinaryRequest,), zstd_binary),
            MockGet(Digest, (AddPrefix,), lambda r: Digest("9" * 64, 9)),
            MockGet(Digest, (CreateDigest,), create),
            MockGet(Digest, (MergeDigests,), lambda r: INPUTS),
        ],
    )
    (spec_file,) = created
    assert spec_file.path == "image-spec.json"
    return json.loads(spec_file.content), asked


def test_the_spec_carries_the_runtime_config_fields() -> None:
    spec, asked = spec_of(
        image(
            entrypoint=["/app/bin"],
            cmd=[],
            env={"B": "2", "A": "1=1"},
            workdir="/app",
            user="nobody",
            exposed_ports=["8080", "53/udp"],
            labels={"a": "b"},
            volumes=["/data"],
            stop_signal="SIGINT",
            healthcheck={"test": ["CMD-SHELL", "check || exit 1"], "interval": "1m"},
            architecture="arm64",
        ),
        "oci",
    )
    assert spec == {
        "format": "oci",
        "layers": [{"dir": "layers/000", "comment": "//app:bin"}],
        "config": {
            "architecture": "arm64",
            "os": "linux",
            "created": "1970-01-01T00:00:01Z",
            "config": {
                "Entrypoint": ["/app/bin"],
                # Set, though empty: it clears a base's Cmd.
                "Cmd": [],
                "Env": ["A=1=1", "B=2"],
                "WorkingDir": "/app",
                "User": "nobody",
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
                "Labels": {"a": "b"},
                "Volumes": {"/data": {}},
                "StopSignal": "SIGINT",
                "Healthcheck": {"Test": ["CMD-SHELL", "check || exit 1"], "Interval": 60 * 10**9},
            },
        },
        "repository": "image",  # and no `tag`: the core derives it from the content
    }
    assert asked["base"] == [] and asked["zstd"] == 0


def test_unset_runtime_config_fields_leave_their_keys_out() -> None:
    spec, _ = spec_of(image(env={}, labels={}, exposed_ports=[], workdir=""), "docker-archive")
    assert spec["config"]["config"] == {}


@pytest.mark.parametrize(
    "fmt, compression, zstd",
    [
        # Docker cannot read zstd: a docker-archive gets the zstd binary for the base's layers.
        ("docker-archive", "none", "/usr/bin/zstd"),
        ("oci", "zstd", None),
        ("oci-archive", "gzip", None),
    ],
)
def test_a_base_is_resolved_with_the_layers_compression(fmt, compression, zstd) -> None:
    target = image(base=":debian", compression="zstd" if compression == "zstd" else "gzip",
                   output_format=fmt, max_layers=5)
    spec, asked = spec_of(target, fmt, base_layers=3, zstd="/usr/bin/zstd")
    (base,) = asked["base"]
    assert (base.spec, base.image, base.compression) == (":debian", ADDRESS, compression)
    assert spec["base"] == "base"
    assert spec.get("zstd") == zstd
    assert asked["zstd"] == (1 if zstd else 0)
    # The base's layers count against max_layers.
    (layers,) = asked["layers"]
    assert layers.budget == 2
