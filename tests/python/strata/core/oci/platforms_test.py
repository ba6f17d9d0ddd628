import json

import pytest

from strata.core.oci import platforms
from strata.core.build.program import report
from strata.core.oci.platforms import PlatformError, select

WHERE = "reg/app@sha256:1"


def index(*entries: str, **extra: dict) -> list:
    """(key, platform) pairs: each entry "os/arch[/variant]", keyed by itself; `extra` adds
    fields to the entry of that key."""
    return [(e, {**platforms.parse(e), **extra.get(e, {})}) for e in entries]


@pytest.mark.parametrize(
    "requested, offered, chosen",
    [
        # Exact os/arch; the variant when one is asked for.
        ("linux/amd64", ["linux/amd64", "linux/arm64"], ["linux/amd64"]),
        ("linux/arm/v7", ["linux/arm/v6", "linux/arm/v7", "linux/arm64"], ["linux/arm/v7"]),
        ("linux/arm/v6", ["linux/arm/v6", "linux/arm/v7"], ["linux/arm/v6"]),
        # Without a variant: the one image of that os/arch, whatever its variant...
        ("linux/arm", ["linux/arm/v7", "linux/amd64"], ["linux/arm/v7"]),
        ("linux/riscv64", ["linux/riscv64/rva22"], ["linux/riscv64/rva22"]),
        # ...and an image without a variant before those with one.
        ("linux/arm", ["linux/arm/v6", "linux/arm"], ["linux/arm"]),
        # containerd's normalisation: arm64 = arm64/v8, amd64 = amd64/v1, aliases.
        ("linux/arm64", ["linux/arm64/v8", "linux/arm/v7"], ["linux/arm64/v8"]),
        ("linux/arm64/v8", ["linux/arm64", "linux/amd64"], ["linux/arm64"]),
        ("linux/arm64", ["linux/arm64/v8", "linux/arm64/v9"], ["linux/arm64/v8"]),
        ("linux/amd64", ["linux/amd64", "linux/amd64/v3"], ["linux/amd64"]),
        ("linux/amd64/v3", ["linux/amd64", "linux/amd64/v3"], ["linux/amd64/v3"]),
        ("linux/amd64", ["linux/amd64/v1"], ["linux/amd64/v1"]),
        ("linux/x86_64", ["linux/amd64"], ["linux/amd64"]),
        ("linux/arm64", ["linux/aarch64"], ["linux/aarch64"]),
        ("linux/arm/v7", ["linux/armhf", "linux/armel"], ["linux/armhf"]),
        ("linux/arm/v7", ["linux/arm/7"], ["linux/arm/7"]),
        # Several images of the one platform: all returned, for the caller to tell apart.
        ("linux/arm64", ["linux/arm64", "linux/arm64/v8"], ["linux/arm64", "linux/arm64/v8"]),
    ],
)
def test_select(requested, offered, chosen):
    assert select(requested, index(*offered), WHERE) == chosen


def test_one_key_per_image():
    offered = [("a", {"os": "linux", "architecture": "amd64"})] * 2
    assert select("linux/amd64", offered, WHERE) == ["a"]


def test_a_bare_arm_before_several_variants_is_ambiguous():
    offered = index("linux/arm/v6", "linux/arm/v7", "linux/arm64/v8")
    with pytest.raises(PlatformError) as e:
        select("linux/arm", offered, WHERE)
    assert str(e.value) == (
        f"platform linux/arm is ambiguous in {WHERE}: it holds linux/arm/v6, linux/arm/v7"
    )
    assert e.value.matching == ["linux/arm/v6", "linux/arm/v7"]
    assert e.value.available == ["linux/arm/v6", "linux/arm/v7", "linux/arm64/v8"]


def test_missing_platform_lists_what_there_is():
    attestation = {"os": "unknown", "architecture": "unknown"}
    offered = index("linux/amd64", "linux/arm64") + [("att", attestation), ("bad", None)]
    for requested in ("linux/s390x", "windows/amd64", "linux/arm64/v9", "linux/amd64/v2"):
        with pytest.raises(PlatformError) as e:
            select(requested, offered, WHERE)
        assert str(e.value) == (
            f"platform {requested} is not in {WHERE}: it holds linux/amd64, linux/arm64, "
            "unknown/unknown, unknown"
        )
        assert e.value.matching == []
    with pytest.raises(PlatformError, match="it holds no image"):
        select("linux/amd64", [], WHERE)


def test_os_version_and_features_tell_images_apart():
    offered = index(
        "windows/amd64",
        "linux/amd64",
        **{"windows/amd64": {"os.version": "10.0.17763.1", "os.features": ["win32k"]}},
    )
    assert select("windows/amd64", offered, WHERE) == ["windows/amd64"]
    assert select("linux/amd64", offered, WHERE) == ["linux/amd64"]

    two_versions = [
        ("a", {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}),
        ("b", {"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.1"}),
    ]
    with pytest.raises(PlatformError) as e:
        select("windows/amd64", two_versions, WHERE)
    assert e.value.matching == [
        "windows/amd64 (os.version 10.0.17763.1)",
        "windows/amd64 (os.version 10.0.20348.1)",
    ]
    features = [
        ("a", {"os": "linux", "architecture": "amd64"}),
        ("b", {"os": "linux", "architecture": "amd64", "os.features": ["f1"]}),
    ]
    with pytest.raises(PlatformError, match=r"linux/amd64, linux/amd64 \(os.features f1\)"):
        select("linux/amd64", features, WHERE)


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm/v7/x", None])
def test_parse_rejects(text):
    with pytest.raises(ValueError, match="os/arch or os/arch/variant"):
        platforms.parse(text)


def test_cli_reports_a_platform_error_on_both_streams(capsys):
    error = PlatformError("linux/arm", WHERE, ["linux/arm/v6", "linux/arm/v7"], ["x"])
    assert report("strata.core pull", error) == PlatformError.exit_code == 3
    out, err = capsys.readouterr()
    assert err == f"strata.core pull: error: {error}\n"
    assert json.loads(out) == {
        "platform": "linux/arm",
        "in": WHERE,
        "matching": ["linux/arm/v6", "linux/arm/v7"],
        "available": ["x"],
    }
