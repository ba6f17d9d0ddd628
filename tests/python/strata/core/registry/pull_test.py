"""The `pull` subcommand's layout."""

import pytest

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
