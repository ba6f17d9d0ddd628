"""docker-archive, OCI image layout and oci-archive writers; every blob is streamed, none is
held in memory."""

import argparse
import json
import os
import shutil
import sys

from strata.core import image
from strata.core.tarstream import TarWriter

FORMATS = ("docker-archive", "oci", "oci-archive")
COMPRESSIONS = ("none", "gzip", "zstd")
# mtime of every entry of the archives written here (layers carry their own): fixed for
# reproducibility, 1 like the layers' default because some tools read 0 as "unset".
ARCHIVE_MTIME = 1
CHUNK_SIZE = 1 << 20

_SPEC_KEYS = frozenset({"format", "layers", "config", "repository", "tag"})
_LAYER_KEYS = frozenset({"dir", "comment"})
_OCI_LAYOUT = image.canonical_json({"imageLayoutVersion": "1.0.0"})


class Layer:
    """One `layer` output directory: its layer.json and the path of its blob."""

    def __init__(self, info: dict, blob_path: str, comment: str):
        self.info = info
        self.blob_path = blob_path
        self.comment = comment


class Image:
    """A validated image spec with its layers read and its config serialised."""

    def __init__(self, fmt: str, layers: list, config: dict, repository: str, tag):
        self.format = fmt
        self.layers = layers
        self.config_bytes = image.canonical_json(config)
        self.config_digest = image.sha256_digest(self.config_bytes)
        self.platform = image.platform_of(config)
        self.tag = image.content_tag(self.config_digest) if tag is None else tag
        self.repo_tag = image.repo_tag(repository, self.tag)

    @property
    def layer_infos(self) -> list:
        return [layer.info for layer in self.layers]

    def manifest_bytes(self, oci: bool) -> bytes:
        return image.canonical_json(image.make_manifest(self.config_bytes, self.layer_infos, oci))


def _load_json(path: str, what: str):
    with open(path, "rb") as f:
        try:
            return json.load(f)
        except ValueError as e:
            raise ValueError(f"{what} {path} is not valid JSON: {e}") from None


def _is_size(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_layer(entry, index: int) -> Layer:
    where = f"layers[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("dir"), str):
        raise ValueError(f"{where} must be an object with a string 'dir'")
    unknown = sorted(set(entry) - _LAYER_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}")
    comment = entry.get("comment", "")
    if not isinstance(comment, str):
        raise ValueError(f"{where}.comment must be a string")
    path = os.path.join(entry["dir"], "layer.json")
    info = _load_json(path, "layer metadata")
    if not isinstance(info, dict):
        raise ValueError(f"{path} must hold an object")
    try:
        image.digest_hex(info.get("diff_id"))
        image.digest_hex(info.get("digest"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if not (_is_size(info.get("size")) and _is_size(info.get("blob_size"))):
        raise ValueError(f"{path}: size and blob_size must be non-negative integers")
    blob = info.get("blob")
    if not isinstance(blob, str) or blob in ("", ".", "..") or "/" in blob:
        raise ValueError(f"{path}: blob must be a file name in the layer directory: {blob!r}")
    if info.get("compression") not in COMPRESSIONS:
        raise ValueError(f"{path}: compression must be one of {list(COMPRESSIONS)}")
    if info["compression"] == "none" and (
        info["digest"] != info["diff_id"] or info["blob_size"] != info["size"]
    ):
        raise ValueError(
            f"{path}: an uncompressed blob must have digest == diff_id and blob_size == size"
        )
    blob_path = os.path.join(entry["dir"], blob)
    actual = os.stat(blob_path).st_size
    if actual != info["blob_size"]:
        raise ValueError(f"{blob_path} has {actual} bytes, layer.json says {info['blob_size']}")
    return Layer(info, blob_path, comment)


def load_image(spec_path: str) -> Image:
    """Reads and validates the image spec and its layers' metadata (never their blobs)."""
    spec = _load_json(spec_path, "image spec")
    if not isinstance(spec, dict):
        raise ValueError(f"image spec {spec_path} must hold an object")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ValueError(f"image spec has unknown keys {unknown}; allowed: {sorted(_SPEC_KEYS)}")
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}: {fmt!r}")
    entries = spec.get("layers")
    if not isinstance(entries, list):
        raise ValueError("layers must be a list")
    layers = [load_layer(entry, i) for i, entry in enumerate(entries)]
    infos, comments = [layer.info for layer in layers], [layer.comment for layer in layers]
    config = image.make_config(spec.get("config", {}), infos, comments)
    return Image(fmt, layers, config, spec.get("repository"), spec.get("tag"))


def require_uncompressed(img: Image) -> None:
    """docker-archive holds layers as plain tars (`docker load` reads them as such)."""
    for i, layer in enumerate(img.layers):
        if layer.info["compression"] != "none":
            raise ValueError(
                f"docker-archive needs uncompressed layers; layers[{i}] ({layer.blob_path}) is "
                f"{layer.info['compression']}: use format oci or oci-archive, or compression none"
            )


def _add_blob(tar: TarWriter, path: str, layer: Layer) -> None:
    with open(layer.blob_path, "rb") as f:
        tar.add_file(path, layer.info["blob_size"], f)


def write_docker_archive(img: Image, out) -> None:
    """The `docker load` format: layers, then the config, then manifest.json last, as nixpkgs'
    streamLayeredImage does, so the archive can be produced in one forward pass."""
    require_uncompressed(img)
    tar = TarWriter(out, mtime=ARCHIVE_MTIME)
    layer_paths = []
    for layer in img.layers:
        hex_id = image.digest_hex(layer.info["diff_id"])
        path = f"{hex_id}/layer.tar"
        if path not in layer_paths:
            tar.add_dir(hex_id)
            _add_blob(tar, path, layer)
        layer_paths.append(path)
    config_name = image.digest_hex(img.config_digest) + ".json"
    tar.add_file(config_name, len(img.config_bytes), img.config_bytes)
    manifest = image.canonical_json(
        [{"Config": config_name, "RepoTags": [img.repo_tag], "Layers": layer_paths}]
    )
    tar.add_file("manifest.json", len(manifest), manifest)
    tar.close()


def _oci_contents(img: Image):
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


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link costs no read at all; across filesystems, one chunked copy."""
    try:
        os.link(src, dst)
    except OSError:
        with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
            shutil.copyfileobj(fsrc, fdst, CHUNK_SIZE)


def write_oci_layout(img: Image, directory: str) -> None:
    blobs, index = _oci_contents(img)
    blob_dir = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blob_dir)
    for hex_id, blob in blobs:
        dst = os.path.join(blob_dir, hex_id)
        if isinstance(blob, Layer):
            _link_or_copy(blob.blob_path, dst)
        else:
            _write_bytes(dst, blob)
    _write_bytes(os.path.join(directory, "index.json"), index)
    _write_bytes(os.path.join(directory, "oci-layout"), _OCI_LAYOUT)


def write_oci_archive(img: Image, out) -> None:
    """The OCI layout as a tar, sorted by path with each directory before its contents."""
    blobs, index = _oci_contents(img)
    tar = TarWriter(out, mtime=ARCHIVE_MTIME)
    tar.add_dir("blobs")
    tar.add_dir("blobs/sha256")
    for hex_id, blob in blobs:
        path = f"blobs/sha256/{hex_id}"
        if isinstance(blob, Layer):
            _add_blob(tar, path, blob)
        else:
            tar.add_file(path, len(blob), blob)
    tar.add_file("index.json", len(index), index)
    tar.add_file("oci-layout", len(_OCI_LAYOUT), _OCI_LAYOUT)
    tar.close()


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _write_file_atomically(path: str, write) -> None:
    """Readers never see a partial file: write PATH.tmp, then rename over PATH."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _write_dir_atomically(path: str, write) -> None:
    tmp = path + ".tmp"
    _remove(tmp)
    try:
        os.mkdir(tmp)
        write(tmp)
        _remove(path)
        os.rename(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def assemble(img: Image, output: str) -> dict:
    """Writes the image in its format to OUTPUT and returns its metadata. For docker-archive,
    manifest_digest is that of the Docker v2s2 manifest over the archive's (uncompressed) layers."""
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    if img.format == "docker-archive":
        _write_file_atomically(output, lambda f: write_docker_archive(img, f))
    elif img.format == "oci-archive":
        _write_file_atomically(output, lambda f: write_oci_archive(img, f))
    else:
        _write_dir_atomically(output, lambda d: write_oci_layout(img, d))
    manifest = img.manifest_bytes(oci=img.format != "docker-archive")
    return {
        "config_digest": img.config_digest,
        "manifest_digest": image.sha256_digest(manifest),
        "repo_tag": img.repo_tag,
        "layers": [
            {"diff_id": info["diff_id"], "digest": info["digest"], "size": info["blob_size"]}
            for info in img.layer_infos
        ],
    }


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _fail(prog: str, error, code: int) -> int:
    message = " ".join(str(error).split())
    sys.stderr.write(f"{prog}: error: {message}\n")
    return code


def _parse(parser: argparse.ArgumentParser, argv: list):
    """Parsed args, or the exit code argparse wanted (so the mains always return an int)."""
    try:
        return parser.parse_args(argv), None
    except SystemExit as e:
        return None, e.code


def assemble_main(argv: list) -> int:
    parser = _Parser(prog="strata.core assemble", description="Write an image from an image spec.")
    parser.add_argument("--spec", required=True, help="image-spec.json (docs/architecture.md)")
    parser.add_argument("--out", required=True, help="the image: a file, or a directory for oci")
    parser.add_argument("--metadata", help="where to write the image's digests as JSON")
    args, code = _parse(parser, argv)
    if args is None:
        return code
    try:
        img = load_image(args.spec)
        if img.format == "docker-archive":
            require_uncompressed(img)
    except (OSError, ValueError) as e:
        return _fail(parser.prog, e, 2)
    try:
        metadata = assemble(img, args.out)
        if args.metadata:
            data = image.canonical_json(metadata)
            _write_file_atomically(args.metadata, lambda f: f.write(data))
    except OSError as e:
        return _fail(parser.prog, e, 1)
    return 0


def stream_main(argv: list) -> int:
    """docker-archive bytes to stdout, whatever the spec's format: what `run` pipes into
    `docker load`, with no copy of the image on disk."""
    parser = _Parser(
        prog="strata.core stream", description="Write an image spec's docker-archive to stdout."
    )
    parser.add_argument("--spec", required=True, help="image-spec.json (docs/architecture.md)")
    args, code = _parse(parser, argv)
    if args is None:
        return code
    try:
        img = load_image(args.spec)
        require_uncompressed(img)
    except (OSError, ValueError) as e:
        return _fail(parser.prog, e, 2)
    out = sys.stdout.buffer
    try:
        write_docker_archive(img, out)
        out.flush()
    except BrokenPipeError:
        # Keep the interpreter's final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _fail(parser.prog, "the reader closed stdout before the image was written", 1)
    except OSError as e:
        return _fail(parser.prog, e, 1)
    return 0
