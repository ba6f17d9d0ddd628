"""Base images: `import-base` makes a base dir (docs/architecture.md) of a docker-archive, OCI
image layout or oci-archive, verifying every blob on the way; `base_dir_files` makes the same of
an image Strata built, of its layers' own blobs (`write_base_dir` writes it).

Layer blobs are copied verbatim, never unpacked and re-tarred, so an image built on a base
shares its layers byte for byte with the base (and with every registry that holds them).
"""

import json
import os
import posixpath
import re
import tarfile
from typing import NamedTuple, Optional

from strata.core.atomic import write_dir_atomically
from strata.core.build.compression import CHUNK, SUFFIXES
from strata.core.build.hashing import HashingWriter
from strata.core.oci import descriptors, image, layertar, media_types, platforms
from strata.core.oci.layer_reader import DecompressedReader
from strata.core.oci.layout import link_or_copy
from strata.core.oci.model import Layer, as_tar, layer_dir_name, load_layer
from strata.core.oci.spec import BaseInfo, LayerRef

# Compressed blobs are told by their first bytes; bzip2 and xz (which docker load also reads)
# are recognised only to be refused by name.
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
# buildx's attestation manifests sit in an index beside the images, platform unknown/unknown.
_ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
_BLOB_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})\Z")
# Indexes nested in an index: buildx and docker nest one; more is no image anyone pushes.
_MAX_INDEX_DEPTH = 8
# Links followed from one archive member to the file it names, as Linux's MAXSYMLINKS.
_MAX_LINKS = 40
_CONFIG_NAME = re.compile(r"([0-9a-f]{64})\.json\Z")


class _Layout:
    """An OCI image layout directory."""

    def __init__(self, root: str):
        self.root = root

    def has(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.root, name))

    def open(self, name: str):
        try:
            return open(os.path.join(self.root, name), "rb")
        except FileNotFoundError:
            raise ValueError(f"{self.root} has no {name}") from None

    def close(self) -> None:
        pass


def _member_name(name: str) -> str:
    """An archive member's name as a relative path ("./a" and "/a" are "a"; no "..")."""
    return posixpath.normpath("/" + name).lstrip("/")


class _Archive:
    """A docker-archive or oci-archive, read in place: tarfile seeks to each member, so nothing
    is extracted. Links between members (old `docker save` wrote layer.tar symlinks) are
    resolved by name inside the archive, as docker load resolves them in its scope: an
    absolute target or `..` past the top stays in the archive; at most _MAX_LINKS are followed."""

    def __init__(self, path: str):
        self.root = path
        try:
            self._tar = tarfile.open(path, "r:*")
            self._members = {_member_name(m.name): m for m in self._tar.getmembers()}
        except tarfile.TarError as e:
            raise ValueError(
                f"{path} is neither an OCI layout directory nor a tar archive: {e}"
            ) from None

    def has(self, name: str) -> bool:
        return _member_name(name) in self._members

    def _file(self, name: str) -> tarfile.TarInfo:
        """The regular file member that `name` is, or leads to through links."""
        path, link = _member_name(name), None
        for _ in range(_MAX_LINKS + 1):
            member = self._members.get(path)
            if member is None or not (member.issym() or member.islnk()):
                break
            link = member.linkname
            if member.issym():  # relative to the link's directory
                path = _member_name(posixpath.join(posixpath.dirname(path), link))
            else:  # a hard link names a member
                path = _member_name(link)
        else:
            raise ValueError(f"{self.root}: {name} leads through more than {_MAX_LINKS} links")
        if member is None or not member.isreg():
            via = "" if link is None else f": it links to {link!r}, which is not a file in it"
            raise ValueError(f"{self.root} has no file {name}{via}")
        return member

    def open(self, name: str):
        return self._tar.extractfile(self._file(name))

    def close(self) -> None:
        self._tar.close()


class _Candidate(NamedTuple):
    """An image in the source: its names, platform and what to read it from."""

    names: tuple
    platform: dict
    key: str  # the manifest (OCI) or config (docker-archive) digest: one image, one key
    entry: dict  # its manifest descriptor (OCI) or manifest.json entry (docker-archive)


class _Blob(NamedTuple):
    """A layer blob to import: where it is, and what the source says it is."""

    name: str
    digest: Optional[str]  # None when the source gives none (docker-archive layer.tar)
    size: Optional[int]
    compression: Optional[str]  # from the media type; None when there is none


def _read_json(source, name: str, what: str, descriptor: Optional[dict] = None):
    """(bytes, parsed) of a JSON file, checked against its descriptor when there is one."""
    with source.open(name) as f:
        data = f.read(image.MAX_JSON_SIZE + 1)
    if len(data) > image.MAX_JSON_SIZE:
        raise ValueError(f"{what} is larger than {image.MAX_JSON_SIZE} bytes")
    if descriptor is not None:
        _check_blob(what, descriptor["digest"], descriptor["size"], data=data)
    return data, descriptors.parse_json(data, what)


def _check_blob(what: str, digest: str, size: int, *, data=None, actual=None) -> None:
    actual_digest, actual_size = actual or (image.sha256_digest(data), len(data))
    if (actual_digest, actual_size) != (digest, size):
        raise ValueError(
            f"{what} does not match its descriptor: {actual_size} bytes with digest "
            f"{actual_digest}, expected {size} bytes with digest {digest}"
        )


def _blob_name(descriptor: dict) -> str:
    return "blobs/sha256/" + image.digest_hex(descriptor["digest"])


def _oci_candidates(source) -> list:
    _read_json(source, "oci-layout", f"{source.root}: oci-layout")
    _, index = _read_json(source, "index.json", f"{source.root}: index.json")
    candidates = []
    walked = set()  # (index digest, names): an index listed twice is read once

    def walk(index, names: tuple, what: str, depth: int) -> None:
        for i, descriptor in enumerate(descriptors.index(index, what)):
            annotations = descriptor.get("annotations") or {}
            ref = annotations.get(image.REF_NAME_ANNOTATION)
            refs = (ref,) if isinstance(ref, str) else names
            media_type = descriptor["mediaType"]
            if media_types.is_index(media_type):
                if depth == _MAX_INDEX_DEPTH:
                    raise ValueError(
                        f"{what} manifests[{i}]: indexes nest deeper than {_MAX_INDEX_DEPTH}"
                    )
                if (descriptor["digest"], refs) in walked:
                    continue
                walked.add((descriptor["digest"], refs))
                what_nested = f"index {descriptor['digest']}"
                _, nested = _read_json(source, _blob_name(descriptor), what_nested, descriptor)
                walk(nested, refs, what_nested, depth + 1)
            elif media_types.is_manifest(media_type) and _ATTESTATION_ANNOTATION not in annotations:
                platform = descriptor.get("platform")
                if not isinstance(platform, dict):
                    platform = _oci_platform(source, descriptor)
                candidates.append(_Candidate(refs, platform, descriptor["digest"], descriptor))

    walk(index, (), f"{source.root}: index.json", 0)
    return candidates


def _oci_manifest(source, descriptor: dict):
    """The manifest's config bytes and layer blobs, each checked against its descriptor."""
    what = f"manifest {descriptor['digest']}"
    _, manifest = _read_json(source, _blob_name(descriptor), what, descriptor)
    descriptors.manifest(manifest, what)
    config = manifest["config"]
    if not media_types.is_config(config["mediaType"]):
        raise ValueError(f"{what}: {config['mediaType']} is not an image config")
    config_bytes, _ = _read_json(source, _blob_name(config), f"config {config['digest']}", config)
    blobs = []
    for i, layer in enumerate(manifest["layers"]):
        if not media_types.is_layer(layer["mediaType"]):
            raise ValueError(f"{what} layers[{i}]: unsupported layer type {layer['mediaType']}")
        compression = media_types.compression_of(layer["mediaType"])
        blobs.append(_Blob(_blob_name(layer), layer["digest"], layer["size"], compression))
    return config_bytes, blobs


def _oci_platform(source, descriptor: dict) -> dict:
    config_bytes, _ = _oci_manifest(source, descriptor)
    return image.platform_of(json.loads(config_bytes))


def _docker_candidates(source) -> list:
    _, entries = _read_json(source, "manifest.json", f"{source.root}: manifest.json")
    if not isinstance(entries, list):
        raise ValueError(f"{source.root}: manifest.json must hold a list")
    candidates = []
    for i, entry in enumerate(entries):
        what = f"{source.root}: manifest.json[{i}]"
        tags = entry.get("RepoTags") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("Config"), str)
            or not isinstance(entry.get("Layers"), list)
            or not all(isinstance(layer, str) for layer in entry["Layers"])
            or not isinstance(tags or [], list)
            or not all(isinstance(tag, str) for tag in tags or [])
        ):
            raise ValueError(f"{what} must have a Config name, a Layers list and RepoTags")
        config_bytes, config = _docker_config(source, entry["Config"])
        key = image.sha256_digest(config_bytes)
        candidates.append(_Candidate(tuple(tags or ()), image.platform_of(config), key, entry))
    return candidates


def _docker_config(source, name: str):
    """The config, checked against the digest its name carries (`<hex>.json` or a blob path)."""
    match = _CONFIG_NAME.match(_member_name(name)) or _BLOB_NAME.match(_member_name(name))
    what = f"config {name}"
    data, config = _read_json(source, name, what)
    if match and image.sha256_digest(data) != "sha256:" + match.group(1):
        raise ValueError(f"{what} does not match the digest in its name")
    if not isinstance(config, dict):
        raise ValueError(f"{what} must hold an object")
    return data, config


def _select(candidates: list, ref: Optional[str], platform: Optional[str], root: str):
    """The one image named `ref` (when given) of `platform` (when given, matched by
    strata.core.oci.platforms, which raises PlatformError for none or several platforms)."""
    chosen = [c for c in candidates if ref is None or ref in c.names]
    if platform is not None and chosen:
        where = root if ref is None else f"{ref!r} in {root}"
        keys = platforms.select(platform, [(c.key, c.platform) for c in chosen], where)
        chosen = [c for c in chosen if c.key in keys]
    images = len({c.key for c in chosen})
    if images == 1:
        return chosen[0]
    listing = sorted(
        {f"{', '.join(c.names) or '(no name)'} {platforms.describe(c.platform)}"
         for c in candidates}
    )  # fmt: skip
    wanted = (f" named {ref!r}" if ref is not None else "") + (
        f" for {platform}" if platform is not None else ""
    )
    found = f"no image{wanted}" if not images else f"{images} images{wanted}"
    raise ValueError(
        f"{root} holds {found}; it has: {'; '.join(listing) or 'none'} "
        "(images are told apart by name, then by platform)"
    )


def _detect(head: bytes) -> str:
    for magic, compression in _MAGIC:
        if head.startswith(magic):
            return compression
    return "bzip2" if _BZIP2.match(head) else "none"


def _import_layer(source, blob: _Blob, diff_id: str, layer_dir: str, zstd, what: str) -> dict:
    """Copies one blob verbatim into `layer_dir` and writes its layer.json, after checking its
    digest against the descriptor, its uncompressed tar against the config's diff_id, and
    every header of that tar (strata.core.oci.layertar): a corrupt layer is refused here, at
    import, whatever reads the base later."""
    os.makedirs(layer_dir)
    with source.open(blob.name) as src:
        head = src.read(CHUNK)
        compression = _detect(head)
        if compression not in SUFFIXES:
            raise ValueError(f"{what} is {compression}-compressed: only gzip and zstd are read")
        if blob.compression not in (None, compression):
            raise ValueError(f"{what}: its media type says {blob.compression}, it is {compression}")
        path = os.path.join(layer_dir, "layer.tar" + SUFFIXES[compression])
        with open(path, "wb") as f:
            out = HashingWriter(f)
            while head:
                out.write(head)
                head = src.read(CHUNK)
    if blob.digest is not None:
        size = out.size if blob.size is None else blob.size
        _check_blob(what, blob.digest, size, actual=(out.digest_str(), out.size))
    if compression == "zstd" and not zstd:
        # Nothing in the standard library reads zstd: without the binary the blob's digest is
        # checked (for OCI sources) but its diff_id is taken on trust from the config, its
        # tar is not walked, and its uncompressed size stays unknown (null in layer.json).
        actual, size = diff_id, None
    elif compression == "none":
        with open(path, "rb") as tar:
            layertar.check(tar, what)
        actual, size = out.digest_str(), out.size
    else:
        with DecompressedReader(path, compression, zstd) as tar:
            layertar.check(tar, what)
            actual, size = tar.finish(), tar.size
    if actual != diff_id:
        raise ValueError(f"{what}: its tar has diff_id {actual}, the config says {diff_id}")
    info = {
        "diff_id": diff_id,
        "size": size,
        "blob": os.path.basename(path),
        "digest": out.digest_str(),
        "blob_size": out.size,
        "compression": compression,
    }
    _write_json(os.path.join(layer_dir, "layer.json"), info)
    return info


def _json_bytes(data: dict) -> bytes:
    """A base dir's base.json, or an imported layer's layer.json."""
    return (json.dumps(data, indent=2) + "\n").encode()


def _write_json(path: str, data: dict) -> None:
    with open(path, "wb") as f:
        f.write(_json_bytes(data))


def _base_files(config_bytes: bytes, manifest_digest: str, media_type: str) -> list:
    """A base dir's config.json and base.json, as (path, bytes)."""
    info = BaseInfo(image.sha256_digest(config_bytes), manifest_digest, media_type).to_json()
    return [("config.json", config_bytes), ("base.json", _json_bytes(info))]


def _write_files(tmp: str, files: list) -> None:
    """Writes (path, bytes) files and links or copies (path, Layer) blobs under `tmp`."""
    for path, content in files:
        target = os.path.join(tmp, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(content, Layer):
            link_or_copy(content.blob_path, target)
        else:
            with open(target, "wb") as f:
                f.write(content)


def _import(source, docker: bool, out: str, ref, platform, zstd) -> dict:
    candidates = _docker_candidates(source) if docker else _oci_candidates(source)
    chosen = _select(candidates, ref, platform, source.root)
    if docker:
        config_bytes, _ = _docker_config(source, chosen.entry["Config"])
        blobs = []
        for name in chosen.entry["Layers"]:
            match = _BLOB_NAME.match(_member_name(name))
            blobs.append(_Blob(name, match and "sha256:" + match.group(1), None, None))
    else:
        config_bytes, blobs = _oci_manifest(source, chosen.entry)
    diff_ids = image.base_parts(json.loads(config_bytes))[1]
    if len(diff_ids) != len(blobs):
        raise ValueError(f"the image has {len(blobs)} layers but {len(diff_ids)} diff_ids")
    result = {}

    def write(tmp: str) -> None:
        os.makedirs(os.path.join(tmp, "layers"))
        infos = []
        for i, (blob, diff_id) in enumerate(zip(blobs, diff_ids)):
            layer_dir = os.path.join(tmp, "layers", layer_dir_name(i))
            what = f"layer {i} ({blob.name})"
            infos.append(_import_layer(source, blob, diff_id, layer_dir, zstd, what))
            if docker and infos[-1]["size"] is None:
                raise ValueError(f"{what} is zstd: reading one from a docker-archive needs --zstd")
        if docker:
            # A docker-archive holds no manifest: this is the one `assemble` reports for a
            # docker-archive, over the layers as tars.
            layers = [as_tar(info) for info in infos]
            manifest = image.make_manifest(config_bytes, layers, oci=False)
            digest = image.sha256_digest(image.canonical_json(manifest))
            media_type = media_types.DOCKER_MANIFEST
        else:
            digest, media_type = chosen.entry["digest"], chosen.entry["mediaType"]
        files = _base_files(config_bytes, digest, media_type)
        _write_files(tmp, files)
        result.update(json.loads(dict(files)["base.json"]))

    write_dir_atomically(out, write)
    return result


def import_base(archive: str, out: str, ref=None, platform=None, zstd=None) -> dict:
    """Writes the base dir of the image in `archive` (a docker-archive or oci-archive file, or
    an OCI layout directory) to `out`, atomically; returns base.json's data.

    `ref` picks the image by org.opencontainers.image.ref.name (OCI) or RepoTags entry
    (docker-archive), `platform` ("os/arch[/variant]") by strata.core.oci.platforms' rules
    (which a single image must meet too); with neither, the source must hold one image. A
    tar holding manifest.json is read as a docker-archive (so docker 25's saves, which are OCI
    layouts too, keep their RepoTags)."""
    if zstd is not None and not os.path.isabs(zstd):
        raise ValueError(f"--zstd must be the zstd binary's absolute path: {zstd!r}")
    if os.path.isdir(archive):
        source, docker = _Layout(archive), False
        if not source.has("oci-layout"):
            raise ValueError(f"{archive} is a directory but not an OCI layout (no oci-layout)")
    elif os.path.isfile(archive):
        source = _Archive(archive)
        docker = source.has("manifest.json")
        if not docker and not source.has("oci-layout"):
            raise ValueError(f"{archive} has neither manifest.json nor oci-layout")
    else:
        raise ValueError(f"{archive} does not exist")
    try:
        return _import(source, docker, out, ref, platform, zstd)
    except tarfile.TarError as e:
        raise ValueError(f"{archive}: {e}") from None
    finally:
        source.close()


# An imported layer's layer.json: what `layer` writes but "entries", which no image records.
_LAYER_INFO = ("diff_id", "size", "blob", "digest", "blob_size", "compression")


def base_dir_files(config_bytes: bytes, layers: list) -> list:
    """The base dir of an image Strata built, from its config and `Layer`s (its own base's
    first), as `import-base` writes it of the image's oci output: (path, bytes) of config.json,
    base.json and each layers/NNN/layer.json, and (path, Layer) of each blob, which is placed,
    never read. `write_base_dir` writes it; the Pants rules make it with digest operations."""
    manifest = image.make_manifest(config_bytes, [layer.info for layer in layers], oci=True)
    digest = image.sha256_digest(image.canonical_json(manifest))
    files = _base_files(config_bytes, digest, media_types.OCI_MANIFEST)
    for i, layer in enumerate(layers):
        layer_dir = posixpath.join("layers", layer_dir_name(i))
        info = {key: layer.info[key] for key in _LAYER_INFO if key in layer.info}
        files.append((posixpath.join(layer_dir, "layer.json"), _json_bytes(info)))
        if not layer.stored:  # else the image spec's blob store holds it
            files.append((posixpath.join(layer_dir, info["blob"]), layer))
    return files


def write_base_dir(config_bytes: bytes, layer_dirs: list, out_dir: str) -> dict:
    """Writes the base dir of an image Strata assembled (`base_dir_files`), from its config
    (`assemble --config-out`) and the `layer` dirs of all its layers, its own base's included,
    bottom first; returns base.json's data, which names the manifest of its oci and oci-archive
    outputs. Blobs are hard-linked where possible."""
    try:
        diff_ids = image.base_parts(json.loads(config_bytes))[1]
    except ValueError as e:
        raise ValueError(f"the config: {e}") from None
    layers = [load_layer(LayerRef(d)) for d in layer_dirs]
    if [layer.info["diff_id"] for layer in layers] != diff_ids:
        raise ValueError("the layer dirs' diff_ids are not the config's rootfs.diff_ids")
    files = base_dir_files(config_bytes, layers)

    def write(tmp: str) -> None:
        os.makedirs(os.path.join(tmp, "layers"))
        _write_files(tmp, files)

    write_dir_atomically(out_dir, write)
    return json.loads(dict(files)["base.json"])


def import_base_command(options) -> None:
    if options.platform is not None:
        platforms.parse(options.platform)
    import_base(options.archive, options.out, options.ref, options.platform, options.zstd)
