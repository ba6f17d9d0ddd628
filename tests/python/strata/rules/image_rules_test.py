"""The shell's decisions in rules/image/ and rules/goals/ (package, run), with the engine mocked
(run_rule_with_mocks): which Process each archive format gets (writing into the blob store, or
real files), how an OCI layout is composed without one (symlinks into the blob store), what the
image spec says, what `run` executes. The integration tests (image_test.py,
base_integration_test.py) run the same rules for real."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import re
from types import SimpleNamespace

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import (
    EMPTY_DIGEST,
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
    SymlinkEntry,
)
from pants.engine.process import (
    FallibleProcessResult,
    Process,
    ProcessCacheScope,
    ProcessResult,
    ProductDescription,
)
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionMembership
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks
from pants.util.frozendict import FrozenDict

from strata.rules.base import BaseImage
from strata.rules.blobs import BlobStoreLocation, EnsureBlobs, EnsuredBlobs, StoredBlob
from strata.rules.closure import ImageClosure, ImageClosureRequest, InvalidImageContent
from strata.rules.commands import BuildCommands, CommandsRequest
from strata.core.oci.descriptor import image_descriptor
from strata.core.oci.formats import assemble, load_image
from strata.core.oci.image import digest_hex
from strata.core.graph.image_files import PathEntry
from strata.core.build.parts.venvs import Venv
from strata.core.oci.spec import ImageSpec, LayerRef
from strata.rules.goals.package_image import PlaceSbom
from strata.rules.goals.run_image import run_oci_image
from strata.rules.image.assembly import (
    AssembledImage,
    AssembleRequest,
    Blobs,
    ImageInputs,
    LayoutRequest,
    assemble_image,
    blobs_as,
    compose_oci_layout,
)
from strata.rules.image.bases import BaseRequest
from strata.rules.image.customisation import (
    ImageCustomisation,
    ImageCustomisationRequest,
    image_customisation,
)
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.image.prepare import prepare_image
from strata.rules.image.programs import LayerPaths, LayerPathsRequest
from strata.rules.layers import BuiltLayer, BuiltLayers, FilesLayerRequest, LayersRequest
from strata.rules.nix.closure import NixDbRequest
from strata.rules.nodes import Customisation, CustomisationRequest, RootLink, StoreNode
from strata.rules.debian.kind import (
    DebianCustomisationRequest,
    DebianPackage,
    debian_customisation,
)
from strata.rules.nix.kind import NixCustomisationRequest, nix_customisation
from strata.rules.python.venv import (
    PythonPart,
    PythonVenvCustomisationRequest,
    python_venv_customisation,
)
from strata.rules.sbom import Sbom, SbomRequest, SbomSources
from strata.rules.processes import Execution, OnThisMachine
from strata.rules.tool import (
    BinaryOnThisMachine,
    FoundOnThisMachine,
    ImageTool,
    Interpreter,
    ZstdBinary,
    ZstdBinaryRequest,
)
from strata.subsystems import StrataSubsystem
from strata.target_types.image import OciImageTarget

ADDRESS = Address("app", target_name="image")
PYTHON_VERSION = "3.11.2 (main) [GCC]"
TOOL = ImageTool(
    Digest("1" * 64, 1), Digest("2" * 64, 1), Interpreter("/usr/bin/python3", PYTHON_VERSION)
)
CORE = ("/usr/bin/python3", "-E", "-s", "-S", "-B", "-X", f"strata_python={PYTHON_VERSION}", "-m",
        "strata.core")
INPUTS = Digest("3" * 64, 3)
CONTENT = Digest("9" * 64, 9)
SBOM_SOURCES = SbomSources((), (), None, "1970-01-01T00:00:01Z", FrozenDict())
STORE = BlobStoreLocation("/blobs", "strata_blobs")


def stored(data: bytes, what: str = "a layer") -> StoredBlob:
    """The descriptor of a blob of `data` in the blob store, as a layer Process reports it."""
    return StoredBlob(
        "sha256:" + hashlib.sha256(data).hexdigest(), len(data), what,
        Process(argv=("emit", what), description=f"{what}: its bytes"), "out/layer.tar.gz",
        (1, 2, 3, 4, 5),
    )


LAYER_BLOB = stored(b"layer", "the layer of //app:bin")
INPUTS_OF_ANY_IMAGE = ImageInputs(INPUTS, CONTENT, True, SBOM_SOURCES, (LAYER_BLOB,), STORE.path)
OUTPUT = Digest("4" * 64, 4)


def image(**fields) -> OciImageTarget:
    return OciImageTarget({"dependencies": [":bin"], **fields}, ADDRESS)


def strata(**options) -> StrataSubsystem:
    return create_subsystem(
        StrataSubsystem,
        **{"remote_cache_speculation_delay": 0, "loader": "auto", "load_only": False,
           "run_args": [], "dist": "link", "blob_store": "", **options},
    )


def unexpected(request):
    pytest.fail(f"unexpected request: {request!r}")


ARCHIVE = {"digest": "sha256:" + "c" * 64, "size": 1234, "stamp": [7, 8, 9, 10, 11]}


def assembled_by_process(fmt, output, reproducible, blobs, dist, execution=Execution(False)):
    """assemble_image for an image the `assemble` Process writes: what it returned, the
    Processes it ran, the digest subsets and digests it made, and the blobs it ensured."""
    seen = {"processes": [], "subsets": [], "created": [], "ensured": [], "unprefixed": []}

    def run(process: Process) -> SimpleNamespace:
        seen["processes"].append(process)
        return SimpleNamespace(output_digest=OUTPUT)

    def subset(request: DigestSubset) -> Digest:
        seen["subsets"].append(request.globs.globs)
        return Digest("5" * 64, 5)

    def create(request: CreateDigest) -> Digest:
        seen["created"].extend(request)
        return Digest("6" * 64, 6)

    def ensure(request: EnsureBlobs) -> EnsuredBlobs:
        seen["ensured"].append(request.blobs)
        return EnsuredBlobs(())

    def unprefix(request: RemovePrefix) -> Digest:
        seen["unprefixed"].append(request)
        return Digest("7" * 64, 7)

    def metadata(request: DigestSubset) -> DigestContents:
        assert request.digest == OUTPUT and request.globs.globs == ("image.json",)
        # The metadata of an archive written into the blob store describes the archive's blob.
        written_out = "--out" in seen["processes"][-1].argv
        meta = {"layers": []} if written_out else {"layers": [], "archive": ARCHIVE}
        return DigestContents([FileContent("image.json", json.dumps(meta).encode())])

    request = AssembleRequest(OciImageFieldSet.create(image()), fmt, output, blobs=blobs)
    inputs = dataclasses.replace(INPUTS_OF_ANY_IMAGE, reproducible=reproducible)
    result = run_rule_with_mocks(
        assemble_image,
        rule_args=[request, TOOL, strata(remote_cache_speculation_delay=7, dist=dist), STORE,
                   execution],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), lambda r: inputs),
            MockGet(AssembledImage, (LayoutRequest,), unexpected),
            MockGet(DigestEntries, (Digest,), unexpected),  # the image is not read here
            MockGet(EnsuredBlobs, (EnsureBlobs,), ensure),
            MockGet(ProcessResult, (Process,), run),
            MockGet(Digest, (DigestSubset,), subset),
            MockGet(DigestContents, (DigestSubset,), metadata),
            MockGet(Digest, (CreateDigest,), create),
            MockGet(Digest, (RemovePrefix,), unprefix),
        ],
    )
    return result, seen


def assert_assemble_process(
    process, argv, output_files, output_directories, reproducible, *, remote=False
):
    assert process.argv == (*CORE, "assemble", "--spec", "image-spec.json", *argv)
    assert process.input_digest == INPUTS
    assert set(process.output_files) == set(output_files)
    assert process.output_directories == output_directories
    # It reads the layers' blobs from the blob store; a remote worker has none (its inputs
    # hold the blobs).
    assert process.append_only_caches == (
        FrozenDict() if remote else FrozenDict({"strata_blobs": ".strata-blobs"})
    )
    # A build with a "now" timestamp is redone in each session, never cached.
    assert process.cache_scope == (
        ProcessCacheScope.SUCCESSFUL if reproducible else ProcessCacheScope.PER_SESSION
    )
    assert process.remote_cache_speculation_delay_millis == 7


ARCHIVES = [("docker-archive", "app/image.tar"), ("oci-archive", "app/image.tar"),
            ("rootfs", "app/rootfs.tar")]


@pytest.mark.parametrize("fmt, output", ARCHIVES)
@pytest.mark.parametrize("reproducible", [True, False])
@pytest.mark.parametrize(
    "blobs, dist, target",
    [
        # `[strata].dist` decides unless the request does.
        (None, "link", "/blobs/sha256/" + "c" * 64),
        (Blobs.LINK, "copy", "/blobs/sha256/" + "c" * 64),
        # For a Process that has the store at .strata-blobs, relative to the archive's directory.
        (Blobs.SANDBOX, "link", "../.strata-blobs/sha256/" + "c" * 64),
    ],
)
def test_an_archive_is_written_into_the_blob_store_and_linked(
    fmt, output, reproducible, blobs, dist, target
) -> None:
    """The `assemble` Process writes the archive into the blob store (no `--out`, no output
    but its metadata); the output is a symlink to the blob, which is ensured, its `emit` the
    same Process writing the archive as a file."""
    assembled, seen = assembled_by_process(fmt, output, reproducible, blobs, dist)
    (process,) = seen["processes"]
    assert_assemble_process(
        process, ("--metadata", "image.json"), ("image.json",), (), reproducible
    )
    (inputs_blobs, (blob,)) = seen["ensured"]
    assert inputs_blobs == INPUTS_OF_ANY_IMAGE.blobs  # the blobs the Process reads, first
    assert (blob.digest, blob.size, blob.stamp) == (ARCHIVE["digest"], 1234, (7, 8, 9, 10, 11))
    assert blob.what == f"the {fmt} of app:image"
    # Written below an output directory of its own (some workers mount over `etc/`, ...).
    assert blob.emitted == f"out/{output}"
    assert blob.emit.description == "Assembling app:image: its bytes"  # named apart
    assert_assemble_process(
        blob.emit, ("--out", f"out/{output}", "--metadata", "image.json"),
        (f"out/{output}", "image.json"), (), reproducible,
    )
    assert seen["created"] == [SymlinkEntry(output, target)]
    assert seen["subsets"] == seen["unprefixed"] == []
    # The archive's descriptor is the store's business, not the metadata's.
    assert assembled == AssembledImage(Digest("6" * 64, 6), {"layers": []})


@pytest.mark.parametrize(
    "fmt, output", [*ARCHIVES, ("oci", "app/image")]
)
@pytest.mark.parametrize("reproducible", [True, False])
@pytest.mark.parametrize("blobs, dist", [(None, "copy"), (Blobs.COPY, "link")])
def test_a_copied_image_is_written_as_files_by_the_assemble_process(
    fmt, output, reproducible, blobs, dist
) -> None:
    """With copies of the blobs, every format (an OCI layout too) is the `assemble` Process's
    files at `--out`, and no symlink."""
    assembled, seen = assembled_by_process(fmt, output, reproducible, blobs, dist)
    (process,) = seen["processes"]
    directory = fmt == "oci"
    written = f"out/{output}"  # below an output directory of its own, then moved up
    assert_assemble_process(
        process, ("--out", written, "--metadata", "image.json"),
        ("image.json",) if directory else (written, "image.json"),
        (written,) if directory else (), reproducible,
    )
    assert seen["ensured"] == [INPUTS_OF_ANY_IMAGE.blobs]
    assert seen["subsets"] == [(written, f"{written}/**")]
    assert seen["unprefixed"] == [RemovePrefix(Digest("5" * 64, 5), "out")]
    assert seen["created"] == []
    assert assembled == AssembledImage(Digest("7" * 64, 7), {"layers": []})


@pytest.mark.parametrize("fmt, output", ARCHIVES)
@pytest.mark.parametrize("blobs, dist", [
    (None, "link"), (None, "copy"), (Blobs.LINK, "link"), (Blobs.SANDBOX, "link"),
    (Blobs.COPY, "link"),
])
def test_under_remote_execution_an_archive_is_a_copy_written_with_no_blob_store(
    fmt, output, blobs, dist
) -> None:
    """A remote worker has no blob store: whatever `[strata].dist` or the request says, the
    `assemble` Process writes the archive as a file at `--out`, with no named cache, and the
    output is that file, not a symlink into the store."""
    assembled, seen = assembled_by_process(
        fmt, output, True, blobs, dist, execution=Execution(True)
    )
    (process,) = seen["processes"]
    written = f"out/{output}"
    assert_assemble_process(
        process, ("--out", written, "--metadata", "image.json"), (written, "image.json"), (),
        True, remote=True,
    )
    assert process.append_only_caches == FrozenDict()
    assert seen["ensured"] == [INPUTS_OF_ANY_IMAGE.blobs]  # no archive blob put in the store
    assert seen["subsets"] == [(written, f"{written}/**")]
    assert seen["unprefixed"] == [RemovePrefix(Digest("5" * 64, 5), "out")]
    assert seen["created"] == []  # no symlink
    assert assembled == AssembledImage(Digest("7" * 64, 7), {"layers": []})


@pytest.mark.parametrize("blobs, dist, layout", [
    (None, "link", Blobs.LINK), (Blobs.LINK, "copy", Blobs.LINK),
    (Blobs.SANDBOX, "link", Blobs.SANDBOX),
])
def test_under_remote_execution_an_oci_layout_is_still_composed(blobs, dist, layout) -> None:
    """An OCI layout is composed by digest operations here, as without remote execution."""
    layouts = []

    def compose(request: LayoutRequest) -> AssembledImage:
        layouts.append(request)
        return AssembledImage(OUTPUT, {"layers": []})

    request = AssembleRequest(OciImageFieldSet.create(image()), "oci", "dist/image", blobs=blobs)
    assembled = run_rule_with_mocks(
        assemble_image,
        rule_args=[request, TOOL, strata(dist=dist), STORE, Execution(True)],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), lambda r: INPUTS_OF_ANY_IMAGE),
            MockGet(AssembledImage, (LayoutRequest,), compose),
            MockGet(DigestEntries, (Digest,), unexpected),
            MockGet(EnsuredBlobs, (EnsureBlobs,), unexpected),
            MockGet(ProcessResult, (Process,), unexpected),
            MockGet(Digest, (DigestSubset,), unexpected),
            MockGet(DigestContents, (DigestSubset,), unexpected),
            MockGet(Digest, (CreateDigest,), unexpected),
            MockGet(Digest, (RemovePrefix,), unexpected),
        ],
    )
    assert layouts == [LayoutRequest(INPUTS_OF_ANY_IMAGE, "dist/image", layout)]
    assert assembled == AssembledImage(OUTPUT, {"layers": []})


@pytest.mark.parametrize("remote", [False, True])
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "rootfs", "oci"])
@pytest.mark.parametrize("blobs, dist, expected", [
    # [strata].dist decides, unless the request does.
    (None, "link", Blobs.LINK),
    (None, "copy", Blobs.COPY),
    (Blobs.LINK, "copy", Blobs.LINK),
    (Blobs.SANDBOX, "copy", Blobs.SANDBOX),
    (Blobs.COPY, "link", Blobs.COPY),
])
def test_blobs_as(remote, fmt, blobs, dist, expected) -> None:
    """Under remote execution an archive is always a copy (its Process has no blob store); a
    directory is as without it."""
    request = AssembleRequest(OciImageFieldSet.create(image()), fmt, "out", blobs=blobs)
    archive = fmt != "oci"
    assert blobs_as(request, strata(dist=dist), Execution(remote)) == (
        Blobs.COPY if remote and archive else expected
    )


def image_inputs(root, store) -> tuple:
    """An image spec and two gzip layers, as prepare_image lays them out for assembly: each
    layer's layer.json (naming no blob file), its blob in the blob store `store`. Returns the
    blobs' descriptors."""
    blobs = []
    layers = []
    for i, data in enumerate([b"first layer tar", b"second layer tar"]):
        directory = os.path.join(root, f"layers/{i:03d}")
        os.makedirs(directory)
        blob = b"gzip of " + data  # what the bytes are does not matter here, only their digests
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        os.makedirs(os.path.join(store, "sha256"), exist_ok=True)
        with open(os.path.join(store, "sha256", digest_hex(digest)), "wb") as f:
            f.write(blob)
        info = {
            "diff_id": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data),
            "digest": digest, "blob_size": len(blob), "compression": "gzip", "entries": 1,
        }
        with open(os.path.join(directory, "layer.json"), "w") as f:
            json.dump(info, f)
        layers.append(LayerRef(f"layers/{i:03d}", f"layer {i}"))
        blobs.append(stored(blob, f"layer {i}"))
    spec = ImageSpec(
        format="oci", layers=tuple(layers),
        config={"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:01Z",
                "config": {"Entrypoint": ["/bin/hello"]}},
        repository="app/image", tag="v1", blob_store=".strata-blobs",
    )
    with open(os.path.join(root, "image-spec.json"), "w") as f:
        json.dump(spec.to_json(), f)
    return tuple(blobs)


def listing(root):
    """A directory's files as a digest lists them, and the contents of its JSON files."""
    entries, contents = [], []
    for directory, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                data = f.read()
            rel = os.path.relpath(path, root)
            entries.append(FileEntry(rel, FileDigest(hashlib.sha256(data).hexdigest(), len(data))))
            if rel.endswith(".json"):
                contents.append(FileContent(rel, data))
    return DigestEntries(entries), DigestContents(contents)


def recorders(created: list, ensured: list):
    """MockGet bodies that record what a rule creates (CreateDigest's entries) and the blobs
    it ensures."""

    def create(request: CreateDigest) -> Digest:
        created.extend(request)
        return OUTPUT

    def ensure(request: EnsureBlobs) -> EnsuredBlobs:
        ensured.append(request.blobs)
        return EnsuredBlobs(())

    return create, ensure


@pytest.mark.parametrize("blobs", [None, Blobs.LINK, Blobs.SANDBOX])
def test_an_oci_layout_is_composed_with_symlinks_into_the_blob_store_with_no_process(
    tmp_path, monkeypatch, blobs
) -> None:
    """The layout holds each layer's blob as a symlink to the blob its layer Process wrote into
    the blob store (absolute, or for a Process's sandbox relative to .strata-blobs), which is
    ensured; and the same bytes as the core's `assemble` writes for it."""
    root, store = tmp_path / "inputs", tmp_path / "store"
    layer_blobs = image_inputs(root, store)
    entries, contents = listing(root)
    created, ensured = [], []
    create, ensure = recorders(created, ensured)

    layouts = []

    def compose(request: LayoutRequest) -> AssembledImage:
        layouts.append(request)
        return run_rule_with_mocks(
            compose_oci_layout,
            rule_args=[request],
            mock_gets=[
                MockGet(DigestEntries, (Digest,), lambda d: entries if d == CONTENT else None),
                MockGet(DigestContents, (DigestSubset,), lambda r: contents),
                MockGet(Digest, (CreateDigest,), create),
                MockGet(EnsuredBlobs, (EnsureBlobs,), ensure),
            ],
        )

    request = AssembleRequest(OciImageFieldSet.create(image()), "oci", "dist/image", blobs=blobs)
    inputs = ImageInputs(INPUTS, CONTENT, True, SBOM_SOURCES, layer_blobs, str(store))
    assembled = run_rule_with_mocks(
        assemble_image,
        rule_args=[request, TOOL, strata(dist="link"), STORE, Execution(False)],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), lambda r: inputs),
            MockGet(AssembledImage, (LayoutRequest,), compose),
            MockGet(DigestEntries, (Digest,), unexpected),
            MockGet(EnsuredBlobs, (EnsureBlobs,), unexpected),  # compose_oci_layout's to do
            MockGet(ProcessResult, (Process,), unexpected),
            MockGet(Digest, (DigestSubset,), unexpected),
            MockGet(DigestContents, (DigestSubset,), unexpected),
            MockGet(Digest, (CreateDigest,), unexpected),
            MockGet(Digest, (RemovePrefix,), unexpected),
        ],
    )
    assert layouts == [LayoutRequest(inputs, "dist/image", blobs or Blobs.LINK)]
    assert ensured == [layer_blobs]
    # What the core's `assemble` writes from the same inputs on disk.
    monkeypatch.chdir(root)
    expected_metadata = assemble(load_image("image-spec.json", blob_store=str(store)), "written")
    written_entries, _ = listing(root / "written")
    expected = {f"dist/image/{e.path}": e.file_digest for e in written_entries}

    def in_store(link: SymlinkEntry) -> str:
        """The blob store's file the link points to."""
        if blobs == Blobs.SANDBOX:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(link.path), link.target))
            assert target.startswith(".strata-blobs/sha256/")
            return os.path.join(store, os.path.relpath(target, ".strata-blobs"))
        assert link.target.startswith(f"{store}/sha256/")
        return link.target

    def file_digest(data: bytes) -> FileDigest:
        return FileDigest(hashlib.sha256(data).hexdigest(), len(data))

    composed = {}
    for item in created:
        assert not isinstance(item, FileEntry)  # no file of the inputs: every layer is stored
        if isinstance(item, SymlinkEntry):
            with open(in_store(item), "rb") as f:
                composed[item.path] = file_digest(f.read())
        else:
            composed[item.path] = file_digest(item.content)
    assert composed == expected
    links = [item for item in created if isinstance(item, SymlinkEntry)]
    assert sorted(in_store(link) for link in links) == sorted(
        os.path.join(store, "sha256", digest_hex(blob.digest)) for blob in layer_blobs
    )
    assert assembled == AssembledImage(OUTPUT, expected_metadata)


def test_a_descriptor_is_written_with_no_process_and_its_layers_blobs_ensured(tmp_path) -> None:
    """The `descriptor` format holds no blob: the rules write the core's document, and the
    blobs it points to are checked in the store."""
    root, store = tmp_path / "inputs", tmp_path / "store"
    layer_blobs = image_inputs(root, store)
    entries, contents = listing(root)
    created, ensured = [], []
    create, ensure = recorders(created, ensured)

    request = AssembleRequest(OciImageFieldSet.create(image()), "descriptor", "app/image.json")
    inputs = ImageInputs(INPUTS, CONTENT, True, SBOM_SOURCES, layer_blobs, str(store))
    assembled = run_rule_with_mocks(
        assemble_image,
        rule_args=[request, TOOL, strata(), STORE, Execution(False)],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), lambda r: inputs),
            MockGet(AssembledImage, (LayoutRequest,), unexpected),
            MockGet(DigestEntries, (Digest,), lambda d: entries if d == CONTENT else None),
            MockGet(DigestContents, (DigestSubset,), lambda r: contents),
            MockGet(EnsuredBlobs, (EnsureBlobs,), ensure),
            MockGet(ProcessResult, (Process,), unexpected),
            MockGet(Digest, (DigestSubset,), unexpected),
            MockGet(Digest, (CreateDigest,), create),
            MockGet(Digest, (RemovePrefix,), unexpected),
        ],
    )
    assert ensured == [layer_blobs]
    img = load_image(str(root / "image-spec.json"), blob_store=str(store))
    assert created == [FileContent("app/image.json", image_descriptor(img))]
    document = json.loads(created[0].content)
    assert [layer["digest"] for layer in document["layers"]] == [b.digest for b in layer_blobs]
    assert assembled.output == OUTPUT


def loader_paths(found: dict):
    searched = []

    def paths(request: BinaryOnThisMachine) -> FoundOnThisMachine:
        # Looked up on this machine, where `run` runs the loader.
        assert request.search_path == ("/usr/bin", "/usr/local/bin", "/bin")
        assert request.needs == "its loader"
        searched.append(request.name)
        return FoundOnThisMachine(found.get(request.name))

    return searched, paths


STREAM = ("/usr/bin/python3 -E -s -S -B -X 'strata_python=3.11.2 (main) [GCC]' -m strata.core "
          "stream --spec image-spec.json --blob-store /blobs")
# Loading alone reads nothing of the image: only running it needs its name.
NO_IMAGE_READ = (MockGet(DigestEntries, (Digest,), unexpected),
                 MockGet(DigestContents, (DigestSubset,), unexpected))


@pytest.mark.parametrize(
    "loader, found, searched, command",
    [
        # Without skopeo, podman loads the whole archive.
        ("auto", {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}, ["podman", "skopeo"],
         f"{STREAM} | /usr/bin/podman load"),
        ("auto", {"docker": "/usr/local/bin/docker"}, ["podman", "docker"],
         f"{STREAM} | /usr/local/bin/docker load"),
        # No loader: the archive goes to stdout.
        ("auto", {}, ["podman", "docker"], STREAM),
        ("docker", {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}, ["docker"],
         f"{STREAM} | /usr/bin/docker load"),
        ("stdout", {"podman": "/usr/bin/podman", "skopeo": "/usr/bin/skopeo"}, [], STREAM),
        ("docker", {"docker": "/usr/bin/docker", "skopeo": "/usr/bin/skopeo"}, ["docker"],
         f"{STREAM} | /usr/bin/docker load"),
    ],
)  # fmt: skip
def test_run_streams_a_docker_archive_into_the_loader(loader, found, searched, command) -> None:
    requests, ensured = [], []

    def inputs(request: AssembleRequest) -> ImageInputs:
        requests.append(request)
        return INPUTS_OF_ANY_IMAGE

    def ensure(request: EnsureBlobs) -> EnsuredBlobs:
        ensured.append(request.blobs)
        return EnsuredBlobs(())

    was_searched, paths = loader_paths(found)
    run = run_rule_with_mocks(
        run_oci_image,
        rule_args=[OciImageFieldSet.create(image()), TOOL, strata(loader=loader, load_only=True)],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), inputs),
            MockGet(FoundOnThisMachine, (BinaryOnThisMachine,), paths),
            MockGet(AssembledImage, (AssembleRequest,), unexpected),
            MockGet(EnsuredBlobs, (EnsureBlobs,), ensure),
            *NO_IMAGE_READ,
        ],
    )
    # The stream reads the layers' blobs from the blob store (its absolute path): they are
    # checked there first.
    assert ensured == [INPUTS_OF_ANY_IMAGE.blobs]
    ((_, fmt, output, compression),) = [
        (r.field_set, r.fmt, r.output, r.compression) for r in requests
    ]
    # The image is never written whole: the spec and layers stream into the loader, which
    # reads plain tar layers only.
    assert (fmt, output, compression) == ("docker-archive", "image.tar", "none")
    assert run.digest == INPUTS
    assert run.args == ("/bin/bash", "-c", f"set -o pipefail; cd {{chroot}} && {command}")
    assert was_searched == searched


@pytest.mark.parametrize(
    "repo_tag, name",
    [
        ("app/image:v1", "localhost/app/image:v1"),
        ("image:v1", "localhost/image:v1"),
        ("registry.example/app:v1", "registry.example/app:v1"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("localhost/app:v1", "localhost/app:v1"),
    ],
)
def test_podman_gets_an_oci_layout_through_skopeo(repo_tag, name) -> None:
    """skopeo reuses the layers podman's storage holds, so the layout (composed, never written
    whole) goes there by `skopeo copy`, under the name `podman load` would give it."""
    requests = []

    def layout(request: AssembleRequest) -> AssembledImage:
        requests.append(request)
        return AssembledImage(OUTPUT, {"repo_tag": repo_tag})

    was_searched, paths = loader_paths({"podman": "/usr/bin/podman", "skopeo": "/usr/bin/skopeo"})
    run = run_rule_with_mocks(
        run_oci_image,
        rule_args=[OciImageFieldSet.create(image()), TOOL, strata(loader="auto", load_only=True)],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), unexpected),
            MockGet(FoundOnThisMachine, (BinaryOnThisMachine,), paths),
            MockGet(AssembledImage, (AssembleRequest,), layout),
            MockGet(EnsuredBlobs, (EnsureBlobs,), unexpected),  # the layout's composition's
            *NO_IMAGE_READ,
        ],
    )
    # Whatever `[strata].dist` says, the layout's blobs are links into the blob store.
    assert [(r.fmt, r.output, r.compression, r.blobs) for r in requests] == [
        ("oci", "image", "none", Blobs.LINK)
    ]
    assert was_searched == ["podman", "skopeo"]
    assert run.digest == OUTPUT
    copy = (f"/usr/bin/skopeo --insecure-policy copy --quiet oci:image "
            f"containers-storage:{name}")
    assert run.args == (
        "/bin/bash", "-c",
        f"set -o pipefail; cd {{chroot}} && {copy} && echo 'Loaded image: {name}'"
    )


def test_run_loads_then_runs_the_image_with_run_args_and_the_arguments_after_dashes() -> None:
    _, paths = loader_paths({"podman": "/usr/bin/podman", "skopeo": "/usr/bin/skopeo"})
    run = run_rule_with_mocks(
        run_oci_image,
        rule_args=[OciImageFieldSet.create(image()), TOOL,
                   strata(loader="auto", run_args=["--network=none", "--env=A=b c"])],
        mock_gets=[
            MockGet(ImageInputs, (AssembleRequest,), unexpected),
            MockGet(FoundOnThisMachine, (BinaryOnThisMachine,), paths),
            MockGet(AssembledImage, (AssembleRequest,),
                    lambda r: AssembledImage(OUTPUT, {"repo_tag": "app/image:v1"})),
            MockGet(EnsuredBlobs, (EnsureBlobs,), unexpected),
            *NO_IMAGE_READ,
        ],
    )
    bash, flag, script, name = run.args
    assert (bash, flag, name) == ("/bin/bash", "-c", "strata-run")  # "$0"; "$@" follows
    load = ("/usr/bin/skopeo --insecure-policy copy --quiet oci:image "
            "containers-storage:localhost/app/image:v1")
    assert f"cd {{chroot}} && {{ {load} && echo 'Loaded image: localhost/app/image:v1'; }} >&2" \
        in script
    assert ("/usr/bin/podman run --name \"$container\" \"${terminal[@]}\" --rm --pull=never "
            "--network=none '--env=A=b c' localhost/app/image:v1 \"$@\"") in script
    assert "trap 'trap - INT TERM HUP; stop; exit 130' INT TERM HUP" in script


def test_run_with_a_missing_chosen_loader_is_an_error() -> None:
    _, paths = loader_paths({"podman": "/usr/bin/podman"})
    with pytest.raises(EnvironmentError, match=r"\[strata\].loader is 'docker'"):
        run_rule_with_mocks(
            run_oci_image,
            rule_args=[OciImageFieldSet.create(image()), TOOL, strata(loader="docker")],
            mock_gets=[
                MockGet(ImageInputs, (AssembleRequest,), lambda r: INPUTS_OF_ANY_IMAGE),
                MockGet(FoundOnThisMachine, (BinaryOnThisMachine,), paths),
                MockGet(AssembledImage, (AssembleRequest,), unexpected),
                MockGet(EnsuredBlobs, (EnsureBlobs,), unexpected),
                *NO_IMAGE_READ,
            ],
        )


# An `oci_image` base's layers, in the blob store (spec_of's base has the first `base_layers`).
BASE_BLOBS = tuple(stored(b"base layer %d" % i, f"base layer {i}") for i in range(200))
# The one layer spec_of's images get: an executable /app/bin.
APP_PATHS = {"app": PathEntry("dir", 0o755), "app/bin": PathEntry("file", 0o755)}
LAYER_PATHS = Digest("5" * 64, 5)


# Each kind's customisation rule, its arguments after the request, and the Gets it may not make
# for spec_of's images (no `ca_certificates`, no `include_nix_db`).
KIND_CUSTOMISATIONS = {
    DebianCustomisationRequest: (debian_customisation, [TOOL], [
        MockGet(FallibleProcessResult, (Process,), unexpected),
        MockGet(FallibleProcessResult, (OnThisMachine,), unexpected),
        MockGet(ProcessResult, (FallibleProcessResult, ProductDescription), unexpected),
        MockGet(Digest, (MergeDigests,), unexpected),
        MockGet(Digest, (RemovePrefix,), unexpected),
    ]),
    NixCustomisationRequest: (nix_customisation, [], [
        MockGet(Digest, (NixDbRequest,), unexpected),
    ]),
    PythonVenvCustomisationRequest: (python_venv_customisation, [], []),
}
KINDS = UnionMembership({CustomisationRequest: list(KIND_CUSTOMISATIONS)})


def customised(request: ImageCustomisationRequest) -> ImageCustomisation:
    """The image's customisation as its kinds' real rules make it, with no file to check."""
    def kind(member: CustomisationRequest) -> Customisation:
        rule, args, gets = KIND_CUSTOMISATIONS[type(member)]
        return run_rule_with_mocks(rule, rule_args=[member, *args], mock_gets=gets)

    return run_rule_with_mocks(
        image_customisation,
        rule_args=[request, KINDS],
        mock_gets=[
            MockGet(Customisation, (CustomisationRequest,), kind),
            MockGet(Digest, (MergeDigests,), unexpected),
            MockGet(DigestEntries, (Digest,), unexpected),
            MockGet(BuildCommands, (CommandsRequest,), unexpected),  # no build-time commands
        ],
        union_membership=KINDS,
    )


def test_a_targets_root_link_goes_where_a_kind_s_root_symlink_points_and_may_not_clash() -> None:
    """`copy_to_root`'s /bin/hello goes to usr/bin/hello beside Debian packages (merged-/usr
    makes /bin a symlink); two targets may not link one path two ways."""
    target = image()
    libc = StoreNode("debian:libc6", EMPTY_DIGEST, (), DebianPackage("libc6"))
    hello = RootLink("app:hello", "bin/hello", "/nix/store/abc-hello/bin/hello", "copy_to_root",
                     "nix_closure")

    def customise(*links: RootLink) -> ImageCustomisation:
        closure = ImageClosure((libc,), root_links=links)
        return customised(
            ImageCustomisationRequest(OciImageFieldSet.create(target), target, closure)
        )

    layer = customise(hello).layer
    assert layer.symlinks == (("usr/bin/hello", "/nix/store/abc-hello/bin/hello"),)
    assert ("bin", "usr/bin") in [(e.path, e.target) for e in layer.root_entries]
    other = RootLink("app:other", "bin/hello", "/nix/store/def-hello/bin/hello", "copy_to_root",
                     "nix_closure")
    with pytest.raises(InvalidImageContent, match=re.escape(
        "Cannot build app:image: the `copy_to_root` of app:hello and of app:other both link "
        "/usr/bin/hello (/nix/store/abc-hello/bin/hello and /nix/store/def-hello/bin/hello): a "
        "top-level path may provide it for one `nix_closure` only."
    )):
        customise(hello, other)


def spec_of(target: OciImageTarget, fmt: str, *, base_layers: int = 0, zstd=None,
            base_platform=(("architecture", "amd64"), ("os", "linux")), nodes=(),
            paths=APP_PATHS, base_config=None, base_paths=APP_PATHS):
    """The image spec prepare_image writes, and what it asked for on the way."""
    asked: dict = {"base": [], "zstd": 0, "layers": []}
    created = []

    def base(request: BaseRequest) -> BaseImage:
        asked["base"].append(request)
        return BaseImage(Digest("6" * 64, 6), base_layers, paths=(BASE_PATHS,),
                         blobs=BASE_BLOBS[:base_layers])

    def layers(request: LayersRequest) -> BuiltLayers:
        asked["layers"].append(request)
        return BuiltLayers((BuiltLayer(Digest("7" * 64, 7), "//app:bin", "{}", LAYER_BLOB,
                                       paths=LAYER_PATHS),))

    def layer_paths(request: LayerPathsRequest) -> LayerPaths:
        return LayerPaths(request.digest, paths if request.digest == LAYER_PATHS else base_paths)

    def zstd_binary(request: ZstdBinaryRequest) -> ZstdBinary:
        asked["zstd"] += 1
        return ZstdBinary(zstd, ("/usr/bin",))

    def create(request: CreateDigest) -> Digest:
        created.extend(request)
        return Digest("8" * 64, 8)

    asked["inputs"] = run_rule_with_mocks(
        prepare_image,
        rule_args=[AssembleRequest(OciImageFieldSet.create(target), fmt, "out"), TOOL, STORE],
        mock_gets=[
            MockGet(ImageClosure, (ImageClosureRequest,), lambda r: ImageClosure(nodes)),
            MockGet(WrappedTarget, (WrappedTargetRequest,), lambda r: WrappedTarget(target)),
            MockGet(LayerPaths, (LayerPathsRequest,), layer_paths),
            MockGet(ImageCustomisation, (ImageCustomisationRequest,), customised),
            MockGet(BaseImage, (BaseRequest,), base),
            MockGet(DigestContents, (DigestSubset,), lambda r: DigestContents([
                FileContent("base/config.json", json.dumps(
                    {**dict(base_platform), "config": base_config or {}}
                ).encode())
            ])),
            MockGet(BuiltLayers, (LayersRequest,), layers),
            MockGet(Sbom, (SbomRequest,), unexpected),  # no `embed_sbom`
            MockGet(BuiltLayer, (FilesLayerRequest,), unexpected),
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
        # Where the assembly's Process has the blob store that holds the layers' blobs.
        "blob_store": ".strata-blobs",
    }
    assert asked["base"] == [] and asked["zstd"] == 0
    # The assembly ensures the layer's blob, and reads the store by its absolute path.
    assert (asked["inputs"].blobs, asked["inputs"].blob_store) == ((LAYER_BLOB,), "/blobs")


def test_unset_runtime_config_fields_leave_their_keys_out() -> None:
    spec, _ = spec_of(image(env={}, labels={}, exposed_ports=[], workdir=""), "docker-archive")
    assert spec["config"]["config"] == {}


@pytest.mark.parametrize("fields, base, message", [
    ({}, {"architecture": "arm64", "os": "linux"},
     "The `architecture` field of app:image is 'amd64', but the image its `base` field names, "
     ":debian, is architecture 'arm64'"),
    ({"architecture": "arm", "variant": "7"},
     {"architecture": "arm", "os": "linux", "variant": "v6"},
     "The `variant` field of app:image is 'v7', but the image its `base` field names, "
     ":debian, is variant 'v6'"),
])
def test_an_image_of_another_platform_than_its_base_is_an_error_naming_both(
    fields, base, message
) -> None:
    with pytest.raises(Exception, match=re.escape(message)):
        spec_of(image(base=":debian", **fields), "oci", base_platform=tuple(base.items()))


def test_variant_is_written_normalised_only_when_set() -> None:
    spec, _ = spec_of(image(architecture="arm", variant="7"), "oci")
    assert (spec["config"]["architecture"], spec["config"]["variant"]) == ("arm", "v7")
    spec, _ = spec_of(image(architecture="arm64"), "oci")
    assert "variant" not in spec["config"]


@pytest.mark.parametrize(
    "fmt, compression, zstd",
    [
        # Docker cannot read zstd: a docker-archive gets the zstd binary for the base's layers.
        ("docker-archive", "none", "/usr/bin/zstd"),
        # rootfs reads every layer as a tar too.
        ("rootfs", "none", "/usr/bin/zstd"),
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
    # The base's blobs (an `oci_image` base's layers are in the blob store) below the image's.
    assert asked["inputs"].blobs == (*BASE_BLOBS[:3], LAYER_BLOB)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
def test_a_docker_archive_of_more_layers_than_docker_loads_is_an_error_naming_max_layers(
    fmt,
) -> None:
    """`docker load` refuses an image of over 125 layers ("max depth exceeded"); the base's
    layers count, and only a build knows how many it has."""
    target = image(base=":debian", max_layers=200, output_format=fmt)
    if fmt == "oci":
        spec_of(target, fmt, base_layers=125)  # another format: no docker load
        return
    spec_of(target, fmt, base_layers=124)  # 124 + the image's own 1: the most docker loads
    with pytest.raises(Exception, match=re.escape(
            "The `max_layers` field of app:image is 200: docker-archive: the image has 126 "
            "layers, base layers included, but `docker load` takes at most 125")):
        spec_of(target, fmt, base_layers=125)


BASE_PATHS = Digest("b" * 64, 11)
VENV_PATHS = {
    "opt/venv/bin/python": PathEntry("symlink", 0o777, "/usr/local/bin/python3.11"),
    "opt/venv/bin/http": PathEntry("file", 0o755),
}
DEBIAN_PYTHON = {"bin": PathEntry("symlink", 0o777, "usr/bin"),
                 "usr/bin/python3.11": PathEntry("file", 0o755)}


def venv(python: str) -> StoreNode:
    return StoreNode("app:venv", EMPTY_DIGEST, (), PythonPart(
        Venv("opt/venv", python, "3.11", (("http", "httpie.core:main"),)), ("/opt/venv/bin/http",)
    ))


def test_a_venv_interpreter_not_in_the_image_is_an_error_naming_the_field() -> None:
    with pytest.raises(Exception, match=re.escape(
        "The `python` field of app:venv is /usr/local/bin/python3.11, but in the image app:image, "
        "/usr/local/bin/python3.11 is not in the image: add a `debian_packages` target with "
        "`python3.11` to the image's dependencies"
    )):
        spec_of(image(), "oci", nodes=(venv("usr/local/bin/python3.11"),), paths=VENV_PATHS)
    # Debian's, through the merged-/usr link, is there.
    spec, _ = spec_of(image(), "oci", nodes=(venv("bin/python3.11"),),
                      paths={**VENV_PATHS, **DEBIAN_PYTHON})
    assert spec["config"]["config"]["Entrypoint"] == ["/opt/venv/bin/http"]


@pytest.mark.parametrize("fields, message", [
    ({"entrypoint": ["/usr/bin/python3.11", "-m", "app"]},
     "The `entrypoint` field of app:image runs '/usr/bin/python3.11', but /usr/bin/python3.11 "
     "is not in the image: the image must hold it as an executable file. Add what provides it"),
    ({"entrypoint": ["/app"]},
     "The `entrypoint` field of app:image runs '/app', but /app is a directory, not a program"),
    ({"entrypoint": ["hello"], "env": {"PATH": "/app:/usr/bin"}},
     "The `entrypoint` field of app:image runs 'hello', but no directory of the image's PATH "
     "holds it (/app/hello is not in the image; /usr/bin/hello is not in the image)"),
])
def test_an_entrypoint_not_in_the_image_is_an_error_naming_the_field(fields, message) -> None:
    with pytest.raises(Exception, match=re.escape(message)):
        spec_of(image(**fields), "oci")


def test_a_bare_entrypoint_is_found_on_the_image_path() -> None:
    spec, _ = spec_of(image(entrypoint=["bin"], env={"PATH": "/usr/bin:/app"}), "oci")
    assert spec["config"]["config"]["Entrypoint"] == ["bin"]
    spec_of(image(entrypoint=["./bin"], workdir="/app"), "oci")


def test_an_entrypoint_on_a_base_is_checked_against_the_base_s_paths_too() -> None:
    base = {"base": ":debian", "max_layers": 5}
    # The base's paths are below the image's, and its config's PATH is inherited.
    spec_of(image(entrypoint=["python3.11"], **base), "oci", base_layers=1,
            base_paths=DEBIAN_PYTHON, base_config={"Env": ["PATH=/bin"]})
    with pytest.raises(Exception, match=re.escape(
        "app:image runs '/usr/bin/tool', the entrypoint of its `base` :debian, but "
        "/usr/bin/tool is not in the image"
    )):
        spec_of(image(**base), "oci", base_layers=1, base_paths=DEBIAN_PYTHON,
                base_config={"Entrypoint": ["/usr/bin/tool"]})


def test_the_sbom_is_placed_beside_the_image_once_and_a_second_rendering_is_harmless(tmp_path):
    """`package` renders PlaceSbom after Pants wrote every file: the SBOM documents move from
    the pending directory to their names; rendering it again moves and breaks nothing."""
    pending = tmp_path / ".image.sbom-pending"
    pending.mkdir()
    for name in ("image.spdx.json", "image.cdx.json"):
        (pending / name).write_text(name)
    final = tuple(str(tmp_path / name) for name in ("image.spdx.json", "image.cdx.json"))
    line = PlaceSbom(str(pending), final)
    for _ in range(2):
        assert str(line) == (
            "Moved to image.spdx.json and image.cdx.json, beside the image, now that it is written."
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == ["image.cdx.json", "image.spdx.json"]
    assert (tmp_path / "image.cdx.json").read_text() == "image.cdx.json"
