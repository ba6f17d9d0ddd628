"""An image from its inputs: the types the pipeline hands on (`AssembleRequest`, `ImageInputs`,
`AssembledImage`), reading the inputs as the core reads an image, and the assembly itself (an
OCI layout by digest operations, an archive by the `assemble` Process)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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
)
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from strata.core.oci.formats import FORMATS, load_image, metadata
from strata.core.oci.layout import OCI_LAYOUT, oci_contents
from strata.core.oci.model import Image, Layer
from strata.rules.closure import ImageClosure, ImageClosureRequest
from strata.rules.image.field_set import OciImageFieldSet
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


@dataclass(frozen=True)
class AssembledImage:
    """The assembly Process's output (an archive file or a layout directory) and metadata."""

    output: Digest
    metadata: dict


@dataclass(frozen=True)
class AssembleRequest:
    field_set: OciImageFieldSet
    fmt: str
    output: str
    compression: Optional[str] = None  # overrides the field's, e.g. for publishing


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
        self, directory: str, files: Iterable[Tuple[str, Union[bytes, Layer]]]
    ) -> List[Union[FileEntry, FileContent]]:
        """Files the core decided, under `directory`, to create a digest of: bytes, or a layer's
        blob, which is the very file its layer Process wrote, at a new path (no byte copied)."""
        return [
            FileEntry(f"{directory}/{path}", self.file_digest(content.blob_path))
            if isinstance(content, Layer)
            else FileContent(f"{directory}/{path}", content)
            for path, content in files
        ]


async def read_image(inputs: ImageInputs) -> Tuple[DigestFiles, Image]:
    """The image as the core reads it (`load_image`), from the inputs' digest: no Process."""
    content = inputs.content
    entries, contents = await MultiGet(
        Get(DigestEntries, Digest, content),
        Get(DigestContents, DigestSubset(content, PathGlobs(["**/*.json"]))),
    )
    files = DigestFiles(entries, contents)
    return files, load_image(SPEC, files)


def spec_path(directory: str) -> str:
    """Where the image spec is when the inputs' `content` is put under `directory`."""
    return os.path.join(directory, SPEC)


@dataclass(frozen=True)
class LayoutRequest:
    """An OCI layout of the image `inputs` describe, at `output`."""

    inputs: ImageInputs
    output: str


@rule(desc="Composing an OCI layout", level=LogLevel.DEBUG)
async def compose_oci_layout(request: LayoutRequest) -> AssembledImage:
    """An OCI layout is its blobs named by digest, plus index.json and oci-layout: made with
    digest operations, each layer's blob is the very file its layer Process wrote, at a new
    path, so composing an image copies no byte. The core validates the inputs and decides every
    byte, exactly as its `assemble` subcommand does."""
    files, img = await read_image(request.inputs)
    blobs, index = oci_contents(img)
    layout = files.placed(request.output, [
        *((f"blobs/sha256/{hex_id}", blob) for hex_id, blob in blobs),
        ("index.json", index),
        ("oci-layout", OCI_LAYOUT),
    ])
    return AssembledImage(await Get(Digest, CreateDigest(layout)), metadata(img))


@rule(desc="Assembling an OCI image", level=LogLevel.DEBUG)
async def assemble_image(
    request: AssembleRequest, tool: ImageTool, strata: StrataSubsystem
) -> AssembledImage:
    address = request.field_set.address
    inputs = await Get(ImageInputs, AssembleRequest, request)
    if FORMATS[request.fmt].directory:
        return await Get(AssembledImage, LayoutRequest(inputs, request.output))
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv(
                "assemble", "--spec", SPEC, "--out", request.output, "--metadata", "image.json"
            ),
            input_digest=inputs.digest,
            output_files=(request.output, "image.json"),
            description=f"Assembling {address}",
            level=LogLevel.INFO,
            cache_scope=(
                ProcessCacheScope.SUCCESSFUL if inputs.reproducible
                else ProcessCacheScope.PER_SESSION
            ),
            remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
        ),
    )
    output = await Get(Digest, DigestSubset(result.output_digest, PathGlobs([request.output])))
    metadata = await Get(
        DigestContents, DigestSubset(result.output_digest, PathGlobs(["image.json"]))
    )
    return AssembledImage(output, json.loads(metadata[0].content))


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
