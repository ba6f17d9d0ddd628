"""The `descriptor` output format: the image as one small JSON document, in the spirit of
nix2container's image JSON: the exact manifest and config, and each layer's descriptor and where
its blob is, never a blob's bytes. Strata's blob store holds the layers (`sha256/<hex>` under
`[strata].blob_store`); `pants run` and `pants publish` need nothing more."""

import json

from strata.core.oci import image, media_types
from strata.core.oci.model import Image

SCHEMA = "strata.image.v1"


def image_descriptor(img: Image) -> bytes:
    """The document's bytes: sorted keys, indented, the same for the same image anywhere (no
    path of this machine: a layer is `in` the blob store, or in the base it comes from)."""
    manifest = img.manifest_bytes(oci=True)
    document = {
        "schema": SCHEMA,
        "repo_tag": img.repo_tag,
        "platform": img.platform,
        "manifest": {
            "digest": image.sha256_digest(manifest),
            "mediaType": media_types.OCI_MANIFEST,
            "json": manifest.decode(),
        },
        "config": {"digest": img.config_digest, "json": img.config_bytes.decode()},
        "layers": [
            {
                "digest": layer.info["digest"],
                "size": layer.info["blob_size"],
                "diff_id": layer.info["diff_id"],
                "mediaType": media_types.layer_media_type(layer.info["compression"], True),
                "comment": layer.comment,
                "in": "base" if layer.base and not layer.stored else "blob-store",
            }
            for layer in img.layers
        ],
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def write_descriptor(img: Image, f, scratch: str) -> None:
    f.write(image_descriptor(img))
