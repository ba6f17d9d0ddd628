"""Hand-made test images (independent of Strata's core) and the strict validity check."""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, Tuple, Union

from strata_harness.tools import require_tool, run_tool

FORMATS = ("docker-archive", "oci", "oci-archive")
OCI_REF_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Symlink:
    target: str


# A file's content (mode 0644), (content, mode), or a symlink.
FileSpec = Union[bytes, Tuple[bytes, int], Symlink]


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _tarinfo(
    name: str, kind: bytes, mode: int, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def layer_tar(files: Mapping[str, FileSpec]) -> bytes:
    """A deterministic layer: parents (0755) implied, entries sorted, root-owned, mtime 0."""
    entries: dict[str, FileSpec | None] = {}
    for raw_path, spec in files.items():
        parts = [p for p in raw_path.split("/") if p]
        for i in range(1, len(parts)):
            entries.setdefault("/".join(parts[:i]), None)
        entries["/".join(parts)] = spec
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries, key=lambda p: p.encode()):
            spec = entries[path]
            if spec is None:
                tar.addfile(_tarinfo(path, tarfile.DIRTYPE, 0o755))
            elif isinstance(spec, Symlink):
                tar.addfile(_tarinfo(path, tarfile.SYMTYPE, 0o777, linkname=spec.target))
            else:
                data, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
                tar.addfile(_tarinfo(path, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _config(
    layer: bytes,
    entrypoint: Sequence[str] | None,
    cmd: Sequence[str] | None,
    env: Sequence[str],
    user: str | None,
    corrupt_diff_id: bool,
) -> bytes:
    """The image config for one layer; corrupt_diff_id records a wrong rootfs.diff_ids entry."""
    diff_id = "sha256:" + _sha256(layer + b"corrupt" if corrupt_diff_id else layer)
    container_config: dict[str, object] = {"Env": list(env)}
    if entrypoint is not None:
        container_config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        container_config["Cmd"] = list(cmd)
    if user is not None:
        container_config["User"] = user
    return _json(
        {
            "architecture": _arch(),
            "os": "linux",
            "created": "1970-01-01T00:00:01Z",
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:01Z", "created_by": "strata_harness"}],
        }
    )


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def make_docker_archive(
    path: str | os.PathLike[str],
    files: Mapping[str, FileSpec],
    *,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Sequence[str] = (),
    user: str | None = None,
    repo_tag: str = "strata-test/handmade:latest",
    corrupt_diff_id: bool = False,
) -> Path:
    """Writes a one-layer docker-archive (`docker save` layout) holding `files`.

    With corrupt_diff_id, skopeo already refuses it: a docker-archive's layers are named by
    their diff_ids, so reading one re-hashes it.
    """
    layer = layer_tar(files)
    config = _config(layer, entrypoint, cmd, env, user, corrupt_diff_id)
    config_name = _sha256(config) + ".json"
    layer_name = _sha256(layer) + "/layer.tar"
    manifest = _json([{"Config": config_name, "RepoTags": [repo_tag], "Layers": [layer_name]}])
    out = Path(path)
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(layer_name.split("/")[0], tarfile.DIRTYPE, 0o755))
        for name, data in ((layer_name, layer), (config_name, config), ("manifest.json", manifest)):
            tar.addfile(_tarinfo(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return out


def make_oci_layout(
    path: str | os.PathLike[str],
    files: Mapping[str, FileSpec],
    *,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Sequence[str] = (),
    user: str | None = None,
    ref: str = "latest",
    corrupt_diff_id: bool = False,
) -> Path:
    """Writes a one-layer OCI image layout directory (uncompressed layer) holding `files`.

    With corrupt_diff_id every blob still matches its digest, so skopeo copies it; only
    umoci, which re-hashes the unpacked layer against the config, rejects it.
    """
    layer = layer_tar(files)
    config = _config(layer, entrypoint, cmd, env, user, corrupt_diff_id)

    def descriptor(media_type: str, data: bytes) -> dict[str, object]:
        return {"mediaType": media_type, "digest": "sha256:" + _sha256(data), "size": len(data)}

    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        }
    )
    manifest_descriptor = descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    manifest_descriptor["annotations"] = {OCI_REF_ANNOTATION: ref}
    out = Path(path)
    (out / "blobs" / "sha256").mkdir(parents=True)
    for data in (layer, config, manifest):
        (out / "blobs" / "sha256" / _sha256(data)).write_bytes(data)
    (out / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(
        _json({"schemaVersion": 2, "manifests": [manifest_descriptor]})
    )
    return out


def make_busybox_image(
    path: str | os.PathLike[str],
    *,
    files: Mapping[str, FileSpec] | None = None,
    entrypoint: Sequence[str] | None = ("/bin/busybox", "echo", "hello"),
    **kwargs,
) -> Path:
    """A docker-archive with the host's static busybox at /bin/busybox and /bin/sh -> busybox,
    running `busybox echo hello` unless told otherwise; kwargs go to make_docker_archive."""
    busybox = Path(require_tool("busybox")).read_bytes()
    base: dict[str, FileSpec] = {"bin/busybox": (busybox, 0o755), "bin/sh": Symlink("busybox")}
    return make_docker_archive(path, {**base, **(files or {})}, entrypoint=entrypoint, **kwargs)


def image_format(path: str | os.PathLike[str]) -> str:
    """docker-archive, oci (layout directory) or oci-archive, from the image's contents."""
    p = Path(path)
    if p.is_dir():
        if (p / "oci-layout").is_file():
            return "oci"
        raise AssertionError(f"{p} is a directory without an oci-layout file")
    with tarfile.open(p) as tar:
        names = {os.path.normpath(n) for n in tar.getnames()}
    if "manifest.json" in names:
        return "docker-archive"
    if "oci-layout" in names:
        return "oci-archive"
    raise AssertionError(
        f"{p} is neither a docker-archive nor an oci-archive (members: {sorted(names)[:10]})"
    )


def read_docker_archive(path: str | os.PathLike[str]) -> tuple[dict, dict, list[dict[str, tarfile.TarInfo]]]:
    """(manifest entry, config, each layer's members by path) of a docker-archive."""
    with tarfile.open(path) as outer:
        (manifest,) = json.load(outer.extractfile("manifest.json"))
        config = json.load(outer.extractfile(manifest["Config"]))
        layers = []
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                layers.append({m.name.rstrip("/"): m for m in layer.getmembers()})
    return manifest, config, layers


def _oci_index(path: Path, fmt: str) -> dict:
    if fmt == "oci":
        return json.loads((path / "index.json").read_text())
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if os.path.normpath(member.name) == "index.json":
                return json.load(tar.extractfile(member))
    raise AssertionError(f"{path}: no index.json")


def source_ref(path: str | os.PathLike[str], fmt: str | None = None, ref: str | None = None) -> str:
    """The containers/image reference (skopeo's `transport:path[:ref]`) for an image on disk.

    For OCI layouts without `ref`, the index must hold a single manifest; its ref name is used.
    """
    p = Path(path).absolute()
    fmt = fmt or image_format(p)
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {FORMATS}")
    if ref is None and fmt != "docker-archive":
        manifests = _oci_index(p, fmt).get("manifests", [])
        if len(manifests) != 1:
            names = [m.get("annotations", {}).get(OCI_REF_ANNOTATION) for m in manifests]
            raise AssertionError(f"{p} holds {len(manifests)} manifests (refs {names}); pass ref=")
        ref = manifests[0].get("annotations", {}).get(OCI_REF_ANNOTATION)
    return f"{fmt}:{p}" + (f":{ref}" if ref else "")


def assert_valid_image(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    ref: str | None = None,
    unpack_to: str | os.PathLike[str] | None = None,
) -> None:
    """The strict check: skopeo copies the image to an OCI layout, then umoci unpacks it.

    umoci re-hashes every layer against the config's diff_ids, which skopeo does not for OCI
    layouts (it does for docker-archives, whose layers are named by diff_id). The unpacked
    bundle (rootfs/ + config.json) is kept at `unpack_to` when given (it must not exist).
    """
    skopeo, umoci = require_tool("skopeo"), require_tool("umoci")
    src = source_ref(path, fmt, ref)
    with tempfile.TemporaryDirectory(prefix="strata-validate-") as tmp:
        layout = Path(tmp, "layout")
        bundle = Path(unpack_to) if unpack_to is not None else Path(tmp, "bundle")
        rootless = ["--rootless"] if os.geteuid() != 0 else []
        try:
            run_tool([skopeo, "--insecure-policy", "copy", "--quiet", src, f"oci:{layout}:t"])
            run_tool([umoci, "unpack", *rootless, "--image", f"{layout}:t", str(bundle)])
        except AssertionError as e:
            raise AssertionError(f"{src} is not a valid image: {e}") from None
