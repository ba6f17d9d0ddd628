import json

import pytest

from strata_harness import make_busybox_image, require_tool, start_registry


def test_registry_answers_v2_and_stops(tmp_path):
    reg = start_registry(tmp_path)
    try:
        assert reg.host.startswith("127.0.0.1:")
        assert reg.url == f"http://{reg.host}"
        status, body = reg.get("/v2/")
        assert status == 200 and json.loads(body) == {}
    finally:
        reg.stop()
    with pytest.raises(OSError):
        reg.get("/v2/")


def test_push_and_inspect_busybox_image(registry, tmp_path):
    image = make_busybox_image(tmp_path / "bb.tar")
    assert registry.push(image, "strata/busybox:1") == f"docker://{registry.host}/strata/busybox:1"
    info = registry.inspect("strata/busybox:1")
    assert info["Architecture"] and info["Os"] == "linux"
    assert len(info["Layers"]) == 1
    status, body = registry.get("/v2/strata/busybox/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["1"]


def test_htpasswd_registry_requires_credentials(tmp_path):
    require_tool("htpasswd")
    with start_registry(tmp_path / "reg", htpasswd=("strata", "s3cret")) as reg:
        image = make_busybox_image(tmp_path / "bb.tar")
        reg.push(image, "strata/private:1")
        assert reg.inspect("strata/private:1", raw=True)["schemaVersion"] == 2
        assert reg.get("/v2/")[0] == 200
        reg.credentials = None
        assert reg.get("/v2/")[0] == 401
        with pytest.raises(AssertionError, match="unauthorized|authentication required"):
            reg.inspect("strata/private:1")
