"""Transport: retries of server errors and dropped connections, keep-alive, the scheme."""

import socket

import pytest

from strata.core.build import program
from strata.core.oci import image
from strata.core.errors import StrataError
from strata.core.oci import media_types
from strata.core.registry.client import RegistryClient
from strata.core.registry.errors import DigestMismatchError, RegistryError
from strata_harness import Fault, Request

OCI_MANIFEST = media_types.OCI_MANIFEST


def test_retries_server_errors_then_gives_up_clearly(serve):
    manifest = image.canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST})
    digest = image.sha256_digest(manifest)
    failures = [2]

    def handle(request: Request):
        if request.path == "/v2/":
            return 200, {}, b"{}"
        if failures[0]:
            failures[0] -= 1
            return 503, {}, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}'
        return 200, {"Content-Type": OCI_MANIFEST}, manifest

    server = serve(handle)
    client = RegistryClient(server.host, retries=2, backoff=0.01)
    assert client.resolve("app", digest)[1] == manifest
    failures[0] = 3
    with pytest.raises(
        RegistryError, match="failed after 3 attempts: .*HTTP 503.*UNAVAILABLE: try later"
    ):
        client.resolve("app", digest)

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = RegistryClient(f"127.0.0.1:{s.getsockname()[1]}", retries=1, backoff=0.01)
        with pytest.raises(
            RegistryError, match="failed after 2 attempts: .*ConnectionRefusedError"
        ):
            closed.resolve("app", "latest")


def test_a_registry_failure_is_a_strata_error_in_one_line(capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(StrataError) as e:
            RegistryClient(host, retries=0).resolve("app", "latest")
    assert program.report("strata.core pull", e.value) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(
        f"strata.core pull: error: resolving {host}/app:latest: failed after 1 attempts: "
    )


def test_a_keep_alive_connection_the_server_closed_costs_no_retry(serve):
    manifest = image.canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST})
    server = serve(lambda r: (200, {"Content-Type": OCI_MANIFEST}, manifest), hang_up=True)
    client = RegistryClient(server.host, retries=0)
    for _ in range(3):
        assert client.resolve("app", "latest")[1] == manifest
    assert len(server.requests) == 4  # the ping, then one GET each


def test_pull_of_a_blob_always_cut_fails_saying_so(pushed, proxy, tmp_path):
    layer, layer_size, _ = pushed.blobs[1]
    cut = proxy.add(Fault("cut", "GET", f"/blobs/{layer}", after=1000, times=None))
    client = RegistryClient(proxy.host, retries=2, backoff=0.01)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RegistryError) as e:
        client.fetch_blob("strata/faults", layer, str(out / "layer"), layer_size)
    assert not isinstance(e.value, DigestMismatchError)
    assert str(e.value) == (
        f"fetching blob {layer} from {proxy.host}/strata/faults: failed after 3 attempts: "
        f"the connection dropped after 1000 of {layer_size} bytes"
    )
    assert cut.applied == 3
    assert list(out.iterdir()) == []


def test_pull_of_a_corrupted_blob_fails_at_once(pushed, proxy, tmp_path):
    layer, layer_size, _ = pushed.blobs[1]
    corrupt = proxy.add(Fault("corrupt", "GET", f"/blobs/{layer}", after=5000, times=None))
    client = RegistryClient(proxy.host, retries=2, backoff=0.01)
    with pytest.raises(DigestMismatchError, match=f"the registry sent {layer_size} bytes whose"):
        client.fetch_blob("strata/faults", layer, str(tmp_path / "layer"), layer_size)
    assert corrupt.applied == 1


@pytest.mark.parametrize(
    "registry, insecure, base_url",
    [
        ("127.0.0.1:5000", None, "http://127.0.0.1:5000"),
        ("localhost:5000", None, "http://localhost:5000"),
        ("[::1]:5000", None, "http://[::1]:5000"),
        ("localhost", False, "https://localhost"),
        ("ghcr.io", None, "https://ghcr.io"),
        ("registry.internal:5000", True, "http://registry.internal:5000"),
    ],
)
def test_scheme(registry, insecure, base_url):
    assert RegistryClient(registry, insecure=insecure).base_url == base_url


@pytest.mark.parametrize("registry", ["https://ghcr.io", "ghcr.io/v2", "", "host:port"])
def test_registry_must_be_a_host(registry):
    with pytest.raises(ValueError, match="host\\[:port\\]"):
        RegistryClient(registry)
