"""Strata's test harness: real tools (skopeo, umoci, podman, dockerd, docker-registry),
hand-made images, a fault-injecting proxy and Pants runs on scratch repos. Fixtures wrapping
these live in tests/python/conftest.py."""

from strata_harness.faults import Fault, FaultProxy, Request
from strata_harness.images import (
    Symlink,
    assert_valid_image,
    image_format,
    layer_tar,
    make_busybox_image,
    make_docker_archive,
    make_oci_layout,
    read_docker_archive,
    source_ref,
)
from strata_harness.dockerd import Dockerd
from strata_harness.podman import Podman
from strata_harness.pushes import Push, pushes, upload_posts
from strata_harness.registry import Registry, start_registry
from strata_harness.scratch import ScratchRepo, counters, ran_processes
from strata_harness.served import serve_directory
from strata_harness.tools import require_tool, run_tool

__all__ = [
    "Dockerd",
    "Fault",
    "FaultProxy",
    "Podman",
    "Push",
    "Registry",
    "Request",
    "ScratchRepo",
    "Symlink",
    "assert_valid_image",
    "counters",
    "image_format",
    "layer_tar",
    "make_busybox_image",
    "make_docker_archive",
    "make_oci_layout",
    "pushes",
    "ran_processes",
    "read_docker_archive",
    "require_tool",
    "run_tool",
    "serve_directory",
    "source_ref",
    "start_registry",
    "upload_posts",
]
