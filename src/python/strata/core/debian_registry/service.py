"""The registry as a service: `main(argv, config)`, what a packaged `debian_registry` runs (its
configuration baked in), and the `debian-registry` subcommand (`--config FILE`). In the
foreground, one line per request and per build on stderr; SIGINT and SIGTERM stop it, exit 0."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import sys

from strata.core.build.blobstore import BlobStore
from strata.core.build.program import Command, parse, report
from strata.core.debian.index import debian_mirror
from strata.core.debian_registry.builder import ImageBuilder
from strata.core.debian_registry.config import RegistryConfig
from strata.core.debian_registry.server import RegistryServer
from strata.core.debian_registry.snapshot import load_snapshot
from strata.core.errors import StrataError, UsageError

log = logging.getLogger("strata.debian_registry")

OPTIONS = "--listen HOST:PORT --cache-dir DIR [--mirror URL] [--jobs N] [--refresh]"
USAGE = """A registry that builds images of Debian packages when they are pulled: `podman pull
HOST:PORT/curl/jq` is an image of curl and jq (README.md, "A registry that builds on pull").

  --listen HOST:PORT  where to serve plain HTTP (put TLS in front of it beyond localhost)
  --cache-dir DIR     blobs, built layers and images, and the pinned snapshot; kept across runs
  --mirror URL        the Debian archive (default: the target's [debian].mirror, else this
                      machine's apt sources)
  --jobs N            images built at once (default 2)
  --refresh           pin the mirror's current snapshot instead of the one in --cache-dir"""


class CacheInUse(StrataError):
    """Another registry serves from this cache directory."""


def _listen_address(listen: str):
    host, colon, port = listen.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen must be HOST:PORT, such as 127.0.0.1:5000: {listen!r}")
    return host.strip("[]"), int(port)


def _lock_cache(cache_dir: str):
    """An exclusive lock on the cache directory for the server's life: its scratch files are
    its own to clear, and one server builds each layer once."""
    os.makedirs(cache_dir, exist_ok=True)
    lock = open(os.path.join(cache_dir, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CacheInUse(f"another registry serves from {cache_dir}: give each its own "
                         "--cache-dir") from None
    return lock


def _clear_leftovers(cache_dir: str, store: BlobStore) -> None:
    """What a killed server left half-written: blob store temporaries, layer sandboxes. No
    record names them: records are written last."""
    for path in (os.path.join(store.root, "tmp"), os.path.join(cache_dir, "scratch")):
        shutil.rmtree(path, ignore_errors=True)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(config: RegistryConfig, options) -> None:
    jobs = int(options.jobs or 2)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1: {options.jobs}")
    address = _listen_address(options.listen)
    cache_dir = os.path.abspath(options.cache_dir)
    lock = _lock_cache(cache_dir)
    store = BlobStore(os.path.join(cache_dir, "blobs"))
    _clear_leftovers(cache_dir, store)
    mirror = (options.mirror or config.mirror or debian_mirror()).rstrip("/")
    snapshot = load_snapshot(config, cache_dir, store, mirror, options.refresh)
    builder = ImageBuilder(config, snapshot, cache_dir, store, mirror, jobs)
    server = RegistryServer(address, builder)
    signal.signal(signal.SIGTERM, _stop)
    host, port = server.server_address[:2]
    log.info("serving %s (%s) on http://%s:%d, cache %s", snapshot.suite,
             ", ".join(config.architectures), host, port, cache_dir)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
        lock.close()


def main(argv: list, config: dict) -> int:
    """A packaged registry's entry point: `config` is its target's `RegistryConfig.to_json()`;
    options and failures as every core program has them (strata.core.build.program)."""
    prog = config.get("target") or "debian_registry"
    if argv[:1] in (["--help"], ["-h"]):
        print(f"usage: {prog} {OPTIONS}\n\n{USAGE}")
        return 0
    try:
        options = parse(Command(__name__, OPTIONS), argv)
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format=f"{prog}: %(message)s")
        serve(RegistryConfig.from_json(config), options)
    except (StrataError, ValueError, OSError) as error:
        return report(prog, error)
    return 0


def serve_command(options) -> None:
    """`debian-registry --config FILE ...`: a registry from a configuration file."""
    with open(options.config, encoding="utf-8") as f:
        config = RegistryConfig.from_json(json.load(f))
    serve(config, options)
