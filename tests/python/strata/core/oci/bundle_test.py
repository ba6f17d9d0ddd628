"""The `bundle` subcommand: several images in one docker-archive, shared blobs stored once."""

import hashlib
import json
import pathlib

from strata.core import cli as core_cli
from strata.core.oci import image

from formats_test import (
    LAYER_FILES,
    assemble,
    make_spec,
    read_docker_archive,
    run,
    sha256_file,
    tar_bytes,
    tool,
    unpack_and_check,
    write_json,
    write_layer,
)  # pants: no-infer-dep

SHARED = {"etc/shared.txt": b"in every image\n"}


def image_dir(root: pathlib.Path, name: str, own: dict, tag="v1", repository=None) -> str:
    """An image's inputs in a directory of their own, as the rules lay a bundle's out: the
    spec beside its layer directories, whose paths it gives relative to itself."""
    directory = root / name
    write_layer(directory / "layers/000", tar_bytes(SHARED))
    write_layer(directory / "layers/001", tar_bytes(own))
    spec = {
        "format": "docker-archive",
        "layers": [{"dir": "layers/000", "comment": "shared"}, {"dir": "layers/001"}],
        "config": {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:01Z",
            "config": {"Entrypoint": ["/bin/hello"]},
        },
        "repository": repository or f"bundle/{name}",
        "tag": tag,
    }
    return write_json(directory / "image-spec.json", spec)


def bundle(root: pathlib.Path, specs: list, out: str = "bundle.tar") -> int:
    argv = ["bundle", "--out", str(root / out)]
    for spec in specs:
        argv += ["--spec", spec]
    return core_cli.main(argv)


def test_two_images_sharing_a_layer_store_it_once(tmp_path):
    specs = [
        image_dir(tmp_path, "a", {"etc/a.txt": b"a\n"}),
        image_dir(tmp_path, "b", {"etc/b.txt": b"b\n"}, tag=None),
    ]
    assert bundle(tmp_path, specs) == 0
    names, members = read_docker_archive(tmp_path / "bundle.tar")
    entries = json.loads(members["manifest.json"])
    tag_b = image.content_tag(image.sha256_digest(members[entries[1]["Config"]]))
    assert [e["RepoTags"] for e in entries] == [["bundle/a:v1"], [f"bundle/b:{tag_b}"]]
    shared = image.digest_hex(image.sha256_digest(tar_bytes(SHARED))) + "/layer.tar"
    assert [e["Layers"][0] for e in entries] == [shared, shared]
    assert names.count(shared) == 1
    # 3 layers (the shared one once) with their directories, 2 configs, manifest.json last.
    assert len(names) == 3 * 2 + 2 + 1 and names[-1] == "manifest.json"
    for entry, own in zip(entries, ({"etc/a.txt": b"a\n"}, {"etc/b.txt": b"b\n"})):
        assert members[entry["Layers"][1]] == tar_bytes(own)
        config = json.loads(members[entry["Config"]])
        assert entry["Config"] == hashlib.sha256(members[entry["Config"]]).hexdigest() + ".json"
        assert config["rootfs"]["diff_ids"] == [
            "sha256:" + path.split("/")[0] for path in entry["Layers"]
        ]
    # The same inputs give the same bytes.
    assert bundle(tmp_path, specs, "again.tar") == 0
    assert sha256_file(tmp_path / "bundle.tar") == sha256_file(tmp_path / "again.tar")


def test_a_config_shared_by_two_names_is_stored_once(tmp_path):
    """Two repositories of the same image: one config, two manifest entries."""
    own = {"etc/a.txt": b"a\n"}
    specs = [image_dir(tmp_path, n, own, repository=f"bundle/{n}") for n in ("x", "y")]
    assert bundle(tmp_path, specs) == 0
    names, members = read_docker_archive(tmp_path / "bundle.tar")
    x, y = json.loads(members["manifest.json"])
    assert x["Config"] == y["Config"] and names.count(x["Config"]) == 1
    assert (x["RepoTags"], y["RepoTags"]) == (["bundle/x:v1"], ["bundle/y:v1"])


def test_a_bundle_of_one_image_is_its_docker_archive(tmp_path):
    spec = make_spec(tmp_path)
    assert bundle(tmp_path, [spec]) == 0
    out, _ = assemble(tmp_path, spec)
    assert (tmp_path / "bundle.tar").read_bytes() == out.read_bytes()


def test_skopeo_reads_each_image_and_it_passes_the_strict_check(tmp_path):
    """By repository:tag (then skopeo + umoci: the strict check), and by position."""
    one = make_spec(tmp_path, tag="one")
    two = dict(json.loads(pathlib.Path(one).read_text()), tag="two")
    specs = [one, write_json(tmp_path / "two.json", two)]
    assert bundle(tmp_path, specs) == 0
    archive = tmp_path / "bundle.tar"
    for i, tag in enumerate(("one", "two")):
        (tmp_path / tag).mkdir()
        unpack_and_check(tmp_path / tag, f"docker-archive:{archive}:app/image:{tag}")
        skopeo = tool("skopeo")
        by_position = f"docker-archive:{archive}:@{i}"
        raw = json.loads(run(tmp_path, skopeo, "inspect", "--raw", by_position))
        assert len(raw["layers"]) == len(LAYER_FILES)


def test_two_images_of_one_repo_tag_are_an_error_naming_both(tmp_path, capsys):
    specs = [
        image_dir(tmp_path, "a", {"etc/a.txt": b"a\n"}, repository="bundle/same"),
        image_dir(tmp_path, "b", {"etc/b.txt": b"b\n"}, repository="bundle/same"),
    ]
    assert bundle(tmp_path, specs) == 1
    err = capsys.readouterr().err
    assert f"{specs[0]} and {specs[1]} are both bundle/same:v1" in err
    assert not list(tmp_path.glob("bundle.tar*"))


def test_compressed_own_layers_write_nothing(tmp_path, capsys):
    good = image_dir(tmp_path, "a", {"etc/a.txt": b"a\n"})
    bad = make_spec(tmp_path, compression="gzip")
    assert bundle(tmp_path, [good, bad]) == 1
    assert "docker-archive needs uncompressed layers" in capsys.readouterr().err
    assert not list(tmp_path.glob("bundle.tar*"))


def test_no_spec_is_a_usage_error(tmp_path, capsys):
    assert bundle(tmp_path, []) == 2
    assert "a bundle needs at least one --spec" in capsys.readouterr().err
