"""The Pants shell, in-process: closure projection, layering, customisation and input errors.

Processes (the layer and assembly tool) run for real; the output is read back with `tarfile`,
from the blob store the packaged image links to (`[strata].dist` `link`, the default), or as
the packaged file (`copy`).
"""

import hashlib
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from textwrap import dedent

import pytest
from pants.core.goals import package
from pants.core.goals.package import BuiltPackage
from pants.core.target_types import (
    ArchiveTarget,
    FileSourceField,
    FilesGeneratorTarget,
    GenericTarget,
    FileTarget,
    ResourcesGeneratorTarget,
    ResourceTarget,
)
from pants.core.target_types import rules as core_target_type_rules
from pants.core.util_rules import archive, source_files, stripped_source_files, system_binaries
from pants.engine.addresses import Address
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    FileContent,
    FileEntry,
    SymlinkEntry,
)
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import Get, MultiGet, rule
from pants.engine.target import (
    DescriptionField,
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
    Tags,
    Target,
)
from pants.engine.unions import UnionMembership, UnionRule
from pants.testutil.rule_runner import QueryRule, RuleRunner
from pants.util.dirutil import safe_mkdtemp

from pants.backend.python import register as python_backend
from pants.backend.python import target_types_rules as python_target_types_rules
from pants.backend.python.util_rules import pex_from_targets, python_sources

from strata import register
from strata_harness import assert_valid_image
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.nodes import StoreNode, StoreNodes, StoreNodesRequest
from strata.target_types.image import OciImageTarget
from strata.target_types.layer import OciLayerTarget


def set_options(runner: RuleRunner, *args: str) -> None:
    """The test's options: its named caches' directory (see make_rule_runner) with `args`."""
    runner.set_options(
        [f"--named-caches-dir={runner.named_caches}", "--source-root-patterns=['/src']", *args],
        env_inherit={"PATH"},
    )


def blob_store(runner: RuleRunner) -> str:
    """The blob store: `[strata].blob_store`'s default, the named cache `strata_blobs`."""
    return os.path.join(runner.named_caches, "strata_blobs")


def make_rule_runner(*extra_rules) -> RuleRunner:
    # Named caches (the blob store's among them) of the test's own, removed at exit. A
    # bootstrap option, which the engine reads once, here (where it mounts named caches), and
    # the rules on each `set_options` (where the blob store is): both must say the same.
    caches = safe_mkdtemp(prefix="strata-named-caches-")
    runner = RuleRunner(
        bootstrap_args=[f"--named-caches-dir={caches}"],
        rules=[
            *extra_rules,
            *register.rules(),
            # What `python_venv` nodes need (a Strata repo enables the Python backend).
            *pex_from_targets.rules(),
            *python_sources.rules(),
            *python_target_types_rules.rules(),
            *package.rules(),
            *core_target_type_rules(),
            *source_files.rules(),
            *stripped_source_files.rules(),
            *system_binaries.rules(),
            QueryRule(BuiltPackage, [OciImageFieldSet]),
            QueryRule(DigestContents, [Digest]),
            QueryRule(DigestEntries, [Digest]),
            *archive.rules(),
        ],
        target_types=[
            ArchiveTarget,
            OciImageTarget,
            OciLayerTarget,
            FileTarget,
            FilesGeneratorTarget,
            ResourceTarget,
            ResourcesGeneratorTarget,
            GenericTarget,
            *python_backend.target_types(),
        ],
    )
    runner.named_caches = caches  # type: ignore[attr-defined]
    set_options(runner)
    return runner


@pytest.fixture
def rule_runner() -> RuleRunner:
    return make_rule_runner()


def build(rule_runner: RuleRunner, spec: str) -> BuiltPackage:
    path, name = spec.lstrip("/").split(":")
    target = rule_runner.get_target(Address(path, target_name=name))
    return rule_runner.request(BuiltPackage, [OciImageFieldSet.create(target)])


def image_file(rule_runner: RuleRunner, built: BuiltPackage) -> FileContent:
    """The image archive of a package (beside it, its SBOM's documents): a symlink to its blob
    in the blob store (`[strata].dist` `link`), whose bytes are those the blob's name says,
    or the file itself (`copy`)."""
    path = built.artifacts[0].relpath
    (entry,) = [e for e in rule_runner.request(DigestEntries, [built.digest]) if e.path == path]
    if isinstance(entry, FileEntry):
        contents = rule_runner.request(DigestContents, [built.digest])
        return next(c for c in contents if c.path == path)
    assert isinstance(entry, SymlinkEntry)
    store = os.path.join(blob_store(rule_runner), "sha256")
    assert os.path.dirname(entry.target) == store
    with open(entry.target, "rb") as f:
        data = f.read()
    assert hashlib.sha256(data).hexdigest() == os.path.basename(entry.target)
    return FileContent(path, data)


def read_image(rule_runner: RuleRunner, built: BuiltPackage):
    """(config, [(layer comment, {path: (type, mode, data or linkname)})]) of a docker-archive,
    after the strict check."""
    archive = image_file(rule_runner, built)
    with tempfile.TemporaryDirectory(prefix="strata-image-test-") as tmp:
        path = os.path.join(tmp, "image.tar")
        with open(path, "wb") as f:
            f.write(archive.content)
        assert_valid_image(path, "docker-archive")
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        layers = []
        comments = [h.get("comment", "") for h in config["history"]]
        for comment, name in zip(comments, manifest["Layers"]):
            entries = {}
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                for member in layer.getmembers():
                    if member.isfile():
                        entries[member.name] = ("file", member.mode, layer.extractfile(member).read())
                    elif member.issym():
                        entries[member.name] = ("symlink", member.mode, member.linkname)
                    else:
                        entries[member.name.rstrip("/")] = ("dir", member.mode, None)
            layers.append((comment, entries))
    return config, layers


def files_of(layer):
    return sorted(p for p, (kind, _, _) in layer[1].items() if kind != "dir")


def test_popular_nodes_sink_to_the_bottom_and_each_gets_a_layer(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "lib/libc.so": "libc",
            "lib/libssl.so": "libssl",
            "bin/curl": "curl",
            "bin/openssl": "openssl",
            "BUILD": dedent(
                """\
                file(name="libc", source="lib/libc.so")
                file(name="libssl", source="lib/libssl.so", dependencies=[":libc"])
                file(name="curl", source="bin/curl", dependencies=[":libssl", ":libc"])
                file(name="openssl", source="bin/openssl", dependencies=[":libssl"])
                oci_image(name="image", dependencies=[":curl", ":openssl"],
                          entrypoint=["/bin/curl"])
                """
            ),
        }
    )
    os.chmod(os.path.join(rule_runner.build_root, "bin/curl"), 0o755)  # the entrypoint
    config, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    assert [files_of(layer) for layer in layers] == [
        ["lib/libc.so"],
        ["lib/libssl.so"],
        ["bin/curl"],
        ["bin/openssl"],
    ]
    assert [comment for comment, _ in layers] == ["//:libc", "//:libssl", "//:curl", "//:openssl"]
    assert config["config"] == {"Entrypoint": ["/bin/curl"]}
    assert len(config["rootfs"]["diff_ids"]) == 4


def test_least_popular_nodes_share_the_last_layer(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            **{f"f{i}.txt": str(i) for i in range(5)},
            "BUILD": dedent(
                """\
                file(name="f0", source="f0.txt")
                file(name="f1", source="f1.txt", dependencies=[":f0"])
                file(name="f2", source="f2.txt", dependencies=[":f0"])
                file(name="f3", source="f3.txt", dependencies=[":f1"])
                file(name="f4", source="f4.txt")
                oci_image(name="image", dependencies=[":f2", ":f3", ":f4"], max_layers=4,
                          directories={"/tmp": "1777"}, symlinks={"/bin/zero": "/f0.txt"})
                """
            ),
        }
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    # Budget: 4 layers - 1 customisation layer = 3; f0 (3) and f1 (2) get their own layers.
    assert [files_of(layer) for layer in layers[:3]] == [
        ["f0.txt"],
        ["f1.txt"],
        ["f2.txt", "f3.txt", "f4.txt"],
    ]
    comment, custom = layers[3]
    assert comment == "customisation layer"
    assert custom["tmp"] == ("dir", 0o1777, None)
    assert custom["bin/zero"] == ("symlink", 0o777, "/f0.txt")


def test_one_layer_holds_all_content_and_the_customisation(rule_runner: RuleRunner) -> None:
    """`max_layers=1`, or one layer more than the base's, is dockerTools' `buildImage`."""
    rule_runner.write_files(
        {
            **{f"f{i}.txt": str(i) for i in range(3)},
            "BUILD": dedent(
                """\
                file(name="f0", source="f0.txt")
                file(name="f1", source="f1.txt", dependencies=[":f0"])
                file(name="f2", source="f2.txt", dependencies=[":f0"])
                oci_image(name="single", dependencies=[":f1", ":f2"], max_layers=1,
                          directories={"/tmp": "1777"}, symlinks={"/bin/zero": "/f0.txt"})
                oci_image(name="base", dependencies=[":f0"], directories={"/srv": "0750"})
                oci_image(name="on-base", base=":base", dependencies=[":f1", ":f2"],
                          max_layers=3, symlinks={"/bin/one": "/f1.txt"})
                oci_image(name="too-few", base=":base", dependencies=[":f1"], max_layers=2)
                oci_image(name="no-room-for-sbom", base=":base", dependencies=[":f1"],
                          max_layers=3, embed_sbom=True)
                oci_image(name="with-sbom", base=":base", dependencies=[":f1"],
                          max_layers=4, embed_sbom=True)
                oci_layer(name="locked", dependencies=[":f0"],
                          permissions={"/f0.txt": {"mode": "0600"}})
                oci_image(name="single-locked", dependencies=[":locked"], max_layers=1,
                          directories={"/tmp": "1777"})
                oci_image(name="both-locked", dependencies=[":locked"], max_layers=1,
                          directories={"/tmp": "1777"}, permissions={"/tmp": {"uid": 7}})
                """
            ),
        }
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:single"))
    ((comment, only),) = layers
    assert comment == "//:f0, //:f1, //:f2, customisation"
    assert files_of(layers[0]) == ["bin/zero", "f0.txt", "f1.txt", "f2.txt"]
    assert only["tmp"] == ("dir", 0o1777, None)
    assert only["bin/zero"] == ("symlink", 0o777, "/f0.txt")

    _, layers = read_image(rule_runner, build(rule_runner, "//:on-base"))
    # The base's two layers (f0, then /srv), and one of the image's own closure with /bin/one.
    assert [files_of(layer) for layer in layers] == [
        ["f0.txt"], [], ["bin/one", "f0.txt", "f1.txt", "f2.txt"]
    ]
    with pytest.raises(ExecutionError) as e:
        build(rule_runner, "//:too-few")
    assert "The `max_layers` field of //:too-few is 2, but its base has 2 layers" in str(e.value)
    # `embed_sbom` takes a layer of its own, on top, describing those below.
    with pytest.raises(ExecutionError) as e:
        build(rule_runner, "//:no-room-for-sbom")
    assert (
        "The `max_layers` field of //:no-room-for-sbom is 3, but its base has 2 layers and "
        "`embed_sbom` takes one: raise `max_layers`"
    ) in str(e.value)
    _, layers = read_image(rule_runner, build(rule_runner, "//:with-sbom"))
    assert [files_of(layer) for layer in layers][2:] == [
        ["f0.txt", "f1.txt"], ["usr/share/sbom/image.cdx.json", "usr/share/sbom/image.spdx.json"]
    ]
    embedded = json.loads(layers[-1][1]["usr/share/sbom/image.spdx.json"][2])
    assert {p["name"] for p in embedded["packages"]} >= {"//:f1", "base", "with-sbom layer 0"}

    # An `oci_layer`'s permissions still apply when the customisation content joins its layer.
    _, layers = read_image(rule_runner, build(rule_runner, "//:single-locked"))
    ((_, only),) = layers
    assert (only["f0.txt"][1], only["tmp"][1]) == (0o600, 0o1777)
    with pytest.raises(ExecutionError) as e:
        build(rule_runner, "//:both-locked")
    assert "the `permissions` of //:locked and of //:both-locked would apply" in str(e.value)


def test_files_generators_are_one_node_and_resources_are_source_root_stripped(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.write_files(
        {
            "web/static/a.css": "a",
            "web/static/b.css": "b",
            "src/app/data.json": "{}",
            "web/BUILD": 'files(name="static", sources=["static/*.css"])',
            "src/app/BUILD": 'resources(name="data", sources=["data.json"])',
            "BUILD": 'oci_image(name="image", dependencies=["web:static", "src/app:data"])',
        }
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    assert sorted(files_of(layer) for layer in layers) == [
        ["app/data.json"],
        ["web/static/a.css", "web/static/b.css"],
    ]


def test_oci_layer_pins_its_closure_into_one_layer(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "a.txt": "a",
            "b.txt": "b",
            "c.txt": "c",
            "BUILD": dedent(
                """\
                file(name="a", source="a.txt")
                file(name="b", source="b.txt", dependencies=[":a"])
                file(name="c", source="c.txt")
                oci_layer(name="ab", dependencies=[":b"])
                oci_image(name="image", dependencies=[":ab", ":c"])
                """
            ),
        }
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    assert sorted((layer[0], files_of(layer)) for layer in layers) == [
        ("//:ab", ["a.txt", "b.txt"]),
        ("//:c", ["c.txt"]),
    ]


def test_metadata_targets_pass_references_through(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "a.txt": "a",
            "b.txt": "b",
            "BUILD": dedent(
                """\
                file(name="a", source="a.txt")
                target(name="group", dependencies=[":a"])
                file(name="b", source="b.txt", dependencies=[":group"])
                oci_image(name="image", dependencies=[":b"])
                """
            ),
        }
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    assert [comment for comment, _ in layers] == ["//:a", "//:b"]


@dataclass(frozen=True)
class ConfigFieldSet(FieldSet):
    required_fields = (FileSourceField,)
    source: FileSourceField


class InferFromConfigs(InferDependenciesRequest):
    infer_from = ConfigFieldSet


@rule
async def infer_schema_of_configs(request: InferFromConfigs) -> InferredDependencies:
    """A plugin's inference on `file` targets: each `*.conf` file needs //:schema."""
    if request.field_set.source.value.endswith(".conf"):
        return InferredDependencies([Address("", target_name="schema")])
    return InferredDependencies([])


def test_dependencies_inferred_for_file_targets_are_followed() -> None:
    rule_runner = make_rule_runner(
        infer_schema_of_configs, UnionRule(InferDependenciesRequest, InferFromConfigs)
    )
    rule_runner.write_files(
        {
            "app.conf": "conf",
            "schema.txt": "schema",
            "BUILD": dedent(
                """\
                file(name="conf", source="app.conf")
                file(name="schema", source="schema.txt")
                oci_image(name="image", dependencies=[":conf"])
                """
            ),
        }
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    assert [(layer[0], files_of(layer)) for layer in layers] == [
        ("//:schema", ["schema.txt"]),
        ("//:conf", ["app.conf"]),
    ]


class MotdNodesRequest(StoreNodesRequest):
    """A plugin's kind of store node: a `target` tagged `motd` becomes /etc/motd."""

    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        return isinstance(target, GenericTarget) and "motd" in (target[Tags].value or ())


@rule
async def motd_nodes(request: MotdNodesRequest) -> StoreNodes:
    digests = await MultiGet(
        Get(Digest, CreateDigest([FileContent("etc/motd", tgt[DescriptionField].value.encode())]))
        for _, tgt in request.members
    )
    return StoreNodes(
        tuple(StoreNode(key, digest, ()) for (key, _), digest in zip(request.members, digests))
    )


class ConfigNodesRequest(StoreNodesRequest):
    """A plugin's kind that also claims `file` targets."""

    @classmethod
    def is_applicable(cls, target: Target, union_membership: UnionMembership) -> bool:
        return target.has_field(FileSourceField)


@rule
async def config_nodes(request: ConfigNodesRequest) -> StoreNodes:
    return StoreNodes(())


def test_a_plugin_adds_a_kind_of_store_node_with_one_rule_and_a_union_rule() -> None:
    rule_runner = make_rule_runner(motd_nodes, UnionRule(StoreNodesRequest, MotdNodesRequest))
    rule_runner.write_files(
        {
            "a.txt": "a",
            "BUILD": dedent(
                """\
                target(name="motd", tags=["motd"], description="Welcome")
                file(name="a", source="a.txt", dependencies=[":motd"])
                oci_image(name="image", dependencies=[":a"])
                """
            ),
        }
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    assert [(layer[0], files_of(layer)) for layer in layers] == [
        ("//:motd", ["etc/motd"]),  # referenced by //:a, so more popular
        ("//:a", ["a.txt"]),
    ]
    assert layers[0][1]["etc/motd"][2] == b"Welcome"


def test_a_target_of_two_kinds_is_an_error_naming_both() -> None:
    rule_runner = make_rule_runner(config_nodes, UnionRule(StoreNodesRequest, ConfigNodesRequest))
    assert_build_error(
        rule_runner,
        {
            "a.txt": "a",
            "BUILD": 'file(name="a", source="a.txt")\noci_image(name="image", dependencies=[":a"])',
        },
        "//:a is of several store-node kinds",
        "ConfigNodesRequest",
        "FileNodesRequest",
    )


def test_same_inputs_same_bytes(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"x.txt": "x", "BUILD": 'file(name="x", source="x.txt")\noci_image(name="image", dependencies=[":x"])'}
    )
    first = image_file(rule_runner, build(rule_runner, "//:image"))
    rule_runner.write_files({"x.txt": "x"})
    second = image_file(rule_runner, build(rule_runner, "//:image"))
    assert first.content == second.content
    # The same bytes, as a file of its own.
    set_options(rule_runner, "--strata-dist=copy")
    copied = build(rule_runner, "//:image")
    assert [type(e) for e in rule_runner.request(DigestEntries, [copied.digest])
            if e.path == copied.artifacts[0].relpath] == [FileEntry]
    assert image_file(rule_runner, copied) == first


def assert_build_error(rule_runner: RuleRunner, files: dict, *fragments: str) -> None:
    rule_runner.write_files(files)
    with pytest.raises(ExecutionError) as error:
        build(rule_runner, "//:image")
    for fragment in fragments:
        assert fragment in str(error.value)


def test_conflicting_paths_name_both_targets_and_the_path(rule_runner: RuleRunner) -> None:
    assert_build_error(
        rule_runner,
        {
            "etc/motd": "from a file",
            "src/etc/motd": "from a resource",
            "BUILD": dedent(
                """\
                file(name="motd_file", source="etc/motd")
                resource(name="motd_resource", source="src/etc/motd")
                oci_image(name="image", dependencies=[":motd_file", ":motd_resource"])
                """
            ),
        },
        "//:motd_file",
        "//:motd_resource",
        "/etc/motd",
    )


def test_an_image_without_content_is_an_error(rule_runner: RuleRunner) -> None:
    assert_build_error(
        rule_runner,
        {"BUILD": 'target(name="meta")\noci_image(name="image", dependencies=[":meta"])'},
        "//:image",
        "produce no content",
    )


@pytest.mark.parametrize(
    "fields, fragments",
    [
        ("max_layers=0", ["max_layers", "at least 1"]),
        ('repository="Not/Valid"', ["repository", "//:image"]),
        ('tag="-bad"', ["'tag'", "//:image"]),
        ('created="yesterday"', ["'created'", "//:image"]),
        ('directories={"/tmp": "17777"}', ["'directories'", "octal"]),
        ('symlinks={"/../etc/x": "/y"}', ["'symlinks'", ".."]),
        ('output_format="zip"', ["output_format", "zip"]),
        ('compression="lz4"', ["compression", "lz4"]),
        ('exposed_ports=["http"]', ["exposed_ports", "http"]),
        ('exposed_ports=["99999"]', ["'exposed_ports'", "//:image", "'99999'", "1 to 65535"]),
        ('exposed_ports=["0/udp"]', ["'exposed_ports'", "'0/udp'"]),
        ('exposed_ports=["80/icmp"]', ["'exposed_ports'", "'80/icmp'"]),
        ('env={"A=B": "x"}', ["'env'", "//:image", "'A=B'", "no `=`"]),
        ('env={"": "x"}', ["'env'", "//:image", "''", "non-empty"]),
        ('healthcheck={"test": ["CMD"]}', ["'healthcheck'", "//:image", "`test`", "['CMD']"]),
        ('healthcheck={"test": ["CMD", "x"], "interval": "30"}',
         ["'healthcheck'", "//:image", "`interval` '30'", "`1m30s`"]),
        ('healthcheck={"test": ["CMD", "x"], "timeout": "10us"}', ["`timeout` '10us'", "1ms"]),
        ('healthcheck={"test": ["CMD", "x"], "retries": 0}', ["'healthcheck'", "`retries` 0"]),
        ('healthcheck={"test": ["NONE"], "retries": 3}', ["'healthcheck'", "no other key"]),
        ('healthcheck={"test": ["CMD", "x"], "every": "1s"}', ["'healthcheck'", "['every']"]),
    ],
)
def test_invalid_fields_name_the_target_and_field(
    rule_runner: RuleRunner, fields: str, fragments: list
) -> None:
    assert_build_error(
        rule_runner,
        {
            "x.txt": "x",
            "BUILD": f'file(name="x", source="x.txt")\noci_image(name="image", dependencies=[":x"], {fields})',
        },
        *fragments,
    )


def test_fractional_seconds_and_separate_mtime(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "x.txt": "x",
            "BUILD": dedent(
                """\
                file(name="x", source="x.txt")
                oci_image(name="image", dependencies=[":x"],
                          created="2024-01-01T00:00:00.5Z", mtime="2000-01-01T00:00:10Z")
                """
            ),
        }
    )
    config, _ = read_image(rule_runner, build(rule_runner, "//:image"))
    assert config["created"] == "2024-01-01T00:00:00.5Z"
    built = build(rule_runner, "//:image")
    archive = image_file(rule_runner, built)
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        with tarfile.open(fileobj=outer.extractfile(manifest["Layers"][0])) as layer:
            assert {m.mtime for m in layer.getmembers()} == {946684810}


# Pants hardlinks files of 512 KiB (524,288 bytes) or more into sandboxes from its immutable
# store, where every file is mode 0555: modes must come from the Digest, never from `stat`.
LARGE_FILE_SIZES = (524_287, 524_288, 3_000_000)


def test_file_modes_follow_the_executable_bit_at_every_size(rule_runner: RuleRunner) -> None:
    files = {}
    for size in LARGE_FILE_SIZES:
        for kind in ("data", "tool"):
            files[f"{kind}/{size}"] = f"{kind} {size}".ljust(size, ".")
    rule_runner.write_files(
        {
            **files,
            "BUILD": dedent(
                """\
                files(name="data", sources=["data/*"])
                files(name="tools", sources=["tool/*"])
                archive(name="bundle", format="tar", files=[":data"])
                oci_image(name="image", dependencies=[":data", ":tools", ":bundle"])
                """
            ),
        }
    )
    for size in LARGE_FILE_SIZES:
        os.chmod(os.path.join(rule_runner.build_root, f"tool/{size}"), 0o755)
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    modes = {
        path: mode for _, entries in layers for path, (kind, mode, _) in entries.items()
        if kind == "file"
    }
    assert modes == {
        **{f"data/{size}": 0o644 for size in LARGE_FILE_SIZES},
        **{f"tool/{size}": 0o755 for size in LARGE_FILE_SIZES},
        "bundle.tar": 0o644,  # a package: about 3.5 MB
    }


MOTD_BUILD = 'file(name="motd", source="etc/motd")\noci_image(name="image", dependencies=[":motd"], {})'


@pytest.mark.parametrize(
    "fields, fragments",
    [
        ('symlinks={"/etc/motd": "/etc/issue"}',
         ["the `symlinks` field of //:image", "//:motd", "/etc/motd"]),
        ('directories={"/etc/motd": "0755"}',
         ["//:motd places a file at /etc/motd", "the `directories` field of //:image"]),
        ('symlinks={"/etc": "/usr/etc"}',
         ["the `symlinks` field of //:image places a symlink at /etc", "//:motd"]),
        ('symlinks={"/etc/motd/x": "/y"}',
         ["//:motd places a file at /etc/motd", "the `symlinks` field of //:image"]),
    ],
)
def test_the_customisation_layer_may_not_replace_a_dependencys_files(
    rule_runner: RuleRunner, fields: str, fragments: list
) -> None:
    assert_build_error(
        rule_runner, {"etc/motd": "hi", "BUILD": MOTD_BUILD.format(fields)}, *fragments
    )


def test_fake_nss_may_not_replace_a_dependencys_passwd(rule_runner: RuleRunner) -> None:
    assert_build_error(
        rule_runner,
        {
            "etc/passwd": "root:x:0:0::/:/bin/sh\n",
            "BUILD": 'file(name="passwd", source="etc/passwd")\n'
            'oci_image(name="image", dependencies=[":passwd"], fake_nss=True)',
        },
        "//:passwd", "the `fake_nss` field of //:image", "/etc/passwd",
    )


def test_the_customisation_layer_may_restate_a_dependencys_directory(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.write_files(
        {"etc/motd": "hi", "BUILD": MOTD_BUILD.format('directories={"/etc": "0700"}')}
    )
    _, layers = read_image(rule_runner, build(rule_runner, "//:image"))
    assert layers[-1] == ("customisation layer", {"etc": ("dir", 0o700, None)})


def test_edge_values_of_env_and_exposed_ports_are_kept(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "x.txt": "x",
            "BUILD": 'file(name="x", source="x.txt")\n'
            'oci_image(name="image", dependencies=[":x"], env={"A": "B=C", "_": ""}, '
            'exposed_ports=["1", "65535/sctp"])',
        }
    )
    config, _ = read_image(rule_runner, build(rule_runner, "//:image"))
    assert config["config"]["Env"] == ["A=B=C", "_="]
    assert config["config"]["ExposedPorts"] == {"1/tcp": {}, "65535/sctp": {}}


HEALTHCHECK = (
    'healthcheck={"test": ["CMD", "/bin/check", "--quick"], "interval": "1m30s", '
    '"timeout": "500ms", "start_period": "1.5s", "retries": 2}'
)
# As a Dockerfile's HEALTHCHECK writes it: durations in nanoseconds.
DOCKER_HEALTHCHECK = {
    "Test": ["CMD", "/bin/check", "--quick"],
    "Interval": 90_000_000_000,
    "Timeout": 500_000_000,
    "StartPeriod": 1_500_000_000,
    "Retries": 2,
}


def test_a_healthcheck_is_written_as_docker_writes_it_and_docker_reads_it(
    rule_runner: RuleRunner, dockerd, tmp_path
) -> None:
    rule_runner.write_files(
        {
            "x.txt": "x",
            "BUILD": 'file(name="x", source="x.txt")\n'
            'oci_image(name="image", dependencies=[":x"], repository="strata-test/health", '
            f'tag="v1", {HEALTHCHECK})',
        }
    )
    built = build(rule_runner, "//:image")
    config, _ = read_image(rule_runner, built)
    assert config["config"] == {"Healthcheck": DOCKER_HEALTHCHECK}
    archive = tmp_path / "image.tar"
    archive.write_bytes(image_file(rule_runner, built).content)
    dockerd("load", "--input", str(archive))
    inspected = dockerd(
        "inspect", "--format", "{{json .Config.Healthcheck}}", "strata-test/health:v1"
    )
    assert json.loads(inspected.stdout) == DOCKER_HEALTHCHECK


def test_a_healthcheck_is_inherited_from_a_base_unless_replaced(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "x.txt": "x",
            "BUILD": dedent(
                f"""\
                file(name="x", source="x.txt")
                oci_image(name="base", dependencies=[":x"], {HEALTHCHECK})
                oci_image(name="image", base=":base", env={{"A": "1"}})
                oci_image(name="off", base=":base", healthcheck={{"test": ["NONE"]}})
                """
            ),
        }
    )
    inherited, _ = read_image(rule_runner, build(rule_runner, "//:image"))
    assert inherited["config"] == {"Env": ["A=1"], "Healthcheck": DOCKER_HEALTHCHECK}
    off, _ = read_image(rule_runner, build(rule_runner, "//:off"))
    assert off["config"] == {"Healthcheck": {"Test": ["NONE"]}}
