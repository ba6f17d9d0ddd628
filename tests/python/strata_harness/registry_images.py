"""Hand-made images as the registry client takes them (manifest bytes and a blob list), an
OCI layout indexing one image per platform, and helpers to read back what a registry holds.
Made by the harness, independently of Strata's image writers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from strata.core.oci import image
from strata.core.oci import media_types
from strata_harness.images import make_oci_layout
from strata_harness.tools import require_tool, run_tool

MiB = 1024 * 1024


@dataclass
class LocalImage:
    manifest: bytes
    blobs: List[Tuple[str, int, str]]  # config first, then the layers

    @property
    def digest(self) -> str:
        return image.sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        return sum(size for _, size, _ in self.blobs)

    @property
    def platform(self) -> str:
        """os/arch, from the config (the harness's images are the host's)."""
        config = json.loads(Path(self.blobs[0][2]).read_bytes())
        return f"{config['os']}/{config['architecture']}"


def local_image(path: Path, files: dict, **kwargs) -> LocalImage:
    """An image made by the harness (independent of Strata), as push_image takes it."""
    layout = make_oci_layout(path, files, **kwargs)

    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / image.digest_hex(digest)

    index = json.loads((layout / "index.json").read_bytes())
    manifest = blob(index["manifests"][0]["digest"]).read_bytes()
    parsed = json.loads(manifest)
    descriptors = [parsed["config"], *parsed["layers"]]
    return LocalImage(
        manifest, [(d["digest"], d["size"], str(blob(d["digest"]))) for d in descriptors]
    )


def index_layout(tmp: Path, *platforms: str) -> Path:
    """An OCI layout whose ref "multi" is an index of one image per platform ("os/arch[/v]"),
    each with /etc/arch holding its platform."""
    out = tmp / "multi"
    (out / "blobs" / "sha256").mkdir(parents=True)

    def put(data: bytes, media_type: str) -> dict:
        (out / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
        return {"mediaType": media_type, "digest": image.sha256_digest(data), "size": len(data)}

    entries = []
    for platform in platforms:
        fields = dict(zip(("os", "architecture", "variant"), platform.split("/")))
        files = {"etc/arch": f"{platform}\n".encode()}
        single = local_image(tmp / platform.replace("/", "-"), files)
        config = {**json.loads(Path(single.blobs[0][2]).read_bytes()), **fields}
        layer = Path(single.blobs[1][2]).read_bytes()
        manifest = json.loads(single.manifest)
        manifest["config"] = put(image.canonical_json(config), media_types.OCI_CONFIG)
        manifest["layers"] = [put(layer, media_types.OCI_LAYER)]
        entry = put(image.canonical_json(manifest), media_types.OCI_MANIFEST)
        entry["platform"] = fields
        entries.append(entry)
    index = {"schemaVersion": 2, "mediaType": media_types.OCI_INDEX, "manifests": entries}
    top = put(image.canonical_json(index), media_types.OCI_INDEX)
    top["annotations"] = {image.REF_NAME_ANNOTATION: "multi"}
    (out / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    (out / "index.json").write_bytes(image.canonical_json({"schemaVersion": 2, "manifests": [top]}))
    return out


def layer_files(path: str) -> Dict[str, bytes]:
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":  # skopeo may compress layers on the way into a registry
        data = gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def write_random(path: Path, size: int) -> str:
    """Writes `size` random bytes in 1 MiB pieces; returns their digest."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for offset in range(0, size, MiB):
            piece = os.urandom(min(MiB, size - offset))
            digest.update(piece)
            f.write(piece)
    return "sha256:" + digest.hexdigest()


def skopeo_copy(src: str, dest: str, *flags: str) -> None:
    run_tool([require_tool("skopeo"), "--insecure-policy", "copy", "--quiet", *flags, src, dest])
