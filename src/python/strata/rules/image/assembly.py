"""An image from its inputs: the types the pipeline hands on (`AssembleRequest`, `ImageInputs`,
`AssembledImage`), reading the inputs as the core reads an image, and the assembly itself (an
OCI layout by digest operations, an archive by the `assemble` Process)."""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, List, Optional, Tuple, Union

from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileDigest,
    FileEntry,
    PathGlobs,
    RemovePrefix,
    SymlinkEntry,
)
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from strata.core.oci.descriptor import image_descriptor
from strata.core.oci.formats import FORMATS, load_image, metadata
from strata.core.oci.image import digest_hex
from strata.core.oci.layout import OCI_LAYOUT, oci_contents
from strata.core.oci.model import Image, Layer
from strata.rules.blobs import (
    EMITS,
    SANDBOX_PATH,
    BlobStoreLocation,
    EnsureBlobs,
    EnsuredBlobs,
    StoredBlob,
)
from strata.rules.closure import ImageClosure, ImageClosureRequest
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.processes import OUTPUT_DIR, Execution
from strata.rules.sbom import NodesFacts, NodesFactsRequest, SbomSources
from strata.rules.tool import ImageTool
from strata.subsystems import StrataSubsystem

@dataclass(frozen=True)
class ImageInputs:
    """Everything the assembly step reads: the spec, layers and base (`content`), and with the
    tool (`digest`), enough to stream the image without ever writing it whole."""

    digest: Digest
    content: Digest
    reproducible: bool  # False when a timestamp is "now"
    sbom_sources: SbomSources
    blobs: Tuple[StoredBlob, ...] = ()  # the layers' blobs in the blob store
    blob_store: str = ""  # its absolute path


@dataclass(frozen=True)
class AssembledImage:
    """The image at the request's `output` (an archive file or a layout directory), its blobs
    as the request's `blobs` says, and its metadata."""

    output: Digest
    metadata: dict


class Blobs(Enum):
    """How an assembled image holds the blobs in the blob store."""

    LINK = "link"  # absolute symlinks into it: for dist/, `run` and `publish`
    COPY = "copy"  # real files
    SANDBOX = "sandbox"  # relative symlinks into SANDBOX_PATH, for a Process that has the store


@dataclass(frozen=True)
class AssembleRequest:
    field_set: OciImageFieldSet
    fmt: str
    output: str
    compression: Optional[str] = None  # overrides the field's, e.g. for publishing
    blobs: Optional[Blobs] = None  # None: as `[strata].dist` says


# The image spec, among the inputs.
SPEC = "image-spec.json"


class DigestFiles:
    """An image's inputs as a digest lists them, read by `strata.core.oci.model` as it reads
    files on disk: its small JSON files' contents, and every file's size and digest."""

    def __init__(self, entries: DigestEntries, contents: DigestContents):
        self._entries = {e.path: e for e in entries if isinstance(e, FileEntry)}
        self._contents = {c.path: c.content for c in contents}

    def read(self, path: str) -> bytes:
        if path not in self._contents:
            raise FileNotFoundError(f"{path} is not among the image's inputs")
        return self._contents[path]

    def file_digest(self, path: str) -> FileDigest:
        if path not in self._entries:
            raise FileNotFoundError(f"{path} is not among the image's inputs")
        return self._entries[path].file_digest

    def size(self, path: str) -> int:
        return self.file_digest(path).serialized_bytes_length

    def listdir(self, path: str) -> List[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/", 1)[0] for p in self._entries
                       if p.startswith(prefix)})

    def placed(
        self,
        directory: str,
        files: Iterable[Tuple[str, Union[bytes, Layer]]],
        blobs: Blobs = Blobs.LINK,
    ) -> List[Union[FileEntry, FileContent, SymlinkEntry]]:
        """Files the core decided, under `directory`, to create a digest of: bytes, or a layer's
        blob, no byte of which is copied: a symlink into the blob store (as `blobs` says) or a
        base's file, at a new path."""
        return [_placed(f"{directory}/{path}", content, self, blobs) for path, content in files]


def _placed(path: str, content: Union[bytes, Layer], files: DigestFiles, blobs: Blobs):
    if not isinstance(content, Layer):
        return FileContent(path, content)
    if not content.stored:
        return FileEntry(path, files.file_digest(content.blob_path))
    if blobs == Blobs.COPY:
        raise ValueError(f"{path}: a blob in the blob store cannot be placed as a file")
    return SymlinkEntry(path, _link_target(path, content.info["digest"], content.blob_path, blobs))


def _link_target(path: str, digest: str, absolute: str, blobs: Blobs) -> str:
    """Where a link at `path` to a blob points: `absolute` (LINK), or for a Process's sandbox
    (SANDBOX) relative to `path`, into the named cache at SANDBOX_PATH."""
    if blobs != Blobs.SANDBOX:
        return absolute
    in_store = posixpath.join(SANDBOX_PATH, "sha256", digest_hex(digest))
    return posixpath.relpath(in_store, posixpath.dirname(path))


async def read_image(inputs: ImageInputs) -> Tuple[DigestFiles, Image]:
    """The image as the core reads it (`load_image`), from the inputs' digest: no Process."""
    content = inputs.content
    entries, contents = await MultiGet(
        Get(DigestEntries, Digest, content),
        Get(DigestContents, DigestSubset(content, PathGlobs(["**/*.json"]))),
    )
    files = DigestFiles(entries, contents)
    return files, load_image(SPEC, files, inputs.blob_store)


def spec_path(directory: str) -> str:
    """Where the image spec is when the inputs' `content` is put under `directory`."""
    return os.path.join(directory, SPEC)


@dataclass(frozen=True)
class LayoutRequest:
    """An OCI layout of the image `inputs` describe, at `output`, its layers' blobs symlinks
    into the blob store, as `blobs` says (LINK or SANDBOX)."""

    inputs: ImageInputs
    output: str
    blobs: Blobs = Blobs.LINK


@rule(desc="Composing an OCI layout", level=LogLevel.DEBUG)
async def compose_oci_layout(request: LayoutRequest) -> AssembledImage:
    """An OCI layout is its blobs named by digest, plus index.json and oci-layout: made with
    digest operations, each layer's blob a symlink to the blob its layer Process wrote into the
    blob store (checked there in this run), so composing an image copies no byte. The core
    validates the inputs and decides every byte, exactly as its `assemble` subcommand does."""
    files, img = await read_image(request.inputs)
    blobs, index = oci_contents(img)
    layout = files.placed(request.output, [
        *((f"blobs/sha256/{hex_id}", blob) for hex_id, blob in blobs),
        ("index.json", index),
        ("oci-layout", OCI_LAYOUT),
    ], request.blobs)
    await Get(EnsuredBlobs, EnsureBlobs(request.inputs.blobs))
    return AssembledImage(await Get(Digest, CreateDigest(layout)), metadata(img))


async def _metadata(output: Digest) -> dict:
    contents = await Get(DigestContents, DigestSubset(output, PathGlobs(["image.json"])))
    return json.loads(contents[0].content)


def blobs_as(request: AssembleRequest, strata: StrataSubsystem, execution: Execution) -> Blobs:
    """As asked, else as `[strata].dist` says; under remote execution an archive is a copy: it
    is written by a Process that cannot reach the blob store."""
    if execution.remote and not FORMATS[request.fmt].directory:
        return Blobs.COPY
    return request.blobs or (Blobs.LINK if strata.links_dist() else Blobs.COPY)


@rule(desc="Assembling an OCI image", level=LogLevel.DEBUG)
async def assemble_image(
    request: AssembleRequest,
    tool: ImageTool,
    strata: StrataSubsystem,
    store: BlobStoreLocation,
    execution: Execution,
) -> AssembledImage:
    """An OCI layout is composed (`compose_oci_layout`) unless its blobs are to be copies; an
    archive is written by the `assemble` Process, into the blob store (then linked), or as a
    file (copied into Pants' store): that Process is also the archive blob's `emit`."""
    address = request.field_set.address
    inputs = await Get(ImageInputs, AssembleRequest, request)
    blobs = blobs_as(request, strata, execution)
    fmt = FORMATS[request.fmt]
    if fmt.directory and blobs != Blobs.COPY:
        return await Get(AssembledImage, LayoutRequest(inputs, request.output, blobs))
    if not fmt.blobs:  # a document about the image (`descriptor`), written here
        _, img = await read_image(inputs)
        await Get(EnsuredBlobs, EnsureBlobs(inputs.blobs))
        document = FileContent(request.output, image_descriptor(img))
        return AssembledImage(await Get(Digest, CreateDigest([document])), metadata(img))
    directory = fmt.directory
    await Get(EnsuredBlobs, EnsureBlobs(inputs.blobs))  # what the Process reads, if it runs
    written = f"{OUTPUT_DIR}/{request.output}"
    copy = Process(
        argv=tool.argv("assemble", "--spec", SPEC, "--out", written, "--metadata", "image.json"),
        input_digest=inputs.digest,
        append_only_caches=store.caches_for(execution),
        output_files=("image.json", *(() if directory else (written,))),
        output_directories=(written,) if directory else (),
        description=f"Assembling {address}",
        level=LogLevel.INFO,
        cache_scope=(
            ProcessCacheScope.SUCCESSFUL if inputs.reproducible
            else ProcessCacheScope.PER_SESSION
        ),
        remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
    )
    if blobs == Blobs.COPY:
        result = await Get(ProcessResult, Process, copy)
        output = await Get(
            Digest, DigestSubset(result.output_digest, PathGlobs([written, f"{written}/**"]))
        )
        return AssembledImage(
            await Get(Digest, RemovePrefix(output, OUTPUT_DIR)),
            await _metadata(result.output_digest),
        )
    into_store = dataclasses.replace(
        copy,
        argv=tool.argv("assemble", "--spec", SPEC, "--metadata", "image.json"),
        output_files=("image.json",),
        output_directories=(),
    )
    result = await Get(ProcessResult, Process, into_store)
    meta = await _metadata(result.output_digest)
    archive = meta.pop("archive")
    emit = dataclasses.replace(copy, description=f"{copy.description}: {EMITS}")
    blob = StoredBlob(
        archive["digest"], archive["size"], f"the {request.fmt} of {address}", emit,
        written, tuple(archive["stamp"]),
    )
    await Get(EnsuredBlobs, EnsureBlobs((blob,)))
    target = _link_target(request.output, blob.digest, store.blob_path(blob.digest), blobs)
    output = await Get(Digest, CreateDigest([SymlinkEntry(request.output, target)]))
    return AssembledImage(output, meta)



async def assembled_with_facts(request: AssembleRequest) -> AssembledImage:
    """The image, its nodes described for its SBOM meanwhile: a changed node's `describe`
    Process runs beside its layer Process rather than after the assembly."""
    if not request.field_set.sbom.value:
        return await Get(AssembledImage, AssembleRequest, request)
    closure = await Get(ImageClosure, ImageClosureRequest, request.field_set.closure_request())
    image, _ = await MultiGet(
        Get(AssembledImage, AssembleRequest, request),
        Get(NodesFacts, NodesFactsRequest(closure.nodes)),
    )
    return image


def split_repo_tag(repo_tag: str) -> Tuple[str, str]:
    """(repository, tag) of a `repository:tag` (a registry's port is in the repository)."""
    repository, tag = repo_tag.rsplit(":", 1)
    return repository, tag


def rules():
    return collect_rules()
