"""The `pull` subcommand's layout."""

import json
import re

import pytest

from strata.core import cli as core_cli
from strata.core.oci import image, media_types
from strata.core.oci.platforms import PlatformError
from strata.core.registry.pull import pull_layout
from strata_harness import Fault, assert_valid_image


def test_pull_of_a_single_image_of_another_platform_fails(pushed, registry, tmp_path):
    own = pushed.platform
    where = f"{registry.host}/strata/faults@{pushed.digest}"
    message = f"^platform linux/s390x is not in {where}: it holds {own}$"
    with pytest.raises(PlatformError, match=message):
        pull_layout(registry.host, "strata/faults", pushed.digest, "linux/s390x", tmp_path / "x")
    assert pull_layout(registry.host, "strata/faults", pushed.digest, own, tmp_path / "y") == (
        pushed.digest
    )


def test_pull_retries_connections_dropped_mid_body(pushed, proxy, tmp_path, retry_warnings):
    (config, _, _), (layer, layer_size, _) = pushed.blobs
    cut_layer = proxy.add(Fault("cut", "GET", f"/blobs/{layer}", after=1000, times=2))
    reset_config = proxy.add(Fault("reset", "GET", f"/blobs/{config}", after=10))
    cut_manifest = proxy.add(Fault("cut", "GET", "/manifests/", after=10))

    out = tmp_path / "pulled"
    assert pull_layout(proxy.host, "strata/faults", pushed.digest, pushed.platform, out) == (
        pushed.digest
    )
    assert (cut_layer.applied, reset_config.applied, cut_manifest.applied) == (2, 1, 1)
    assert_valid_image(out, "oci")
    warnings = retry_warnings()
    assert len(warnings) == 4, warnings
    dropped = f"fetching blob {layer} from {proxy.host}/strata/faults: the connection dropped "
    assert sum(w.startswith(dropped + f"after 1000 of {layer_size} bytes") for w in warnings) == 2
    # A reset may discard what had arrived: the count is what the client received.
    assert any(f"blob {config} from" in w and "ConnectionResetError" in w for w in warnings)
    assert any("resolving" in w and "dropped after 10 of" in w for w in warnings)
    assert not any("digest is" in w for w in warnings)


# Manifests of the wrong shape: one line naming the image, never a traceback.

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


def served_manifest(serve, manifest: bytes):
    """A server holding `manifest` (and CONFIG), typed an OCI manifest; its digest."""
    digest = image.sha256_digest(manifest)
    answers = {
        f"/v2/app/manifests/{digest}": (200, {"Content-Type": media_types.OCI_MANIFEST}, manifest),
        f"/v2/app/blobs/{image.sha256_digest(CONFIG)}": (200, {}, CONFIG),
    }
    return serve(lambda r: answers.get(r.path, (404, {}, b""))), digest


def config_descriptor(**changes) -> dict:
    return {"mediaType": media_types.OCI_CONFIG, "digest": image.sha256_digest(CONFIG),
            "size": len(CONFIG), **changes}


@pytest.mark.parametrize(
    "manifest, message",
    [
        ({"schemaVersion": 2, "layers": []}, "config must be a descriptor object"),
        ([{"config": config_descriptor()}], "must be a JSON object, an image manifest"),
        ({"config": config_descriptor(), "layers": {}}, "has no layers list"),
        ({"config": config_descriptor(size=str(len(CONFIG))), "layers": []},
         f"config: size must be a non-negative integer: '{len(CONFIG)}'"),
        ({"config": config_descriptor(size=-1), "layers": []}, "size must be a non-negative"),
        ({"config": config_descriptor(digest="sha256:../../x"), "layers": []},
         "config: not a sha256 digest"),
        ({"config": config_descriptor(mediaType=7), "layers": []}, "mediaType must be a string"),
        ({"config": config_descriptor(), "layers": [None]}, r"layers\[0\] must be a descriptor"),
    ],
)
def test_pull_of_a_manifest_of_the_wrong_shape_is_one_line(serve, tmp_path, capsys, manifest,
                                                           message):
    server, digest = served_manifest(serve, json.dumps(manifest).encode())
    out = tmp_path / "out"
    argv = ["pull", "--registry", server.host, "--repository", "app", "--digest", digest,
            "--platform", "linux/amd64", "--out", str(out)]
    assert core_cli.main(argv) == 1
    err = capsys.readouterr().err
    where = f"the manifest of {server.host}/app@{digest}"
    assert err.startswith(f"strata.core pull: error: {where}"), err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists()


def test_a_well_formed_manifest_is_pulled(serve, tmp_path):
    """The source of the cases above, as it should be."""
    manifest = {"schemaVersion": 2, "config": config_descriptor(), "layers": []}
    server, digest = served_manifest(serve, json.dumps(manifest).encode())
    assert pull_layout(server.host, "app", digest, "linux/amd64", tmp_path / "out") == digest


def test_an_index_of_the_wrong_shape_is_one_line(serve, tmp_path, capsys):
    index = json.dumps({"manifests": [{"mediaType": media_types.OCI_MANIFEST, "size": "1",
                                       "digest": "sha256:" + "a" * 64,
                                       "platform": {"os": "linux", "architecture": "amd64"}}]})
    digest = image.sha256_digest(index.encode())
    answers = {f"/v2/app/manifests/{digest}": (200, {"Content-Type": media_types.OCI_INDEX},
                                               index.encode())}
    server = serve(lambda r: answers.get(r.path, (404, {}, b"")))
    argv = ["pull", "--registry", server.host, "--repository", "app", "--digest", digest,
            "--platform", "linux/amd64", "--out", str(tmp_path / "out")]
    assert core_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == (f"strata.core pull: error: the index {server.host}/app@{digest} manifests[0]: "
                   "size must be a non-negative integer: '1'\n")


def test_json_nested_too_deep_is_one_line(serve, tmp_path, capsys):
    server, digest = served_manifest(serve, b"[" * 100000 + b"]" * 100000)
    argv = ["pull", "--registry", server.host, "--repository", "app", "--digest", digest,
            "--platform", "linux/amd64", "--out", str(tmp_path / "out")]
    assert core_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not valid JSON: maximum recursion depth" in err, err
