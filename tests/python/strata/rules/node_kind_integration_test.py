"""A new store-node kind is one shell module, one core layer part and one line in register.py:
a test-only `greeting` kind, added so to a scratch copy of the plugin, with content written by
its own layer part, SBOM facts, and a customisation contribution (a symlink and the default
entrypoint), in an image that passes the strict check and runs."""

from __future__ import annotations

import difflib
import filecmp
import shutil
from pathlib import Path

from strata_harness import ScratchRepo, assert_valid_image, require_tool
from strata_harness.images import read_docker_archive
from strata_harness.sbom import assert_valid_cyclonedx, assert_valid_spdx, spdx_packages

# The kind, as a plugin author writes it: its target, its nodes, how a layer writes them (the
# core part below), how the SBOM names them, and what an image of them adds on top.
SHELL_MODULE = '''
"""`greeting` targets as store nodes: a text at /etc/greetings/<name>, a component of the
image's SBOM, and /etc/motd linked to it, read by the image's default entrypoint."""

import hashlib
from dataclasses import dataclass
from typing import Sequence

from pants.engine.fs import EMPTY_DIGEST
from pants.engine.rules import collect_rules, rule
from pants.engine.target import COMMON_TARGET_FIELDS, StringField, Target
from pants.engine.unions import UnionRule

from strata.core.build.parts.greetings import Greeting
from strata.core.sbom.spec import PackageFacts
from strata.rules.nodes import (
    Customisation,
    CustomisationRequest,
    KnownFacts,
    LayerParts,
    NodeKind,
    SbomDescription,
    StoreNode,
    StoreNodes,
    StoreNodesRequest,
)


class GreetingTextField(StringField):
    alias = "text"
    required = True
    help = "What the greeting says."


class GreetingVersionField(StringField):
    alias = "version"
    required = True
    help = "The greeting's version, for the SBOM."


class GreetingTarget(Target):
    alias = "greeting"
    core_fields = (*COMMON_TARGET_FIELDS, GreetingTextField, GreetingVersionField)
    help = "A text at /etc/greetings/<name>."


@dataclass(frozen=True)
class GreetingText(NodeKind):
    name: str
    text: str
    version: str

    @property
    def path(self) -> str:
        return f"etc/greetings/{self.name}"

    @classmethod
    def layer_parts(cls, kinds: Sequence[NodeKind]) -> LayerParts:
        return LayerParts((("greetings", tuple(Greeting(k.path, k.text) for k in kinds)),))

    def sbom(self, key: str) -> SbomDescription:
        data = self.text.encode()
        return KnownFacts(PackageFacts(
            "files", self.name, self.version, license="CC0-1.0",
            purl=f"pkg:generic/{self.name}@{self.version}",
            files=((self.path, hashlib.sha256(data).hexdigest(),
                    hashlib.sha1(data).hexdigest()),),
        ))


class GreetingNodesRequest(StoreNodesRequest):
    @classmethod
    def is_applicable(cls, target, union_membership) -> bool:
        return isinstance(target, GreetingTarget)


@rule
async def greeting_nodes(request: GreetingNodesRequest) -> StoreNodes:
    return StoreNodes(tuple(
        StoreNode(key, EMPTY_DIGEST, (), GreetingText(
            tgt.address.target_name, tgt[GreetingTextField].value, tgt[GreetingVersionField].value
        ))
        for key, tgt in request.members
    ))


class GreetingCustomisationRequest(CustomisationRequest):
    kind = GreetingText


@rule
async def greeting_customisation(request: GreetingCustomisationRequest) -> Customisation:
    if not request.nodes:
        return Customisation()
    first = request.nodes[0].kind
    return Customisation(
        symlinks=((f"the greetings of {request.image.address}", "etc/motd",
                   first.path.split("/", 1)[1]),),
        entrypoint=(("/bin/busybox", "cat", "/etc/motd"), "its greeting's reader"),
    )


def target_types():
    return [GreetingTarget]


def rules():
    return [
        *collect_rules(),
        UnionRule(StoreNodesRequest, GreetingNodesRequest),
        UnionRule(CustomisationRequest, GreetingCustomisationRequest),
    ]
'''

# Its layer part, in the core: a text file the spec's item holds.
CORE_MODULE = '''
"""Part `greetings` (a test-only kind's): a text file that the item itself holds."""

from __future__ import annotations

import os
from collections import namedtuple

from strata.core.build.collector import Collector, LayerContext, LayerEntry
from strata.core.build.spec import JsonTuple, check_keys, image_path


class Greeting(JsonTuple, namedtuple("Greeting", "path text")):
    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Greeting:
        check_keys(obj, what, cls._fields)
        if not isinstance(obj["text"], str):
            raise ValueError(f"{what}: text must be a string")
        return cls(image_path(obj["path"], what), obj["text"])


Item = Greeting


def add(collector: Collector, context: LayerContext, greeting: Greeting, what: str) -> None:
    source = os.path.join(context.scratch(), what)
    with open(source, "w") as f:
        f.write(greeting.text)
    collector.add(LayerEntry(greeting.path, "file", 0o644, what, source))
'''

SHELL_PATH = "strata/rules/nodes/greeting.py"
CORE_PATH = "strata/core/build/parts/greetings.py"
REGISTER_LINE = "from strata.rules.nodes import greeting\n"

BUILD = """
file(name="busybox", source="bin/busybox")
greeting(name="hello", text="Hello from a kind of its own\\n", version="1.2.3")
oci_image(
    name="image",
    repository="strata/greeting",
    tag="v1",
    dependencies=[":busybox", ":hello"],
    output_format="docker-archive",
)
"""


def _add_kind(plugin: Path) -> None:
    """The kind's files and its register line, as its author adds them."""
    (plugin / SHELL_PATH).write_text(SHELL_MODULE.lstrip("\n"))
    (plugin / CORE_PATH).write_text(CORE_MODULE.lstrip("\n"))
    register = plugin / "strata/register.py"
    lines = register.read_text().splitlines(keepends=True)
    at = lines.index("from strata.rules.nodes import files\n")
    register.write_text("".join([*lines[:at], REGISTER_LINE, *lines[at:]]))


def _touched(before: Path, after: Path) -> tuple[list[str], list[str], int]:
    """(new files, changed files, changed lines) from one copy of the plugin to the other."""
    new, changed, lines = [], [], 0
    for path in sorted(p for p in after.rglob("*.py")):
        rel = path.relative_to(after).as_posix()
        old = before / rel
        if not old.exists():
            new.append(rel)
        elif not filecmp.cmp(old, path, shallow=False):
            changed.append(rel)
            diff = difflib.ndiff(old.read_text().splitlines(), path.read_text().splitlines())
            lines += sum(1 for line in diff if line[:2] in ("+ ", "- "))
    return new, changed, lines


def test_a_new_kind_is_one_shell_module_one_core_part_and_one_register_line(
    tmp_path: Path, run_image
) -> None:
    repo = ScratchRepo(tmp_path / "repo")
    plugin = repo.root / "pants-plugins"
    pristine = tmp_path / "pristine"
    shutil.copytree(plugin, pristine)
    _add_kind(plugin)
    assert _touched(pristine, plugin) == ([CORE_PATH, SHELL_PATH], ["strata/register.py"], 1)

    busybox = Path(require_tool("busybox")).read_bytes()
    repo.write({"bin/busybox": busybox, "BUILD": BUILD})
    (repo.root / "bin/busybox").chmod(0o755)
    repo.run("package", "//:image")
    dist = repo.root / "dist"
    archive = dist / "image.tar"
    assert_valid_image(archive)

    # The content its part wrote, and the symlink its customisation added on top.
    _, config, layers = read_docker_archive(archive)
    entries = {name: info for layer in layers for name, info in layer.items()}
    assert entries["etc/greetings/hello"].isfile()
    assert entries["etc/motd"].issym() and entries["etc/motd"].linkname == "greetings/hello"
    # Its default entrypoint, which runs.
    assert config["config"]["Entrypoint"] == ["/bin/busybox", "cat", "/etc/motd"]
    code, out = run_image(archive)
    assert (code, out) == (0, "Hello from a kind of its own\n")

    # Its facts in the SBOM.
    spdx = assert_valid_spdx(dist / "image.spdx.json")
    assert spdx_packages(spdx)["hello"] == "1.2.3"
    hello = next(p for p in spdx["packages"] if p["name"] == "hello")
    assert hello["licenseDeclared"] == "CC0-1.0"
    assert [r["referenceLocator"] for r in hello["externalRefs"]] == ["pkg:generic/hello@1.2.3"]
    components = assert_valid_cyclonedx(dist / "image.cdx.json")["components"]
    assert any(c["name"] == "hello" and c["version"] == "1.2.3" for c in components)
