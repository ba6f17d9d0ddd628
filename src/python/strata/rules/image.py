"""Assembling an `oci_image`: `package` writes it to dist/, `run` loads it and runs it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Optional, Tuple

from pants.base.build_root import BuildRoot
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths
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
    PathGlobs,
)
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.addresses import Address, AddressInput
from pants.engine.target import (
    InvalidFieldException,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from strata.core.debian.rootfs import merged_usr_entries, nss_files
from strata.core.graph.closure import SYMLINK, PathConflict, check_paths
from strata.core.graph.image_files import (
    ImageFiles,
    PathEntry,
    find_program,
    program_problem,
    read_path_list,
)
from strata.core.oci import platforms
from strata.core.oci.image import epoch_seconds, inherit_config, platform_conflicts
from strata.core.oci.docker_archive import DOCKER_MAX_LAYERS, check_docker_layer_count
from strata.core.oci.formats import FORMATS, metadata
from strata.core.oci.layout import OCI_LAYOUT, oci_contents
from strata.core.oci.model import Image, Layer, load_image
from strata.core.spec import Commands, ImageSpec, LayerRef, Venv, normalise_path
from strata.rules.base import BASE_DIR, BaseImage, ExternalBaseRequest, ImportBaseRequest
from strata.rules.closure import (
    ImageClosure,
    ImageClosureRequest,
    InvalidImageContent,
    LayerPermissions,
    add_path_claims,
    owned_paths,
)
from strata.rules.commands import BuildCommands, CommandsRequest
from strata.rules.debian import DEB_DIR
from strata.rules.layers import (
    BuiltLayer,
    BuiltLayers,
    CustomisationLayer,
    FilesLayerRequest,
    LayerSettings,
    LayersRequest,
)
from strata.rules.nodes import FileTree
from strata.rules.nodes.debian import DebianPackage
from strata.rules.nodes.nix import nix_customisation, nix_paths
from strata.rules.nodes.python_venv import PythonPart
from strata.rules.sbom import NodesFacts, NodesFactsRequest, Sbom, SbomRequest, SbomSources
from strata.rules.tool import ImageTool, ZstdBinary, ZstdBinaryRequest
from strata.subsystems import StrataSubsystem
from strata.target_types import (
    Compression,
    OciArchitectureField,
    OciBaseField,
    OciCaCertificatesField,
    OciCommandTimeoutField,
    OciCommandToolsField,
    OciCompressionField,
    OciCreatedField,
    OciDirectoriesField,
    OciEmbedSbomField,
    OciEntrypointField,
    OciExtraCommandsField,
    OciFakeNssField,
    OciFakeRootCommandsField,
    OciGidField,
    OciGnameField,
    OciImageArchiveTarget,
    OciImageDependenciesField,
    OciIncludeNixDbField,
    OciImageOutputPathField,
    OciImageTarget,
    OciMaxLayersField,
    OciMtimeField,
    OciOsField,
    OciOutputFormatField,
    OciPermissionsField,
    OciPullTarget,
    OciSbomField,
    OciRepositoryField,
    OciSymlinksField,
    OciTagField,
    OciUidField,
    OciUnameField,
    OciVariantField,
    OutputFormat,
    EMBEDDED_SBOM_DIR,
    image_platform,
    runtime_config,
)


# The formats that read every layer as a tar: a base's zstd layers need the zstd binary.
_TAR_LAYER_FORMATS = (OutputFormat.DOCKER_ARCHIVE, OutputFormat.ROOTFS)


@dataclass(frozen=True)
class OciImageFieldSet(PackageFieldSet, RunFieldSet):
    required_fields = (OciImageDependenciesField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    dependencies: OciImageDependenciesField
    repository: OciRepositoryField
    tag: OciTagField
    max_layers: OciMaxLayersField
    created: OciCreatedField
    mtime: OciMtimeField
    uid: OciUidField
    gid: OciGidField
    uname: OciUnameField
    gname: OciGnameField
    architecture: OciArchitectureField
    os: OciOsField
    variant: OciVariantField
    symlinks: OciSymlinksField
    directories: OciDirectoriesField
    output_format: OciOutputFormatField
    compression: OciCompressionField
    output_path: OciImageOutputPathField
    base: OciBaseField
    fake_nss: OciFakeNssField
    ca_certificates: OciCaCertificatesField
    sbom: OciSbomField
    embed_sbom: OciEmbedSbomField
    permissions: OciPermissionsField
    extra_commands: OciExtraCommandsField
    fake_root_commands: OciFakeRootCommandsField
    command_tools: OciCommandToolsField
    command_timeout: OciCommandTimeoutField
    include_nix_db: OciIncludeNixDbField
    entrypoint: OciEntrypointField

    def platform(self) -> dict:
        return image_platform(self.architecture.value, self.os.value, self.variant.value)

    def output_file(self) -> str:
        return output_file(self.output_path, self.output_format.value)

    def closure_request(self) -> ImageClosureRequest:
        return ImageClosureRequest(self.address, self.dependencies, bool(self.base.value))

    def layer_compression(self) -> str:
        # docker-archive layers are plain tars: their digests are their diff_ids; rootfs reads
        # the layers as tars.
        if OutputFormat(self.output_format.value) in _TAR_LAYER_FORMATS:
            return "none"
        return self.compression.value

    def publish_compression(self) -> str:
        """Registries get compressed layers: uncompressed ones would be pushed byte for byte."""
        if self.compression.value == Compression.NONE.value:
            return Compression.GZIP.value
        return self.compression.value


def output_file(output_path: OciImageOutputPathField, fmt: str) -> str:
    """Where `package` writes an image (or index) of format `fmt` under dist/."""
    directory = FORMATS[fmt].directory
    return output_path.value_or_default(file_ending=None if directory else "tar")


def _with_venv_entrypoint(address: Address, config: dict, closure: ImageClosure) -> dict:
    """An image without an `entrypoint` of its own runs its `python_venv`'s launcher."""
    if "Entrypoint" in config:
        return config
    commands = sorted({n.kind.entrypoint for n in closure.nodes
                       if isinstance(n.kind, PythonPart) and n.kind.entrypoint})
    if len(commands) > 1:
        raise InvalidFieldException(
            f"{address} holds several `python_venv` targets with an entry point "
            f"({', '.join(c[0] for c in commands)}): set its `entrypoint` field to say which "
            "one the container runs."
        )
    return {**config, "Entrypoint": list(commands[0])} if commands else config


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


_SPEC = "image-spec.json"
_CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
_BASE_LAYOUT = "base-image"
_RUN_LAYOUT = "image"


async def _prefixed_layers(layers: BuiltLayers, dirs: List[str]) -> Tuple[Digest, ...]:
    return await MultiGet(
        Get(Digest, AddPrefix(layer.digest, d)) for layer, d in zip(layers.layers, dirs)
    )


async def _ca_bundle(fs: OciImageFieldSet, closure: ImageClosure, tool: ImageTool) -> Digest:
    """/etc/ssl/certs/ca-certificates.crt, from the image's ca-certificates package."""
    package = next((n for n in closure.nodes if n.kind == DebianPackage("ca-certificates")), None)
    if package is None:
        raise InvalidFieldException(
            f"The `ca_certificates` field of {fs.address} needs the `ca-certificates` Debian "
            "package in the image: add it to one of its `debian_packages` targets."
        )
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv(
                "ca-bundle", "--deb", f"{DEB_DIR}/ca-certificates.deb", "--out", _CA_BUNDLE
            ),
            input_digest=await Get(Digest, MergeDigests([tool.digest, package.digest])),
            output_files=(_CA_BUNDLE,),
            description=f"Generating the CA bundle of {fs.address}",
            level=LogLevel.INFO,
        ),
    )
    return result.output_digest


async def _generated(
    fs: OciImageFieldSet, closure: ImageClosure, tool: ImageTool, nix_db: Digest
) -> Digest:
    """The customisation layer's generated files: the CA bundle and the Nix database."""
    ca = await _ca_bundle(fs, closure, tool) if fs.ca_certificates.value else EMPTY_DIGEST
    if EMPTY_DIGEST in (ca, nix_db):
        return nix_db if ca == EMPTY_DIGEST else ca
    return await Get(Digest, MergeDigests([ca, nix_db]))


async def _check_customisation(
    fs: OciImageFieldSet,
    closure: ImageClosure,
    custom: CustomisationLayer,
    nix_symlinks: Tuple[Tuple[str, str, str], ...],
) -> None:
    """The customisation layer sits on top of every other: a path it sets would silently turn
    what a dependency places there into a directory or a symlink. Like a conflict between two
    dependencies, that is an error, naming the field, the path and the dependency.
    `nix_symlinks` are the (owner, path, target) of the symlinks Nix paths add to it."""
    def owner(field) -> str:
        return f"the `{field.alias}` field of {fs.address}"

    files: List[Tuple[str, str, str]] = []
    dirs: List[Tuple[str, str]] = []
    for path, target in (fs.symlinks.value or {}).items():
        files.append((owner(fs.symlinks), normalise_path(path, "symlinks"), SYMLINK + target))
    files.extend((who, path, SYMLINK + target) for who, path, target in nix_symlinks)
    for path, _ in custom.directories:
        dirs.append((owner(fs.directories), normalise_path(path, "directories")))
    for path, data in custom.files:
        files.append((owner(fs.fake_nss), path, f"{hashlib.sha256(data).hexdigest()}:0"))
    if custom.merged_usr:
        usr = f"the merged-/usr symlinks of {fs.address} (it has Debian packages)"
        files.extend((usr, e.path, SYMLINK + e.target)
                     for e in merged_usr_entries() if e.type == "symlink")
    if not files and not dirs and custom.generated == EMPTY_DIGEST:
        return
    trees = [n for n in closure.nodes if isinstance(n.kind, FileTree)]
    owners = [owner(fs.ca_certificates), *(n.key for n in trees)]
    digests = [custom.generated, *(n.digest for n in trees)]
    all_entries = await MultiGet(Get(DigestEntries, Digest, d) for d in digests)
    for claimant, entries in zip(owners, all_entries):
        add_path_claims(claimant, entries, files, dirs)
    try:
        check_paths(files, dirs, owned_paths(closure.nodes))
    except PathConflict as e:
        raise InvalidImageContent(f"Cannot build {fs.address}: {e}") from e


async def _commands(fs: OciImageFieldSet) -> Optional[Commands]:
    """The image's build-time scripts and their tools, or None when it has no script."""
    extra, fake_root = fs.extra_commands.value or None, fs.fake_root_commands.value or None
    if extra is None and fake_root is None:
        return None
    request = CommandsRequest(fs.address, extra, fake_root, tuple(fs.command_tools.value or ()),
                              fs.command_timeout.value)
    return (await Get(BuildCommands, CommandsRequest, request)).commands


async def _binary(name: str) -> str:
    """The installed binary's path, or "" when it is not installed."""
    found = await Get(
        BinaryPaths,
        BinaryPathRequest(binary_name=name, search_path=["/usr/bin", "/usr/local/bin", "/bin"]),
    )
    return found.first_path.path if found.first_path else ""


async def _loader(choice: str) -> str:
    if choice == "stdout":
        return ""
    names = ["podman", "docker"] if choice == "auto" else [choice]
    for name in names:
        path = await _binary(name)
        if path:
            return path
    if choice == "auto":
        return ""
    raise EnvironmentError(f"[strata].loader is {choice!r}, but `{choice}` is not installed.")


@dataclass(frozen=True)
class BaseRequest:
    """The `base` field of `image`, for an image whose own layers use `compression`."""

    spec: str
    image: Address
    compression: str
    platform: str = "linux/amd64"  # the image's `os/arch[/variant]`, which a base index serves


@rule(desc="Resolving an image's `base` field", level=LogLevel.DEBUG)
async def resolve_base(request: BaseRequest) -> BaseImage:
    origin = f"the `base` field of {request.image}"
    address = await Get(
        Address,
        AddressInput,
        AddressInput.parse(
            request.spec, relative_to=request.image.spec_path, description_of_origin=origin
        ),
    )
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin=origin))
    tgt = wrapped.target
    if isinstance(tgt, OciImageTarget):
        base_fs = OciImageFieldSet.create(tgt)
        assemble = AssembleRequest(
            base_fs, OutputFormat.OCI.value, _BASE_LAYOUT, request.compression
        )
        built, inputs = await MultiGet(
            Get(AssembledImage, AssembleRequest, assemble),
            Get(ImageInputs, AssembleRequest, assemble),
        )
        base, sbom = await MultiGet(
            Get(BaseImage, ImportBaseRequest(built.output, _BASE_LAYOUT, str(address))),
            # What the base holds, as its own SBOM says it.
            Get(Sbom, SbomRequest(
                inputs.sbom_sources, *split_repo_tag(built.metadata["repo_tag"]),
                built.metadata["manifest_digest"], "base-sbom", str(address),
            )),
        )
        spdx = await Get(Digest, DigestSubset(sbom.digest, PathGlobs([sbom.files[0]])))
        own = inputs.sbom_sources
        return dataclasses.replace(
            base, name=base_fs.repository.value_or_default(address), sboms=spdx,
            paths=(*(own.base.paths if own.base else ()), *(l.paths for l in own.layers)),
        )
    if isinstance(tgt, (OciImageArchiveTarget, OciPullTarget)):
        return await Get(BaseImage, ExternalBaseRequest(tgt, request.platform))
    raise InvalidFieldException(
        f"The `base` field of {request.image} names {address}, a `{tgt.alias}` target: "
        "expected an `oci_image`, `oci_image_archive` or `oci_pull` target."
    )


async def _base_config(base: BaseImage) -> dict:
    """The base image's config, as its base dir holds it."""
    config = await Get(
        DigestContents, DigestSubset(base.digest, PathGlobs([f"{BASE_DIR}/config.json"]))
    )
    return json.loads(config[0].content)


async def _check_base_platform(fs: OciImageFieldSet, base: BaseImage) -> None:
    """An image of another platform than its base's would not run the base's binaries: an
    error naming both fields, before any layer is built (the core's check names neither)."""
    conflicts = platform_conflicts(fs.platform(), await _base_config(base))
    if conflicts:
        key, mine, theirs = conflicts[0]
        raise InvalidFieldException(
            f"The `{key}` field of {fs.address} is {mine!r}, but the image its `base` field "
            f"names, {fs.base.value}, is {key} {theirs!r}: the base's binaries would not run. "
            f"Set `{key}` to {theirs!r}, or use a base of {mine!r}."
        )


class LayerPaths:
    """A layer's path list, read once per pantsd: equal to another when read from one digest."""

    def __init__(self, digest: Digest, entries: Dict[str, PathEntry]) -> None:
        self.digest = digest
        self.entries = entries

    def __eq__(self, other) -> bool:
        return isinstance(other, LayerPaths) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)


@dataclass(frozen=True)
class LayerPathsRequest:
    digest: Digest  # a layer Process's path list, alone


@rule(desc="Reading a layer's path list", level=LogLevel.DEBUG)
async def layer_paths(request: LayerPathsRequest) -> LayerPaths:
    (content,) = await Get(DigestContents, Digest, request.digest)
    return LayerPaths(request.digest, read_path_list(json.loads(content.content)))


async def _check_programs(
    fs: OciImageFieldSet, closure: ImageClosure, config: dict, layers: BuiltLayers,
    base: Optional[BaseImage],
) -> None:
    """The programs the image starts must be in it: each `python_venv`'s interpreter and the
    entrypoint's program, looked up in the path lists of its layers (and its base's), symlinks
    followed. An error names the target and field, not podman's `no such file or directory`
    when the container starts."""
    digests = [*(base.paths if base is not None else ()), *(l.paths for l in layers.layers)]
    lists = await MultiGet(Get(LayerPaths, LayerPathsRequest(d)) for d in digests)
    files = ImageFiles([paths.entries for paths in lists])
    for node in closure.nodes:
        part = node.kind.part if isinstance(node.kind, PythonPart) else None
        if isinstance(part, Venv):
            problem = program_problem(files, f"/{part.python}")
            if problem:
                raise InvalidFieldException(
                    f"The `python` field of {node.key} is /{part.python}, but in the image "
                    f"{fs.address}, {problem}: add a `debian_packages` target with "
                    f"`python{part.version}` to the image's dependencies, or set `python` to "
                    "the interpreter the image (or its base) has."
                )
    own = config
    if base is not None:
        config = inherit_config((await _base_config(base)).get("config") or {}, own)
    entrypoint = config.get("Entrypoint") or []
    if not entrypoint:
        return
    program = entrypoint[0]
    found, problems = find_program(
        files, program, config.get("Env") or [], config.get("WorkingDir") or "/"
    )
    if found:
        return
    if fs.entrypoint.value:
        origin = f"The `entrypoint` field of {fs.address} runs {program!r}"
    elif "Entrypoint" in own:
        origin = (f"The entrypoint of {fs.address}, its `python_venv`'s launcher, is "
                  f"{program!r}")
    else:
        origin = f"{fs.address} runs {program!r}, the entrypoint of its `base` {fs.base.value}"
    where = problems[0] if "/" in program else (
        f"no directory of the image's PATH holds it ({'; '.join(problems)})"
    )
    raise InvalidFieldException(
        f"{origin}, but {where}: the image must hold it as an executable file. Add what "
        "provides it to the image's `dependencies` (e.g. a `debian_packages` target), or "
        "correct `entrypoint`."
    )


async def _sbom_layer(
    fs: OciImageFieldSet, sources: SbomSources, settings: LayerSettings
) -> BuiltLayer:
    """`embed_sbom`: the SBOM of the layers below, in a layer on top."""
    sbom = await Get(
        Sbom,
        SbomRequest(
            sources,
            fs.repository.value_or_default(fs.address),
            fs.tag.value,
            None,
            f"{EMBEDDED_SBOM_DIR.lstrip('/')}/image",
            str(fs.address),
        ),
    )
    return await Get(
        BuiltLayer,
        FilesLayerRequest(sbom.digest, settings, "SBOM", f"Building {fs.address}: SBOM layer"),
    )


@rule(desc="Preparing an OCI image's layers", level=LogLevel.DEBUG)
async def prepare_image(request: AssembleRequest, tool: ImageTool) -> ImageInputs:
    fs = request.field_set
    address = fs.address
    closure, wrapped = await MultiGet(
        Get(ImageClosure, ImageClosureRequest, fs.closure_request()),
        Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin="oci_image")),
    )

    mtime = fs.mtime.value or fs.created.value
    merged_usr = any(isinstance(node.kind, DebianPackage) for node in closure.nodes)
    nix = await nix_customisation(fs, closure, merged_usr, epoch_seconds(mtime))
    customisation = CustomisationLayer(
        symlinks=tuple(sorted(
            [*(fs.symlinks.value or {}).items(), *((p, t) for _, p, t in nix.symlinks)]
        )),
        directories=tuple(
            sorted((p, int(m, 8)) for p, m in (fs.directories.value or {}).items())
        ),
        files=tuple(sorted(nss_files().items())) if fs.fake_nss.value else (),
        generated=await _generated(fs, closure, tool, nix.generated),
        merged_usr=merged_usr,
        commands=await _commands(fs),
        permissions=LayerPermissions(
            str(address),
            fs.permissions.value,
            f"what {address} adds on top (`directories`, `symlinks`, `fake_nss`, "
            "`ca_certificates`, merged-/usr symlinks, what its build-time commands leave); an "
            "`oci_layer`'s `permissions` reach a dependency's files",
        ) if fs.permissions.value else None,
    )
    await _check_customisation(fs, closure, customisation, nix.symlinks)
    compression = request.compression or fs.layer_compression()
    base = None
    if fs.base.value:
        base = await Get(
            BaseImage,
            BaseRequest(fs.base.value, address, compression, platforms.describe(fs.platform())),
        )
        await _check_base_platform(fs, base)
    embed_sbom = fs.embed_sbom.value
    taken_by_base = base.layer_count if base else 0
    own_layers = fs.max_layers.value - taken_by_base - (1 if embed_sbom else 0)
    if own_layers < 1:
        taken = [f"its base has {taken_by_base} layers"] if base else []
        taken += ["`embed_sbom` takes one"] if embed_sbom else []
        raise InvalidFieldException(
            f"The `max_layers` field of {address} is {fs.max_layers.value}, but "
            f"{' and '.join(taken)}: raise `max_layers` to leave room for at least one "
            "layer of its own."
        )
    # With room for one layer only, the customisation content joins it (dockerTools'
    # `buildImage`); otherwise it is a layer of its own, on top.
    single_layer = own_layers == 1
    # nixpkgs always keeps the top layer for the customisation: an image of Nix paths is
    # layered as its `buildLayeredImage` would layer it, with or without customisation content.
    keeps_top = bool(customisation) or any(nix_paths(closure))
    budget = own_layers - (1 if keeps_top and not single_layer else 0)
    settings = LayerSettings(
        mtime=epoch_seconds(mtime),
        reproducible=mtime != "now",
        uid=fs.uid.value,
        gid=fs.gid.value,
        uname=fs.uname.value,
        gname=fs.gname.value,
        compression=compression,
    )
    layers = await Get(
        BuiltLayers,
        LayersRequest(
            closure=closure,
            budget=budget,
            settings=settings,
            customisation=customisation,
            description=f"Building {address}",
            single_layer=single_layer,
        ),
    )
    config = _with_venv_entrypoint(address, runtime_config(wrapped.target), closure)
    await _check_programs(fs, closure, config, layers, base)
    sbom_sources = SbomSources(
        closure.nodes, layers.layers, base, fs.created.value, FrozenDict(fs.platform())
    )
    if embed_sbom:
        layers = BuiltLayers(
            (*layers.layers, await _sbom_layer(fs, sbom_sources, settings))
        )
        sbom_sources = dataclasses.replace(sbom_sources, layers=layers.layers)
    if OutputFormat(request.fmt) == OutputFormat.DOCKER_ARCHIVE:
        try:
            check_docker_layer_count(taken_by_base + len(layers.layers))
        except ValueError as e:
            raise InvalidFieldException(
                f"The `max_layers` field of {address} is {fs.max_layers.value}: {e}. Lower it to "
                f"{DOCKER_MAX_LAYERS} at most, or use `output_format=\"oci\"`."
            ) from e

    layer_dirs = [f"layers/{i:03d}" for i in range(len(layers.layers))]
    created = fs.created.value
    zstd = None
    if base is not None and OutputFormat(request.fmt) in _TAR_LAYER_FORMATS:
        # A base's zstd layers are read decompressed: Docker cannot read zstd.
        zstd = (await Get(ZstdBinary, ZstdBinaryRequest())).path
    spec = ImageSpec(
        format=request.fmt,
        layers=tuple(LayerRef(d, layer.comment) for d, layer in zip(layer_dirs, layers.layers)),
        config={
            **fs.platform(),
            "created": created,
            "config": config,
        },
        repository=fs.repository.value_or_default(address),
        tag=fs.tag.value,
        base=BASE_DIR if base is not None else None,
        zstd=zstd,
    )
    prefixed = await _prefixed_layers(layers, layer_dirs)
    spec_digest = await Get(
        Digest,
        CreateDigest([FileContent(_SPEC, json.dumps(spec.to_json(), sort_keys=True).encode())]),
    )
    content = await Get(
        Digest, MergeDigests([spec_digest, *prefixed, *([base.digest] if base else [])])
    )
    input_digest = await Get(Digest, MergeDigests([tool.digest, content]))
    return ImageInputs(
        input_digest, content, reproducible="now" not in (created, mtime),
        sbom_sources=sbom_sources,
    )


class _DigestFiles:
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


async def read_image(inputs: ImageInputs) -> Tuple[_DigestFiles, Image]:
    """The image as the core reads it (`load_image`), from the inputs' digest: no Process."""
    content = inputs.content
    entries, contents = await MultiGet(
        Get(DigestEntries, Digest, content),
        Get(DigestContents, DigestSubset(content, PathGlobs(["**/*.json"]))),
    )
    files = _DigestFiles(entries, contents)
    return files, load_image(_SPEC, files)


def spec_path(directory: str) -> str:
    """Where the image spec is when the inputs' `content` is put under `directory`."""
    return os.path.join(directory, _SPEC)


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
    output = request.output
    files, img = await read_image(request.inputs)
    blobs, index = oci_contents(img)
    layout = [
        FileEntry(f"{output}/blobs/sha256/{hex_id}", files.file_digest(blob.blob_path))
        if isinstance(blob, Layer)
        else FileContent(f"{output}/blobs/sha256/{hex_id}", blob)
        for hex_id, blob in blobs
    ]
    layout.append(FileContent(f"{output}/index.json", index))
    layout.append(FileContent(f"{output}/oci-layout", OCI_LAYOUT))
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
                "assemble", "--spec", _SPEC, "--out", request.output, "--metadata", "image.json"
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


@dataclass(frozen=True)
class PlaceSbom:
    """A log line of `package` that, as it is rendered, moves the image's SBOM documents from
    `pending` (a directory beside the image) to their names (`final`), so that they appear there
    only once the image is written.

    Pants 2.17.1's `package` goal (pants/core/goals/package.py) deletes every artifact's
    `relpath`, writes all packages' files in one `Workspace.write_digest`, which copies every
    file at once and in no order (the engine's `materialize_directory_children` joins them all)
    and on a failure (a full disk) leaves what it wrote, and only then, if that succeeded,
    renders each artifact's `extra_log_lines` with `str()`. That is the one point a plugin
    reaches after its files are written."""

    pending: str  # absolute paths
    final: Tuple[str, ...]

    def __str__(self) -> str:
        if os.path.isdir(self.pending):  # rendered once more (a second log of the line): moved
            for name in self.final:
                os.replace(os.path.join(self.pending, os.path.basename(name)), name)
            os.rmdir(self.pending)
        names = " and ".join(os.path.basename(name) for name in self.final)
        return f"Moved to {names}, beside the image, now that it is written."


@rule(desc="Packaging an OCI image", level=LogLevel.DEBUG)
async def package_oci_image(
    field_set: OciImageFieldSet, dist_dir: DistDir, build_root: BuildRoot
) -> BuiltPackage:
    output = field_set.output_file()
    request = AssembleRequest(field_set, field_set.output_format.value, output)
    image = await assembled_with_facts(request)
    meta = image.metadata
    artifacts = [
        BuiltPackageArtifact(
            output,
            extra_log_lines=(
                f"Image: {meta['repo_tag']}",
                f"Manifest digest: {meta['manifest_digest']}",
                f"Layers: {len(meta['layers'])}",
            ),
        )
    ]
    digest = image.output
    if field_set.sbom.value:
        # Written to a directory of their own, and moved beside the image once it is written
        # (PlaceSbom): a failed write (a full disk) leaves no SBOM claiming an image that is
        # not there. Pants deletes every artifact path before it writes: the old image's SBOM
        # and a failed run's pending directory.
        name = output[: -len(".tar")] if output.endswith(".tar") else output
        directory, base = os.path.split(name)
        pending = os.path.join(directory, f".{base}.sbom-pending")
        inputs = await Get(ImageInputs, AssembleRequest, request)
        sbom = await Get(
            Sbom,
            SbomRequest(
                inputs.sbom_sources, *split_repo_tag(meta["repo_tag"]), meta["manifest_digest"],
                os.path.join(pending, base), str(field_set.address),
            ),
        )
        final = tuple(os.path.join(directory, os.path.basename(path)) for path in sbom.files)
        in_dist = partial(os.path.join, build_root.path, str(dist_dir.relpath))
        artifacts.append(BuiltPackageArtifact(
            pending, extra_log_lines=(PlaceSbom(in_dist(pending), tuple(map(in_dist, final))),)
        ))
        artifacts.extend(BuiltPackageArtifact(path) for path in final)
        digest = await Get(Digest, MergeDigests([digest, sbom.digest]))
    return BuiltPackage(digest, tuple(artifacts))


def split_repo_tag(repo_tag: str) -> Tuple[str, str]:
    """(repository, tag) of a `repository:tag` (a registry's port is in the repository)."""
    repository, tag = repo_tag.rsplit(":", 1)
    return repository, tag


def storage_name(repo_tag: str) -> str:
    """The name `podman load` gives an archive's image: a name with no registry host goes under
    `localhost/` (the containers tools would resolve it to their default registry)."""
    first = repo_tag.split("/", 1)[0]
    has_host = "/" in repo_tag and ("." in first or ":" in first or first == "localhost")
    return repo_tag if has_host else f"localhost/{repo_tag}"


def run_script(load: str, runtime: str, image_name: str, run_args: Tuple[str, ...]) -> str:
    """The bash script `pants run` runs in the client's terminal: `load` (a shell command), then
    the image in a container of `runtime` (podman or docker) whose exit code is the script's,
    with the script's arguments (those after `--`). Only the script can tell whether the
    client has a terminal (`-t`), so it decides `--interactive --tty`. On SIGINT/SIGTERM (Pants
    sends SIGINT to the script's process group on Ctrl-C, then SIGKILL 3 s later) it kills the
    runtime's client and removes the container itself: a container's PID 1 ignores a SIGINT it
    has no handler for, and a killed client leaves its container running. The client runs in
    the background, as only then does `wait` let the trap run at once; the removal runs in a
    session of its own, so Pants' SIGKILL of the group cannot stop it half-way."""
    quote = shlex.quote
    force = "--force --time 0" if os.path.basename(runtime) == "podman" else "--force"
    run = " ".join(quote(a) for a in ("--rm", "--pull=never", *run_args))
    return "\n".join(
        [
            "set -o pipefail",
            f"cd {{chroot}} && {{ {load}; }} >&2 || exit",  # stdout is the container's alone
            "container=strata-run-$$-$RANDOM$RANDOM",
            "stop() {",
            '  [ -n "${client-}" ] && kill -KILL "$client" 2>/dev/null && wait "$client"',
            f'  setsid {quote(runtime)} rm {force} "$container" >/dev/null 2>&1',
            "}",
            "trap 'trap - INT TERM HUP; stop; exit 130' INT TERM HUP",
            "terminal=()",
            "if [ -t 0 ] && [ -t 1 ]; then terminal=(--interactive --tty); fi",
            f'{quote(runtime)} run --name "$container" "${{terminal[@]}}" {run} '
            f'{quote(image_name)} "$@" <&0 &',
            "client=$!",
            'wait "$client"',
        ]
    )


@rule(desc="Loading an OCI image", level=LogLevel.DEBUG)
async def run_oci_image(
    field_set: OciImageFieldSet, tool: ImageTool, strata: StrataSubsystem
) -> RunRequest:
    """Loads the image with `[strata].loader` (only the layers podman's storage lacks, when
    skopeo is there), then runs it unless `[strata].load_only` (or the `stdout` loader) says
    not to."""
    loader = await _loader(strata.loader)
    runs = bool(loader) and not strata.load_only
    skopeo = await _binary("skopeo") if os.path.basename(loader) == "podman" else ""
    if skopeo:
        # podman's storage gets the image as an OCI layout, which costs no copy to compose,
        # through skopeo, which reuses the layers storage already holds: after a one-file
        # change only that file's layer is read. (`podman load` reads the whole archive.)
        image = await Get(
            AssembledImage,
            AssembleRequest(
                field_set, OutputFormat.OCI.value, _RUN_LAYOUT, Compression.NONE.value
            ),
        )
        name = storage_name(image.metadata["repo_tag"])
        copy = (skopeo, "--insecure-policy", "copy", "--quiet", f"oci:{_RUN_LAYOUT}",
                f"containers-storage:{name}")
        load = (f"{' '.join(shlex.quote(a) for a in copy)} "
                f"&& echo {shlex.quote(f'Loaded image: {name}')}")
        digest = image.output
    else:
        # Plain tar layers, whatever `package` writes: `docker load` reads no other.
        inputs = await Get(
            ImageInputs,
            AssembleRequest(
                field_set, OutputFormat.DOCKER_ARCHIVE.value, "image.tar", Compression.NONE.value
            ),
        )
        stream = " ".join(shlex.quote(a) for a in tool.argv("stream", "--spec", _SPEC))
        load = stream + (f" | {shlex.quote(loader)} load" if loader else "")
        digest = inputs.digest
        if runs:
            repo_tag = (await read_image(inputs))[1].repo_tag
            # docker keeps the archive's name; podman puts a host-less one under localhost/.
            name = storage_name(repo_tag) if os.path.basename(loader) == "podman" else repo_tag
    if not runs:
        return RunRequest(
            digest=digest, args=("/bin/bash", "-c", f"set -o pipefail; cd {{chroot}} && {load}")
        )
    script = run_script(load, loader, name, tuple(strata.run_args))
    return RunRequest(digest=digest, args=("/bin/bash", "-c", script, "strata-run"))


def rules():
    return [
        *collect_rules(),
        *OciImageFieldSet.rules(),
        UnionRule(PackageFieldSet, OciImageFieldSet),
    ]
