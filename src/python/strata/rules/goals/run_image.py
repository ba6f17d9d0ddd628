"""`pants run` for `oci_image`: load the image with `[strata].loader`, then run it."""

from __future__ import annotations

import os
import shlex
from typing import Tuple

from pants.core.goals.run import RunRequest
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from strata.rules.blobs import EnsureBlobs, EnsuredBlobs
from strata.rules.image.assembly import (
    SPEC,
    AssembledImage,
    AssembleRequest,
    Blobs,
    ImageInputs,
    read_image,
)
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.tool import BinaryOnThisMachine, FoundOnThisMachine, ImageTool
from strata.subsystems import StrataSubsystem
from strata.target_types.image import Compression, OutputFormat

_RUN_LAYOUT = "image"


async def _binary(name: str) -> str:
    """The binary's path on this machine, where `run` runs it, or "" when it is not
    installed."""
    found = await Get(
        FoundOnThisMachine,
        BinaryOnThisMachine(name, ("/usr/bin", "/usr/local/bin", "/bin"), "its loader"),
    )
    return found.path or ""


async def _loader(choice: str) -> str:
    if choice == "stdout":
        return ""
    names = ["podman", "docker"] if choice == "auto" else [choice]
    for name in names:
        path = await _binary(name)
        if path:
            return path
    if choice == "auto":
        return ""
    raise EnvironmentError(f"[strata].loader is {choice!r}, but `{choice}` is not installed.")



def storage_name(repo_tag: str) -> str:
    """The name `podman load` gives an archive's image: a name with no registry host goes under
    `localhost/` (the containers tools would resolve it to their default registry)."""
    first = repo_tag.split("/", 1)[0]
    has_host = "/" in repo_tag and ("." in first or ":" in first or first == "localhost")
    return repo_tag if has_host else f"localhost/{repo_tag}"


def run_script(load: str, runtime: str, image_name: str, run_args: Tuple[str, ...]) -> str:
    """The bash script `pants run` runs in the client's terminal: `load` (a shell command), then
    the image in a container of `runtime` (podman or docker) whose exit code is the script's,
    with the script's arguments (those after `--`). Only the script can tell whether the
    client has a terminal (`-t`), so it decides `--interactive --tty`. On SIGINT/SIGTERM (Pants
    sends SIGINT to the script's process group on Ctrl-C, then SIGKILL 3 s later) it kills the
    runtime's client and removes the container itself: a container's PID 1 ignores a SIGINT it
    has no handler for, and a killed client leaves its container running. The client runs in
    the background, as only then does `wait` let the trap run at once; the removal runs in a
    session of its own, so Pants' SIGKILL of the group cannot stop it half-way."""
    quote = shlex.quote
    force = "--force --time 0" if os.path.basename(runtime) == "podman" else "--force"
    run = " ".join(quote(a) for a in ("--rm", "--pull=never", *run_args))
    return "\n".join(
        [
            "set -o pipefail",
            f"cd {{chroot}} && {{ {load}; }} >&2 || exit",  # stdout is the container's alone
            "container=strata-run-$$-$RANDOM$RANDOM",
            "stop() {",
            '  [ -n "${client-}" ] && kill -KILL "$client" 2>/dev/null && wait "$client"',
            f'  setsid {quote(runtime)} rm {force} "$container" >/dev/null 2>&1',
            "}",
            "trap 'trap - INT TERM HUP; stop; exit 130' INT TERM HUP",
            "terminal=()",
            "if [ -t 0 ] && [ -t 1 ]; then terminal=(--interactive --tty); fi",
            f'{quote(runtime)} run --name "$container" "${{terminal[@]}}" {run} '
            f'{quote(image_name)} "$@" <&0 &',
            "client=$!",
            'wait "$client"',
        ]
    )


@rule(desc="Loading an OCI image", level=LogLevel.DEBUG)
async def run_oci_image(
    field_set: OciImageFieldSet, tool: ImageTool, strata: StrataSubsystem
) -> RunRequest:
    """Loads the image with `[strata].loader` (only the layers podman's storage lacks, when
    skopeo is there), then runs it unless `[strata].load_only` (or the `stdout` loader) says
    not to."""
    loader = await _loader(strata.loader)
    runs = bool(loader) and not strata.load_only
    skopeo = await _binary("skopeo") if os.path.basename(loader) == "podman" else ""
    if skopeo:
        # podman's storage gets the image as an OCI layout, which costs no copy to compose,
        # through skopeo, which reuses the layers storage already holds: after a one-file
        # change only that file's layer is read. (`podman load` reads the whole archive.)
        image = await Get(
            AssembledImage,
            AssembleRequest(
                field_set, OutputFormat.OCI.value, _RUN_LAYOUT, Compression.NONE.value,
                Blobs.LINK,
            ),
        )
        name = storage_name(image.metadata["repo_tag"])
        copy = (skopeo, "--insecure-policy", "copy", "--quiet", f"oci:{_RUN_LAYOUT}",
                f"containers-storage:{name}")
        load = (f"{' '.join(shlex.quote(a) for a in copy)} "
                f"&& echo {shlex.quote(f'Loaded image: {name}')}")
        digest = image.output
    else:
        # Plain tar layers, whatever `package` writes: `docker load` reads no other.
        inputs = await Get(
            ImageInputs,
            AssembleRequest(
                field_set, OutputFormat.DOCKER_ARCHIVE.value, "image.tar", Compression.NONE.value
            ),
        )
        await Get(EnsuredBlobs, EnsureBlobs(inputs.blobs))
        stream = " ".join(
            shlex.quote(a)
            for a in tool.argv("stream", "--spec", SPEC, "--blob-store", inputs.blob_store)
        )
        load = stream + (f" | {shlex.quote(loader)} load" if loader else "")
        digest = inputs.digest
        if runs:
            repo_tag = (await read_image(inputs))[1].repo_tag
            # docker keeps the archive's name; podman puts a host-less one under localhost/.
            name = storage_name(repo_tag) if os.path.basename(loader) == "podman" else repo_tag
    if not runs:
        return RunRequest(
            digest=digest, args=("/bin/bash", "-c", f"set -o pipefail; cd {{chroot}} && {load}")
        )
    script = run_script(load, loader, name, tuple(strata.run_args))
    return RunRequest(digest=digest, args=("/bin/bash", "-c", script, "strata-run"))


def rules():
    return [*collect_rules(), *OciImageFieldSet.rules()]
