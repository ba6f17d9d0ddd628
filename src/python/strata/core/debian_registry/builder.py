"""An image of Debian packages, built on demand as `pants package` would build an `oci_image` of
one `debian_packages` target locked against the same snapshot: the same nodes
(`debian.nodes`), the same popularity layering and budget (`graph.layering`), the same layer
writer and image model, so the same digests.

Everything lands in the cache directory: blobs (`.deb`s, layers, configs, manifests) in a blob
store, then a record naming them (`records.py`), so a record's blobs always exist and a
restart keeps everything. A layer is keyed by its spec, its `.deb`s and the code that writes
it, and is reused by every image that holds the same group of packages; an image is keyed by
its packages, architectures, the snapshot and the settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from strata.core.build.blobstore import BlobStore
from strata.core.build.layer import build_layer
from strata.core.build.spec import LayerSettings, LayerSpec
from strata.core.debian.architectures import image_platform
from strata.core.debian.lock import resolve
from strata.core.debian.nodes import deb_path, debs_part, node_key, package_graph
from strata.core.debian.rootfs import merged_usr_entries
from strata.core.debian_registry.config import RegistryConfig
from strata.core.debian_registry.download import fetch_into_store
from strata.core.debian_registry.names import ImageName
from strata.core.debian_registry.records import read_record, write_record
from strata.core.debian_registry.snapshot import Snapshot
from strata.core.errors import InvalidInput
from strata.core.graph.layering import assign_layers, content_budget, layer_comment
from strata.core.oci import media_types
from strata.core.oci.image import (
    canonical_json,
    digest_hex,
    epoch_seconds,
    make_image_index,
    sha256_digest,
)
from strata.core.oci.model import image_from_spec
from strata.core.oci.push_manifest import as_docker_manifest, docker_manifest_list
from strata.core.oci.spec import ImageSpec, LayerRef

log = logging.getLogger("strata.debian_registry")

_DOWNLOADS = 4  # .debs fetched at once, per image


class ImageUnknown(InvalidInput):
    """No image of these packages: an unknown package or an unsatisfiable set (404)."""


class BuiltImage(NamedTuple):
    """An image's top manifest (or index) in each format, by digest."""

    oci: str
    docker: str


class Once:
    """Runs a job once per key at a time: callers for a key already running wait for its
    result (or its error) instead of running it again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Dict[str, Future] = {}

    def run(self, key: str, job: Callable[[], object]):
        with self._lock:
            future = self._running.get(key)
            mine = future is None
            if mine:
                future = self._running[key] = Future()
        if not mine:
            return future.result()
        try:
            result = job()
            future.set_result(result)
            return result
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            with self._lock:
                del self._running[key]


def code_identity() -> str:
    """The core's code as loaded (every `strata.core` module's source): part of every key, so
    that a cache written by another Strata is never served for what this one would build."""
    digest = hashlib.sha256()
    for name in sorted(n for n in sys.modules if n.split(".")[:2] == ["strata", "core"]):
        loader = getattr(sys.modules[name], "__loader__", None)
        source = loader.get_source(name) if hasattr(loader, "get_source") else None
        digest.update(f"{name}\0{source or ''}\0".encode())
    return digest.hexdigest()


class _MemoryFiles:
    """The image model's inputs (layers' layer.json) from memory rather than a directory."""

    def __init__(self, files: Dict[str, bytes]):
        self._files = files

    def read(self, path: str) -> bytes:
        return self._files[path]


class ImageBuilder:
    def __init__(self, config: RegistryConfig, snapshot: Snapshot, cache_dir: str,
                 store: BlobStore, mirror: str, jobs: int):
        self.config, self.snapshot, self.store, self.mirror = config, snapshot, store, mirror
        self._records = cache_dir
        self._scratch = os.path.join(cache_dir, "scratch")
        self._code = code_identity()
        self._jobs = threading.BoundedSemaphore(jobs)
        self._images, self._layers, self._debs = Once(), Once(), Once()
        mtime = epoch_seconds(config.created)
        self._settings = LayerSettings(mtime, 0, 0, "root", "root", config.compression, None)

    # --- what the server serves ---

    def image(self, name: ImageName) -> BuiltImage:
        # The architectures built, not the prefix: a name without one is an index of every
        # configured architecture, another image when the configuration names others.
        key = self._key("image", self._architectures(name), name.packages,
                        self.snapshot.release_sha256, self.config.max_layers,
                        self.config.compression, self.config.created)
        path = self._record_path("images", key)
        record = read_record(path)
        if record is not None:
            return BuiltImage(**record)
        return self._images.run(key, lambda: self._build_image(name, path))

    def manifest(self, digest: str) -> Optional[Tuple[bytes, str]]:
        """A manifest or index this registry built: its bytes and media type, else None."""
        record = read_record(self._record_path("manifests", f"sha256:{digest_hex(digest)}"))
        if record is None:
            return None
        with self.store.open_verified(digest, record["size"], f"manifest {digest}") as f:
            return f.read(record["size"] + 1), record["mediaType"]

    # --- building ---

    def _build_image(self, name: ImageName, path: str) -> BuiltImage:
        record = read_record(path)  # built meanwhile by a caller that finished first
        if record is not None:
            return BuiltImage(**record)
        with self._jobs:
            started = time.monotonic()
            arches = self._architectures(name)
            images = [self._arch_image(name, arch) for arch in arches]
            if len(images) == 1:
                (_, oci_manifest, docker_manifest), = images
                oci, docker = sha256_digest(oci_manifest), sha256_digest(docker_manifest)
            else:
                oci = self._put_manifest(canonical_json(make_image_index([
                    {"mediaType": media_types.OCI_MANIFEST, "digest": sha256_digest(manifest),
                     "size": len(manifest), "platform": platform}
                    for platform, manifest, _ in images
                ])), media_types.OCI_INDEX)
                docker = self._put_manifest(
                    docker_manifest_list([(platform, docker) for platform, _, docker in images]),
                    media_types.DOCKER_MANIFEST_LIST,
                )
            built = BuiltImage(oci, docker)
            write_record(path, built._asdict())
            log.info("built %s (%s) in %.1f s: %s", "/".join(name.requested), ", ".join(arches),
                     time.monotonic() - started, oci)
            return built

    def _arch_image(self, name: ImageName, arch: str) -> Tuple[dict, bytes, bytes]:
        """(platform, OCI manifest, Docker manifest) of the image for one architecture, its
        blobs stored."""
        try:
            locked = resolve(self.snapshot.indexes[arch], name.packages, arch)["packages"]
        except ValueError as e:
            raise ImageUnknown(f"{arch}: {e}") from None
        debs = self._fetch_debs(locked)
        groups = assign_layers(package_graph(locked),
                               content_budget(self.config.max_layers, keeps_top=True))
        package_of = {node_key(package): package for package in locked}
        customisation = ("entries", tuple(merged_usr_entries()))
        specs: List[Tuple[LayerSpec, str, Dict[str, str]]] = []
        for group in groups:
            packages = [package_of[key] for key in group]
            specs.append((LayerSpec(self._settings, (debs_part(packages),)), layer_comment(group),
                          {p: debs[p] for p in packages}))
        if self.config.max_layers == 1:  # the customisation content joins the one layer
            spec, comment, inputs = specs.pop()
            specs.append((spec._replace(parts=(customisation, *spec.parts)),
                          f"{comment}, customisation", inputs))
        else:
            specs.append((LayerSpec(self._settings, (customisation,)), "customisation layer", {}))
        built = [self._layer(spec, inputs) for spec, _, inputs in specs]
        reused = sum(1 for _, fresh in built if not fresh)
        log.info("%s for %s: %d packages, %d layers (%d reused)", "/".join(name.requested),
                 arch, len(locked), len(built), reused)
        platform = image_platform(arch)
        layer_files = {f"layers/{i:03d}/layer.json": json.dumps(info).encode()
                       for i, (info, _) in enumerate(built)}
        spec = ImageSpec(
            format="oci",
            layers=tuple(LayerRef(f"layers/{i:03d}", comment)
                         for i, (_, comment, _) in enumerate(specs)),
            config={**platform, "created": self.config.created, "config": {}},
            repository="strata/debian-registry",
            tag="latest",
        )
        img = image_from_spec(spec, "", _MemoryFiles(layer_files), self.store.root)
        self._put_blob(img.config_bytes)
        oci = img.manifest_bytes(oci=True)
        docker = as_docker_manifest(oci, img.config_bytes)
        self._put_manifest(oci, media_types.OCI_MANIFEST)
        self._put_manifest(docker, media_types.DOCKER_MANIFEST)
        return platform, oci, docker

    def _fetch_debs(self, locked: Dict[str, dict]) -> Dict[str, str]:
        """Every locked package's .deb in the blob store: its digest, by package."""
        def fetch(package: str) -> str:
            entry = locked[package]
            digest = f"sha256:{entry['sha256']}"
            self._debs.run(digest, lambda: fetch_into_store(
                self.store, f"{self.mirror}/{entry['path']}", digest, entry["size"],
                f"{package} {entry['version']} ({entry['path']})"))
            return digest

        with ThreadPoolExecutor(_DOWNLOADS) as pool:
            return dict(zip(locked, pool.map(fetch, locked)))

    def _layer(self, spec: LayerSpec, debs: Dict[str, str]) -> Tuple[dict, bool]:
        """The layer's layer.json (its blob in the store) and whether it was built now."""
        key = self._key("layer", spec.to_json(), sorted(debs.items()))
        path = self._record_path("layers", key)

        def build() -> Tuple[dict, bool]:
            info = read_record(path)
            if info is not None and self._stored(info["digest"], info["blob_size"]):
                return info, False
            sandbox = os.path.join(self._scratch, f"{key}-{os.urandom(4).hex()}")
            try:
                os.makedirs(os.path.join(sandbox, "debs"))
                for package, digest in debs.items():
                    os.link(self.store.path(digest), os.path.join(sandbox, deb_path(package)))
                info = build_layer(spec, sandbox, os.path.join(sandbox, "out"), None, self.store)
            finally:
                shutil.rmtree(sandbox, ignore_errors=True)
            write_record(path, info)
            return info, True

        return self._layers.run(key, build)

    def _stored(self, digest: str, size: int) -> bool:
        """Whether the store holds the blob: written by rename and never modified, a blob of
        the right size is whole."""
        try:
            return os.stat(self.store.path(digest)).st_size == size
        except FileNotFoundError:
            return False

    def _put_blob(self, data: bytes) -> str:
        with self.store.writer() as out:
            out.write(data)
        return out.digest

    def _put_manifest(self, data: bytes, media_type: str) -> str:
        digest = self._put_blob(data)
        write_record(self._record_path("manifests", digest),
                     {"mediaType": media_type, "size": len(data)})
        return digest

    def _architectures(self, name: ImageName) -> List[str]:
        return [name.architecture] if name.architecture else list(self.config.architectures)

    def _key(self, *parts) -> str:
        return hashlib.sha256(json.dumps([self._code, *parts], sort_keys=True).encode()
                              ).hexdigest()

    def _record_path(self, kind: str, key: str) -> str:
        return os.path.join(self._records, kind, key.replace("sha256:", "") + ".json")
