"""docker-archive, OCI image layout and oci-archive writers; every blob is streamed, none is
held in memory. Also reads the inputs they take: `layer` outputs and base dirs."""

import hashlib
import json
import os
import shutil
import sys
import zlib

from strata.core.atomic import (
    write_bytes_atomically,
    write_dir_atomically,
    write_file_atomically,
)
from strata.core.build.compression import SUFFIXES, ZstdReader
from strata.core.build.hashing import HashingReader
from strata.core.build.tarstream import TarWriter
from strata.core.errors import InvalidInput, StrataError
from strata.core.oci import image
from strata.core.spec import BaseInfo, ImageSpec, LayerRef

# mtime of every entry of the archives written here (layers carry their own): fixed for
# reproducibility, 1 like the layers' default because some tools read 0 as "unset".
ARCHIVE_MTIME = 1
CHUNK_SIZE = 1 << 20

OCI_LAYOUT = image.canonical_json({"imageLayoutVersion": "1.0.0"})


class Layer:
    """One `layer` output directory, or a base dir's layer: its layer.json and blob path."""

    def __init__(self, info: dict, blob_path: str, comment: str, base: bool = False):
        self.info = info
        self.blob_path = blob_path
        self.comment = comment
        self.base = base


class Image:
    """A validated image spec with its layers (a base's first) read and its config serialised."""

    def __init__(self, fmt: str, layers: list, config: dict, repository: str, tag, zstd=None):
        self.format = fmt
        self.layers = layers
        self.zstd = zstd
        self.config_bytes = image.config_bytes(config)
        self.config_digest = image.sha256_digest(self.config_bytes)
        self.platform = image.platform_of(config)
        self.tag = image.content_tag(self.config_digest) if tag is None else tag
        self.repo_tag = image.repo_tag(repository, self.tag)

    @property
    def layer_infos(self) -> list:
        return [layer.info for layer in self.layers]

    @property
    def docker_layer_infos(self) -> list:
        return [as_tar(info) for info in self.layer_infos]

    def manifest_bytes(self, oci: bool) -> bytes:
        infos = self.layer_infos if oci else self.docker_layer_infos
        return image.canonical_json(image.make_manifest(self.config_bytes, infos, oci))


def as_tar(info: dict) -> dict:
    """A layer as a docker-archive's manifest sees it: a tar, whatever its blob."""
    return dict(info, digest=info["diff_id"], blob_size=info["size"], compression="none")


class DiskFiles:
    """An image's inputs as files on disk (the `assemble` Process's sandbox). The Pants rules
    read the same inputs from a digest's listing through an object with these three methods,
    so that an OCI layout is composed with no Process and no copy of a blob."""

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def listdir(self, path: str) -> list:
        return os.listdir(path)


def _load_json(files, path: str, what: str):
    try:
        return json.loads(files.read(path))
    except ValueError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from None


def _is_size(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_layer(ref: LayerRef, base: bool = False, files=DiskFiles()) -> Layer:
    path = os.path.join(ref.dir, "layer.json")
    info = _load_json(files, path, "layer metadata")
    if not isinstance(info, dict):
        raise ValueError(f"{path} must hold an object")
    try:
        image.digest_hex(info.get("diff_id"))
        image.digest_hex(info.get("digest"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if info.get("compression") not in SUFFIXES:
        raise ValueError(f"{path}: compression must be one of {list(SUFFIXES)}")
    # A zstd base layer imported without the zstd binary has an unknown size.
    unknown_size = info.get("size") is None and info["compression"] == "zstd"
    if not ((_is_size(info.get("size")) or unknown_size) and _is_size(info.get("blob_size"))):
        raise ValueError(f"{path}: size and blob_size must be non-negative integers")
    blob = info.get("blob")
    if not isinstance(blob, str) or blob in ("", ".", "..") or "/" in blob:
        raise ValueError(f"{path}: blob must be a file name in the layer directory: {blob!r}")
    if info["compression"] == "none" and (
        info["digest"] != info["diff_id"] or info["blob_size"] != info["size"]
    ):
        raise ValueError(
            f"{path}: an uncompressed blob must have digest == diff_id and blob_size == size"
        )
    blob_path = os.path.join(ref.dir, blob)
    actual = files.size(blob_path)
    if actual != info["blob_size"]:
        raise ValueError(f"{blob_path} has {actual} bytes, layer.json says {info['blob_size']}")
    return Layer(info, blob_path, ref.comment, base)


def load_base(directory: str, files=DiskFiles()):
    """A base dir's config and layers, checked against each other and base.json (the blobs are
    not re-read: `import-base` verified them, like `layer` outputs they are trusted inputs)."""
    where = os.path.join(directory, "base.json")
    info = BaseInfo.from_json(_load_json(files, where, "base image metadata"), where)
    config_path = os.path.join(directory, "config.json")
    config_bytes = files.read(config_path)
    if image.sha256_digest(config_bytes) != info.config_digest:
        raise ValueError(f"{config_path} does not match config_digest in {where}")
    try:
        config = json.loads(config_bytes)
        diff_ids = image.base_parts(config)[1]
    except ValueError as e:
        raise ValueError(f"{config_path}: {e}") from None
    layers_dir = os.path.join(directory, "layers")
    names = [layer_dir_name(i) for i in range(len(diff_ids))]
    if sorted(files.listdir(layers_dir)) != names:
        raise ValueError(f"{layers_dir} must hold exactly {names} for the config's diff_ids")
    layers = [
        load_layer(LayerRef(os.path.join(layers_dir, name)), base=True, files=files)
        for name in names
    ]
    for layer, diff_id in zip(layers, diff_ids):
        if layer.info["diff_id"] != diff_id:
            raise ValueError(
                f"{os.path.dirname(layer.blob_path)} has diff_id {layer.info['diff_id']}, "
                f"the base config says {diff_id}"
            )
    return config, layers


def layer_dir_name(index: int) -> str:
    """A base dir's layers/NNN name: zero-padded so that names sort in layer order."""
    return f"{index:03d}"


def load_image(spec_path: str, files=DiskFiles()) -> Image:
    """Reads and validates the image spec and its layers' metadata (never their blobs). The
    spec's paths are relative to its directory, so a bundle's images each keep their own."""
    spec = ImageSpec.from_json(_load_json(files, spec_path, "image spec"))
    here = os.path.dirname(spec_path)
    base, base_layers = (
        load_base(os.path.join(here, spec.base), files) if spec.base is not None else (None, [])
    )
    layers = [
        load_layer(LayerRef(os.path.join(here, ref.dir), ref.comment), files=files)
        for ref in spec.layers
    ]
    infos, comments = [layer.info for layer in layers], [layer.comment for layer in layers]
    config = image.make_config(spec.config, infos, comments, base)
    return Image(spec.format, base_layers + layers, config, spec.repository, spec.tag, spec.zstd)


# The most layers Docker's layer store takes in one image (moby's layer.maxLayerDepth): `docker
# load` of a deeper one fails with "max depth exceeded".
DOCKER_MAX_LAYERS = 125


def check_docker_layer_count(count: int) -> None:
    if count > DOCKER_MAX_LAYERS:
        raise ValueError(
            f"docker-archive: the image has {count} layers, base layers included, but `docker "
            f"load` takes at most {DOCKER_MAX_LAYERS} (\"max depth exceeded\")"
        )


def check_docker_archive(img: Image) -> None:
    """docker-archive holds layers as tars (`docker load` reads them as such), at most
    DOCKER_MAX_LAYERS. A base's gzip blobs go in as they are: docker, podman and skopeo load
    gzip layer.tar entries (checked by the tests with skopeo and umoci); its zstd blobs, which
    docker does not, are decompressed."""
    check_docker_layer_count(len(img.layers))
    own = 0
    for layer in img.layers:
        compression = layer.info["compression"]
        if not layer.base and compression != "none":
            raise ValueError(
                f"docker-archive needs uncompressed layers; layers[{own}] ({layer.blob_path}) is "
                f"{compression}: use format oci or oci-archive, or compression none"
            )
        if layer.base and compression == "zstd":
            where = os.path.dirname(layer.blob_path)
            if layer.info["size"] is None:
                raise ValueError(
                    f"docker-archive: base layer {where} is zstd and was imported without the "
                    "zstd binary, so its size is unknown: install zstd, or write oci or "
                    "oci-archive output"
                )
            if img.zstd is None:
                raise ValueError(
                    f"docker-archive: base layer {where} is zstd, which Docker cannot read, and "
                    "decompressing it needs the zstd binary: install zstd, or write oci or "
                    "oci-archive output"
                )
        own += not layer.base


class DecompressedReader:
    """The tar inside a gzip or zstd blob file, streamed (`read`) and sha256-hashed on the way,
    as is the blob itself (`blob`): a base's layers are the only compressed blobs Strata
    reads."""

    def __init__(self, path: str, compression: str, zstd=None):
        if compression not in ("gzip", "zstd"):
            raise ValueError(f"{path}: cannot decompress {compression!r}")
        if compression == "zstd" and not zstd:
            raise ValueError(f"{path} is zstd: decompressing it needs the zstd binary")
        self._path = path
        self._hash = hashlib.sha256()
        self.size = 0
        self._zstd = None
        self._file = open(path, "rb")
        self.blob = HashingReader(self._file)
        if compression == "gzip":
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
            self._pending = b""
            return
        try:
            self._zstd = ZstdReader(zstd, self.blob, path)
        except BaseException:
            self._file.close()
            raise

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        data = self._zstd.read(size) if self._zstd else self._read_gzip(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def _read_gzip(self, size: int) -> bytes:
        """Concatenated gzip members are one stream (as Go's gzip reader has it); at most
        `size` bytes come out at a time, however well the input compresses."""
        try:
            while True:
                if self._inflate.eof:
                    rest = self._inflate.unused_data or self.blob.read(CHUNK_SIZE)
                    if not rest:
                        return b""
                    self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
                    self._pending = rest
                if not self._pending:
                    self._pending = self.blob.read(CHUNK_SIZE)
                    if not self._pending:
                        raise ValueError("truncated")
                data = self._inflate.decompress(self._pending, size)
                self._pending = self._inflate.unconsumed_tail
                if data:
                    return data
        except (zlib.error, ValueError) as e:
            raise ValueError(f"{self._path}: not a valid gzip stream: {e}") from None

    def finish(self) -> str:
        """Checks that nothing is left to read; the digest of what was read."""
        if self.read(1):
            raise ValueError(f"{self._path} decompresses to more than {self.size - 1} bytes")
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        if self._zstd is not None:
            self._zstd.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class LayerReader:
    """`with LayerReader(layer, zstd) as data:` the layer's tar, streamed from its blob
    (decompressed when the blob is compressed): the one way a layer's contents are read. When
    the block ends without an error, what is left is read and all of it checked against
    layer.json: the blob's digest and size, the tar's diff_id and size. A mismatch is an
    InvalidInput naming the layer, raised only once all was read; callers write atomically."""

    def __init__(self, layer: Layer, zstd=None):
        self._layer = layer
        compression = layer.info["compression"]
        if compression == "none":
            self._file = open(layer.blob_path, "rb")
            self._blob = self._tar = HashingReader(self._file)
        else:
            self._file = self._tar = DecompressedReader(layer.blob_path, compression, zstd)
            self._blob = self._tar.blob

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        return self._tar.read(size)

    def _check(self) -> None:
        while self.read(CHUNK_SIZE):
            pass
        info, tar, blob = self._layer.info, self._tar, self._blob
        diff_id = tar.digest_str() if tar is blob else tar.finish()
        size = tar.size if info["size"] is None else info["size"]  # a zstd base's may be unknown
        wrong = [
            f"its {name} is {found}, layer.json says {expected}"
            for name, found, expected in (
                ("blob digest", blob.digest_str(), info["digest"]),
                ("blob size", blob.size, info["blob_size"]),
                ("diff_id", diff_id, info["diff_id"]),
                ("tar size", tar.size, size),
            )
            if found != expected
        ]
        if wrong:
            where = os.path.dirname(self._layer.blob_path)
            raise InvalidInput(f"layer {where} does not match its layer.json: {'; '.join(wrong)}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info):
        try:
            if exc_type is None:
                self._check()
        finally:
            self._file.close()


def _add_verified(tar: TarWriter, path: str, size: int, blob_path: str, digest: str) -> None:
    """Streams a blob file into `tar`, hashed on the way: it must be `digest`."""
    with open(blob_path, "rb") as f:
        data = HashingReader(f)
        tar.add_file(path, size, data)
    if data.digest_str() != digest:
        raise InvalidInput(
            f"{blob_path} does not match its digest {digest}: its {size} bytes have digest "
            f"{data.digest_str()}"
        )


def _add_blob(tar: TarWriter, path: str, layer: Layer) -> None:
    _add_verified(tar, path, layer.info["blob_size"], layer.blob_path, layer.info["digest"])


def _add_decompressed(tar: TarWriter, path: str, layer: Layer, zstd: str) -> None:
    with LayerReader(layer, zstd) as data:
        tar.add_file(path, layer.info["size"], data)


def write_docker_archive(images: list, out) -> None:
    """The `docker load` format: each image's layers (those not yet written) and config, then
    manifest.json last, listing the images in order, as nixpkgs' streamLayeredImage does, so
    the archive can be produced in one forward pass. A layer or config that several images
    share is stored once (dockerTools' mergeImages)."""
    for img in images:
        check_docker_archive(img)
    tar = TarWriter(out, mtime=ARCHIVE_MTIME)
    written = set()
    manifest = []
    for img in images:
        layer_paths = []
        for layer in img.layers:
            hex_id = image.digest_hex(layer.info["diff_id"])
            path = f"{hex_id}/layer.tar"
            if path not in written:
                written.add(path)
                tar.add_dir(hex_id)
                if layer.info["compression"] == "zstd":
                    _add_decompressed(tar, path, layer, img.zstd)
                else:
                    _add_blob(tar, path, layer)
            layer_paths.append(path)
        config_name = image.digest_hex(img.config_digest) + ".json"
        if config_name not in written:
            written.add(config_name)
            tar.add_file(config_name, len(img.config_bytes), img.config_bytes)
        manifest.append({"Config": config_name, "RepoTags": [img.repo_tag], "Layers": layer_paths})
    manifest_bytes = image.canonical_json(manifest)
    tar.add_file("manifest.json", len(manifest_bytes), manifest_bytes)
    tar.close()


def oci_contents(img: Image):
    """The layout's blobs as sorted, deduplicated (hex, bytes or Layer) pairs, and index.json."""
    manifest = img.manifest_bytes(oci=True)
    index = image.canonical_json(image.make_index(manifest, img.tag, img.platform))
    blobs = {image.digest_hex(layer.info["digest"]): layer for layer in img.layers}
    blobs[image.digest_hex(img.config_digest)] = img.config_bytes
    blobs[image.digest_hex(image.sha256_digest(manifest))] = manifest
    return sorted(blobs.items()), index


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def link_or_copy(src: str, dst: str) -> None:
    """A hard link costs no read at all; across filesystems, one chunked copy."""
    try:
        os.link(src, dst)
    except OSError:
        with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
            shutil.copyfileobj(fsrc, fdst, CHUNK_SIZE)


def write_oci_layout(img: Image, directory: str) -> None:
    blobs, index = oci_contents(img)
    blob_dir = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blob_dir)
    for hex_id, blob in blobs:
        dst = os.path.join(blob_dir, hex_id)
        if isinstance(blob, Layer):
            link_or_copy(blob.blob_path, dst)
        else:
            _write_bytes(dst, blob)
    _write_bytes(os.path.join(directory, "index.json"), index)
    _write_bytes(os.path.join(directory, "oci-layout"), OCI_LAYOUT)


def write_oci_archive(img: Image, out) -> None:
    blobs, index = oci_contents(img)
    files = [
        (hex_id, (blob.blob_path, blob.info["blob_size"]) if isinstance(blob, Layer) else blob)
        for hex_id, blob in blobs
    ]
    write_layout_tar(out, files, index)


def write_layout_tar(out, blobs, index: bytes) -> None:
    """An OCI layout as a tar in one forward pass, sorted by path with each directory before
    its contents. `blobs`: sorted (hex, bytes or (file path, size)) pairs; each file is
    checked against its name on the way."""
    tar = TarWriter(out, mtime=ARCHIVE_MTIME)
    tar.add_dir("blobs")
    tar.add_dir("blobs/sha256")
    for hex_id, blob in blobs:
        path = f"blobs/sha256/{hex_id}"
        if isinstance(blob, bytes):
            tar.add_file(path, len(blob), blob)
            continue
        blob_path, size = blob
        _add_verified(tar, path, size, blob_path, f"sha256:{hex_id}")
    tar.add_file("index.json", len(index), index)
    tar.add_file("oci-layout", len(OCI_LAYOUT), OCI_LAYOUT)
    tar.close()


def layout_archive_command(options) -> None:
    """An OCI layout directory (an image index's, composed by the rules) as an oci-archive."""
    layout = options.layout
    blob_dir = os.path.join(layout, "blobs", "sha256")
    names = sorted(os.listdir(layout)), os.listdir(os.path.join(layout, "blobs"))
    if names != (["blobs", "index.json", "oci-layout"], ["sha256"]):
        raise ValueError(f"{layout} must hold only blobs/sha256/, index.json and oci-layout")
    if DiskFiles().read(os.path.join(layout, "oci-layout")) != OCI_LAYOUT:
        raise ValueError(f"{layout}/oci-layout is not {OCI_LAYOUT.decode()}")
    blobs = []
    for hex_id in sorted(os.listdir(blob_dir)):
        image.digest_hex(f"sha256:{hex_id}")
        path = os.path.join(blob_dir, hex_id)
        blobs.append((hex_id, (path, os.stat(path).st_size)))
    index = DiskFiles().read(os.path.join(layout, "index.json"))
    os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
    write_file_atomically(options.out, lambda f: write_layout_tar(f, blobs, index))


class Format:
    """An output format: how `assemble` writes it (atomically), whether it is a directory, and
    whether its manifest is OCI's (else Docker's v2s2, over the layers as uncompressed tars)."""

    def __init__(self, write, directory: bool, oci: bool):
        self.write = write
        self.directory = directory
        self.oci = oci


def _docker_archive_file(img: Image, output: str) -> None:
    write_file_atomically(output, lambda f: write_docker_archive([img], f))


def _oci_layout_dir(img: Image, output: str) -> None:
    write_dir_atomically(output, lambda d: write_oci_layout(img, d))


def _oci_archive_file(img: Image, output: str) -> None:
    write_file_atomically(output, lambda f: write_oci_archive(img, f))


def _rootfs_file(img: Image, output: str) -> None:
    from strata.core.oci.rootfs import write_rootfs  # which imports this module

    scratch = os.path.dirname(os.path.abspath(output))
    write_file_atomically(output, lambda f: write_rootfs(img.layers, f, scratch, img.zstd))


# Every output format (the `output_format` field's choices): a new format is a row and its writer.
# `rootfs` is no image but the image's merged filesystem; its metadata describes the image.
FORMATS = {
    "docker-archive": Format(_docker_archive_file, directory=False, oci=False),
    "oci": Format(_oci_layout_dir, directory=True, oci=True),
    "oci-archive": Format(_oci_archive_file, directory=False, oci=True),
    "rootfs": Format(_rootfs_file, directory=False, oci=True),
}


def assemble(img: Image, output: str) -> dict:
    """Writes the image in its format to OUTPUT and returns its metadata."""
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    FORMATS[img.format].write(img, output)
    return metadata(img)


def metadata(img: Image) -> dict:
    """What `assemble` reports of an image. For docker-archive, manifest_digest is that of the
    Docker v2s2 manifest over the archive's (uncompressed) layers."""
    fmt = FORMATS[img.format]
    return {
        "config_digest": img.config_digest,
        "manifest_digest": image.sha256_digest(img.manifest_bytes(fmt.oci)),
        "repo_tag": img.repo_tag,
        "layers": [
            {"diff_id": info["diff_id"], "digest": info["digest"], "size": info["blob_size"]}
            for info in (img.layer_infos if fmt.oci else img.docker_layer_infos)
        ],
    }


def assemble_command(options) -> None:
    """Write an image from an image spec (docs/architecture.md)."""
    img = load_image(options.spec)
    if img.format == "docker-archive":
        check_docker_archive(img)
    written = assemble(img, options.out)
    for path, data in (
        (options.metadata, image.canonical_json(written)),
        (options.config_out, img.config_bytes),
    ):
        if path:
            write_bytes_atomically(path, data)


def stream_command(options) -> None:
    """docker-archive bytes to stdout, whatever the spec's format: what `run` pipes into
    `docker load`, with no copy of the image on disk."""
    img = load_image(options.spec)
    check_docker_archive(img)
    out = sys.stdout.buffer
    try:
        write_docker_archive([img], out)
        out.flush()
    except BrokenPipeError:
        # Keep the interpreter's final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise StrataError("the reader closed stdout before the image was written") from None
