"""The image index of `oci_image_index`: its bytes, its platforms and its layout's index.json."""

import json

import pytest

from strata.core.oci import image, index, media_types

CONFIG = b'{"architecture":"amd64","os":"linux"}'


def layout_index(platform: dict, tag: str = "t", layers: int = 1) -> bytes:
    """A single-image layout's index.json, as `oci_contents` writes it."""
    layer = {"compression": "none", "digest": image.sha256_digest(b"l"), "blob_size": 1}
    manifest = image.canonical_json(
        image.make_manifest(CONFIG + json.dumps(platform).encode(), [layer] * layers, oci=True)
    )
    return image.canonical_json(image.make_index(manifest, tag, platform))


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}


def test_the_index_lists_each_manifest_with_its_platform_in_order():
    amd64, arm64 = layout_index(AMD64, "a"), layout_index(dict(ARM64, variant="v8"), "b")
    data = index.image_index([("//:amd64", amd64), ("//:arm64", arm64)])
    assert data == image.canonical_json(json.loads(data))  # canonical: sorted, no spaces
    parsed = json.loads(data)
    assert parsed["schemaVersion"] == 2 and parsed["mediaType"] == media_types.OCI_INDEX
    expected = []
    for layout in (amd64, arm64):
        (descriptor,) = json.loads(layout)["manifests"]
        del descriptor["annotations"]  # each image's own tag is no part of the index
        expected.append(descriptor)
    assert parsed["manifests"] == expected
    assert [m["platform"] for m in parsed["manifests"]] == [AMD64, dict(ARM64, variant="v8")]
    assert all(m["mediaType"] == media_types.OCI_MANIFEST for m in parsed["manifests"])


def test_the_layout_names_the_index_by_tag_and_the_default_tag_is_its_digest():
    images = [("//:amd64", layout_index(AMD64)), ("//:arm64", layout_index(ARM64))]
    index_bytes, index_json, tag = index.index_layout(images, None)
    digest = image.sha256_digest(index_bytes)
    assert tag == image.content_tag(digest)
    assert json.loads(index_json) == {
        "schemaVersion": 2,
        "mediaType": media_types.OCI_INDEX,
        "manifests": [
            {
                "mediaType": media_types.OCI_INDEX,
                "digest": digest,
                "size": len(index_bytes),
                "annotations": {image.REF_NAME_ANNOTATION: tag},
            }
        ],
    }
    assert index.index_layout(images, None) == (index_bytes, index_json, tag)  # reproducible


def test_an_explicit_tag_names_the_same_index():
    images = [("//:amd64", layout_index(AMD64)), ("//:arm64", layout_index(ARM64))]
    default = index.index_layout(images, None)
    tagged = index.index_layout(images, "v1")
    assert tagged[0] == default[0] and tagged[2] == "v1"
    (named,) = json.loads(tagged[1])["manifests"]
    assert named["annotations"] == {image.REF_NAME_ANNOTATION: "v1"}
    with pytest.raises(ValueError, match="invalid tag"):
        index.index_layout(images, "-bad")


@pytest.mark.parametrize("first, second", [
    (ARM64, dict(ARM64, variant="v8")),  # arm64 is arm64/v8 to every client
    (AMD64, dict(AMD64, variant="v1")),
    (AMD64, AMD64),
])
def test_two_images_of_one_platform_are_an_error_naming_both(first, second):
    s390x = {"os": "linux", "architecture": "s390x"}
    images = [("//:one", layout_index(first)), ("//:other", layout_index(s390x)),
              ("//:two", layout_index(second, layers=2))]
    with pytest.raises(index.DuplicatePlatform, match="//:one and //:two are both linux/"):
        index.image_index(images)


def test_arm_variants_are_distinct_platforms():
    arm = {"os": "linux", "architecture": "arm"}
    images = [(f"//:{v}", layout_index(dict(arm, variant=v))) for v in ("v6", "v7")]
    platforms = [m["platform"] for m in json.loads(index.image_index(images))["manifests"]]
    assert platforms == [dict(arm, variant="v6"), dict(arm, variant="v7")]


@pytest.mark.parametrize("layout, problem", [
    (b"{}", "KeyError"),
    (image.canonical_json({"manifests": []}), "ValueError"),
    (image.canonical_json(image.layout_index(
        {"mediaType": media_types.OCI_INDEX, "digest": image.sha256_digest(b"i"), "size": 1},
        "t")), "not an OCI image manifest"),
])
def test_an_image_that_is_not_a_single_image_layout_is_refused(layout, problem):
    message = f"//:bad: not a single-image OCI layout index: .*{problem}"
    with pytest.raises(ValueError, match=message):
        index.image_index([("//:bad", layout)])


def test_an_empty_index_is_refused():
    with pytest.raises(ValueError, match="at least one image"):
        index.image_index([])
