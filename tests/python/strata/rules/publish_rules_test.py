"""The shell's decisions in rules/goals/publish.py, with the engine mocked (run_rule_with_mocks): the
layout it assembles, the manifest Process, one push Process per registry with its argv and
environment, and the credentials' hand-off file. publish_integration_test.py pushes to a real
registry, registry_secrets_integration_test.py searches all Pants writes for the secret."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from types import SimpleNamespace

import pytest
from pants.engine.addresses import Address, AddressInput
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, DigestContents, DigestSubset, FileContent, MergeDigests
from pants.engine.internals.session import RunId
from pants.engine.process import Process, ProcessResult
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.option.errors import OptionsError
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks
from pants.util.frozendict import FrozenDict

from strata.rules.closure import ImageClosure, ImageClosureRequest
from strata.rules.goals import publish as publish_rules
from strata.rules.goals.publish import (
    PublishOciImageFieldSet,
    PublishOciImageRequest,
    publish_oci_image,
)
from strata.rules.image.assembly import AssembledImage, AssembleRequest, ImageInputs
from strata.rules.sbom import NodesFacts, NodesFactsRequest, Sbom, SbomRequest, SbomSources
from strata.rules.tool import (
    ImageTool,
    Interpreter,
    RegistryAccessEnv,
    RegistryAccessEnvRequest,
    registry_access_env,
)
from strata.subsystems import StrataSubsystem
from strata.target_types.base import OciImageArchiveTarget, OciPullTarget
from strata.target_types.image import OciImageTarget

ADDRESS = Address("app", target_name="image")
INPUTS = ImageInputs(
    Digest("8" * 64, 8), Digest("9" * 64, 9), True,
    SbomSources((), (), None, "1970-01-01T00:00:01Z", FrozenDict()),
)
PYTHON_VERSION = "3.11.2 (main) [GCC]"
TOOL = ImageTool(
    Digest("1" * 64, 1), Digest("2" * 64, 1), Interpreter("/usr/bin/python3", PYTHON_VERSION)
)
CORE = ("/usr/bin/python3", "-E", "-s", "-S", "-B", "-X", f"strata_python={PYTHON_VERSION}", "-m",
        "strata.core")
STRATA = create_subsystem(
    StrataSubsystem, registry_stall_bytes=1024, registry_stall_seconds=60.0
)
STALL = ("--stall-bytes", "1024", "--stall-seconds", "60.0")
ACCESS = RegistryAccessEnv((("HOME", "/root"), ("PATH", "/usr/bin:/bin")))
MANIFEST = b'{"mediaType": "application/vnd.oci.image.manifest.v1+json"}'
BASES = {
    Address("base", target_name="pulled"): OciPullTarget(
        {"registry": "127.0.0.1:5000", "repository": "library/debian",
         "digest": "sha256:" + "d" * 64},
        Address("base", target_name="pulled"),
    ),
    Address("base", target_name="archived"): OciImageArchiveTarget(
        {"source": "base.tar"}, Address("base", target_name="archived")
    ),
}  # fmt: skip


def publish(**fields):
    """(PublishProcesses, what was asked for: assembly, manifest Process, env names)."""
    target = OciImageTarget({"dependencies": [":bin"], **fields}, ADDRESS)
    asked: dict = {"assemble": [], "manifest": [], "env": [], "sbom": []}

    def wrapped(request: WrappedTargetRequest) -> WrappedTarget:
        return WrappedTarget(target if request.address == ADDRESS else BASES[request.address])

    def assemble(request: AssembleRequest) -> AssembledImage:
        asked["assemble"].append(request)
        metadata = {
            "repo_tag": "image:0123abcd",
            "manifest_digest": "sha256:" + "a" * 64,
            "config_digest": "sha256:" + "b" * 64,
        }
        return AssembledImage(Digest("3" * 64, 3), metadata)

    def manifest(process: Process) -> SimpleNamespace:
        asked["manifest"].append(process)
        return SimpleNamespace(output_digest=Digest("4" * 64, 4))

    def env(request: RegistryAccessEnvRequest) -> RegistryAccessEnv:
        asked["env"].append(request)
        return ACCESS

    def handoff(request: publish_rules._CredentialsHandoffRequest):
        return publish_rules._CredentialsHandoff(f"/tmp/handoff-{request.registry}")

    def address(request: AddressInput) -> Address:
        return Address(request.path_component, target_name=request.target_component)

    def sbom(request: SbomRequest) -> Sbom:
        asked["sbom"].append(request)
        files = (f"{request.output}.spdx.json", f"{request.output}.cdx.json")
        return Sbom(Digest("7" * 64, 7), files)

    field_set = PublishOciImageFieldSet.create(target)
    processes = run_rule_with_mocks(
        publish_oci_image,
        rule_args=[PublishOciImageRequest(field_set, ()), TOOL, STRATA],
        mock_gets=[
            MockGet(WrappedTarget, (WrappedTargetRequest,), wrapped),
            MockGet(AssembledImage, (AssembleRequest,), assemble),
            MockGet(ImageClosure, (ImageClosureRequest,), lambda r: ImageClosure(())),
            MockGet(NodesFacts, (NodesFactsRequest,), lambda r: NodesFacts(())),
            MockGet(ImageInputs, (AssembleRequest,), lambda r: INPUTS),
            MockGet(Sbom, (SbomRequest,), sbom),
            MockGet(Digest, (DigestSubset,), lambda r: Digest("5" * 64, 5)),
            MockGet(ProcessResult, (Process,), manifest),
            MockGet(Digest, (MergeDigests,), lambda r: Digest("6" * 64, 6)),
            MockGet(
                DigestContents, (Digest,), lambda d: DigestContents([FileContent("m", MANIFEST)])
            ),
            MockGet(RegistryAccessEnv, (RegistryAccessEnvRequest,), env),
            MockGet(Address, (AddressInput,), address),
            MockGet(
                publish_rules._CredentialsHandoff,
                (publish_rules._CredentialsHandoffRequest,),
                handoff,
            ),
        ],
    )
    return processes, asked


def test_one_push_per_registry_with_credentials_handed_off_in_a_file() -> None:
    processes, asked = publish(
        registries=["127.0.0.1:5000", "localhost:5001"], repository="acme/app",
        image_tags=["1.0", "latest"],
    )  # fmt: skip
    assert [p.names for p in processes] == [
        ("127.0.0.1:5000/acme/app:1.0", "127.0.0.1:5000/acme/app:latest"),
        ("localhost:5001/acme/app:1.0", "localhost:5001/acme/app:latest"),
    ]
    push = (*CORE, "push", "--layout", "image", "--manifest", "push-manifest.json",
            "--repository", "acme/app", "--tag", "1.0", "--tag", "latest",
            "--attach", "sbom/image.spdx.json", "--attach", "sbom/image.cdx.json",
            *STALL)  # fmt: skip
    for registry, package in zip(("127.0.0.1:5000", "localhost:5001"), processes):
        # Each push its own hand-off, by path: Pants logs argv and env, not files.
        assert package.process.process.argv == (
            *push, "--registry", registry, "--credentials-file", f"/tmp/handoff-{registry}"
        )
        assert dict(package.process.process.env) == dict(ACCESS.env)
        assert package.data["registry"] == registry
        assert package.data["digest"] == package.description.strip("()")
    assert asked["env"] == [RegistryAccessEnvRequest()]


@pytest.mark.parametrize(
    "search_paths, path",
    [
        (["<PATH>"], "/home/me/bin:/usr/bin"),
        (["/opt/helpers", "<PATH>", "/usr/bin"], "/opt/helpers:/home/me/bin:/usr/bin"),
        (["/usr/local/bin", "/usr/bin"], "/usr/local/bin:/usr/bin"),
    ],
)
def test_pulls_and_pushes_get_only_paths_with_the_helpers_search_path(search_paths, path):
    asked = []

    def env(request: EnvironmentVarsRequest) -> EnvironmentVars:
        asked.append(tuple(request.requested))
        return EnvironmentVars(
            {"HOME": "/home/me", "PATH": "/home/me/bin::/usr/bin", "DOCKER_CONFIG": ""}
        )

    access = run_rule_with_mocks(
        registry_access_env,
        rule_args=[
            RegistryAccessEnvRequest(),
            create_subsystem(StrataSubsystem, credential_helper_search_paths=search_paths),
        ],
        mock_gets=[MockGet(EnvironmentVars, (EnvironmentVarsRequest,), env)],
    )
    assert asked == [("DOCKER_CONFIG", "HOME", "PATH")]
    assert dict(access.env) == {"HOME": "/home/me", "PATH": path}


@pytest.mark.parametrize(
    "compression, pushed", [("none", "gzip"), ("gzip", "gzip"), ("zstd", "zstd")]
)
def test_the_pushed_layout_has_compressed_layers(compression, pushed) -> None:
    _, asked = publish(registries=["127.0.0.1:5000"], compression=compression)
    ((fmt, output, layers),) = [(r.fmt, r.output, r.compression) for r in asked["assemble"]]
    assert (fmt, output, layers) == ("oci", "image", pushed)


@pytest.mark.parametrize("publish_format, flag", [("oci", []), ("docker", ["--docker"])])
def test_the_manifest_to_push_is_decided_by_the_core(publish_format, flag) -> None:
    processes, asked = publish(registries=["127.0.0.1:5000"], publish_format=publish_format)
    (process,) = asked["manifest"]
    assert process.argv == (
        *CORE, "manifest", "--layout", "image", *flag, "--out", "push-manifest.json"
    )
    assert process.output_files == ("push-manifest.json",)
    # What is reported is the digest of the bytes the push sends.
    (package,) = processes
    digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    assert package.data["digest"] == digest and package.description == f"({digest})"
    # Without image_tags, the content-derived tag of the assembled image.
    assert package.names == ("127.0.0.1:5000/image:0123abcd",)


@pytest.mark.parametrize(
    "base, mount",
    [(None, []), ("//base:pulled", ["--mount-from", "library/debian"]), ("//base:archived", [])],
)
def test_layers_of_a_pulled_base_are_mounted_from_its_repository(base, mount) -> None:
    fields = {"base": base} if base else {}
    (package,), _ = publish(registries=["127.0.0.1:5000"], **fields)
    argv = package.process.process.argv
    assert argv[-4:-2] == ("--registry", "127.0.0.1:5000")
    assert list(argv[argv.index("--tag") + 2 : argv.index("--attach")]) == mount


def test_an_image_without_registries_pushes_nothing() -> None:
    processes, asked = publish()
    ((package,),) = [processes]
    assert package.names == () and package.process is None
    assert asked["assemble"] == []


def test_the_sbom_of_the_pushed_manifest_goes_up_as_its_referrers() -> None:
    (package,), asked = publish(registries=["127.0.0.1:5000"], publish_format="docker")
    (request,) = asked["sbom"]
    # The SBOM names the manifest the push sends (here the Docker one), not the layout's.
    assert request.manifest_digest == "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    assert (request.repository, request.tag) == ("image", "0123abcd")
    argv = package.process.process.argv
    assert argv[argv.index("--attach"):argv.index("--stall-bytes")] == (
        "--attach", "sbom/image.spdx.json", "--attach", "sbom/image.cdx.json"
    )
    (package,), asked = publish(registries=["127.0.0.1:5000"], sbom=False)
    assert asked["sbom"] == [] and "--attach" not in package.process.process.argv


def hand_off(run_id: int, values: dict, request=None):
    request = request or publish_rules._CredentialsHandoffRequest(ADDRESS, "127.0.0.1:5000")
    return run_rule_with_mocks(
        publish_rules.hand_off_credentials,
        rule_args=[request, RunId(run_id)],
        mock_gets=[
            MockGet(EnvironmentVars, (EnvironmentVarsRequest,), lambda r: EnvironmentVars(values))
        ],
    ).path


def test_credentials_are_handed_off_in_a_private_file_removed_by_the_next_run(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(publish_rules, "_handoffs", {})
    assert hand_off(1, {}) is None
    values = {"STRATA_REGISTRY_USERNAME": "u", "STRATA_REGISTRY_PASSWORD": "secret"}
    first = hand_off(1, values)
    other = publish_rules._CredentialsHandoffRequest(ADDRESS, "localhost:5001")
    second = hand_off(1, values, other)
    assert first != second and os.path.dirname(first) == str(tmp_path)
    for path in (first, second):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert json.loads(open(path).read()) == values
    os.unlink(first)  # read by its push
    # A later run's hand-off deletes what no push of an earlier run read.
    third = hand_off(2, values)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(third)]
    publish_rules._remove_handoffs()  # at exit
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "options, named",
    [
        ({"registry_stall_bytes": 0, "registry_stall_seconds": 60.0}, "registry_stall_bytes"),
        ({"registry_stall_bytes": 1, "registry_stall_seconds": 0.0}, "registry_stall_seconds"),
        ({"registry_stall_bytes": 1, "registry_stall_seconds": float("inf")}, "_seconds"),
    ],
)
def test_the_stall_rule_options_must_be_positive(options, named) -> None:
    with pytest.raises(OptionsError, match=rf"\[strata\]\.\w*{named} must be"):
        create_subsystem(StrataSubsystem, **options).registry_stall_args()
