"""The programs an image starts must be in it: each `python_venv`'s interpreter and the
entrypoint's program, looked up in its layers' path lists (and its base's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, Optional

from pants.engine.fs import Digest, DigestContents
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from strata.core.graph.image_files import (
    ImageFiles,
    PathEntry,
    find_program,
    program_problem,
    read_path_list,
)
from strata.core.oci.image import inherit_config
from strata.core.build.parts.venvs import Venv
from strata.rules.base import BaseImage
from strata.rules.closure import ImageClosure
from strata.rules.image.bases import base_config
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.layers import BuiltLayers
from strata.rules.nodes.python_venv import PythonPart

class LayerPaths:
    """A layer's path list, read once per pantsd: equal to another when read from one digest."""

    def __init__(self, digest: Digest, entries: Dict[str, PathEntry]) -> None:
        self.digest = digest
        self.entries = entries

    def __eq__(self, other) -> bool:
        return isinstance(other, LayerPaths) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)


@dataclass(frozen=True)
class LayerPathsRequest:
    digest: Digest  # a layer Process's path list, alone


@rule(desc="Reading a layer's path list", level=LogLevel.DEBUG)
async def layer_paths(request: LayerPathsRequest) -> LayerPaths:
    (content,) = await Get(DigestContents, Digest, request.digest)
    return LayerPaths(request.digest, read_path_list(json.loads(content.content)))


async def check_programs(
    fs: OciImageFieldSet, closure: ImageClosure, config: dict, layers: BuiltLayers,
    base: Optional[BaseImage],
) -> None:
    """The programs the image starts must be in it: each `python_venv`'s interpreter and the
    entrypoint's program, looked up in the path lists of its layers (and its base's), symlinks
    followed. An error names the target and field, not podman's `no such file or directory`
    when the container starts."""
    digests = [*(base.paths if base is not None else ()), *(l.paths for l in layers.layers)]
    lists = await MultiGet(Get(LayerPaths, LayerPathsRequest(d)) for d in digests)
    files = ImageFiles([paths.entries for paths in lists])
    for node in closure.nodes:
        part = node.kind.part if isinstance(node.kind, PythonPart) else None
        if isinstance(part, Venv):
            problem = program_problem(files, f"/{part.python}")
            if problem:
                raise InvalidFieldException(
                    f"The `python` field of {node.key} is /{part.python}, but in the image "
                    f"{fs.address}, {problem}: add a `debian_packages` target with "
                    f"`python{part.version}` to the image's dependencies, or set `python` to "
                    "the interpreter the image (or its base) has."
                )
    own = config
    if base is not None:
        config = inherit_config((await base_config(base)).get("config") or {}, own)
    entrypoint = config.get("Entrypoint") or []
    if not entrypoint:
        return
    program = entrypoint[0]
    found, problems = find_program(
        files, program, config.get("Env") or [], config.get("WorkingDir") or "/"
    )
    if found:
        return
    if fs.entrypoint.value:
        origin = f"The `entrypoint` field of {fs.address} runs {program!r}"
    elif "Entrypoint" in own:
        origin = (f"The entrypoint of {fs.address}, its `python_venv`'s launcher, is "
                  f"{program!r}")
    else:
        origin = f"{fs.address} runs {program!r}, the entrypoint of its `base` {fs.base.value}"
    where = problems[0] if "/" in program else (
        f"no directory of the image's PATH holds it ({'; '.join(problems)})"
    )
    raise InvalidFieldException(
        f"{origin}, but {where}: the image must hold it as an executable file. Add what "
        "provides it to the image's `dependencies` (e.g. a `debian_packages` target), or "
        "correct `entrypoint`."
    )


def rules():
    return collect_rules()
