"""`nix_closure`: Nix store paths and their closure, from Nix itself, and each path's content.

Two Processes read from outside the sandbox (`NixClosureTarget`'s help says why that is sound):
the one that builds the attributes (or looks the store paths up) and writes the closure with
each path's references and NAR hash, cached on its inputs and Nix's version; and one per store
path that copies its NAR into Pants' store, keyed on the store path alone.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Optional, Tuple

from pants.core.target_types import FileSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    FileContent,
    MergeDigests,
    RemovePrefix,
)
from pants.engine.process import Process
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import DependenciesRequest, InvalidFieldException, Target, Targets
from pants.util.logging import LogLevel

from strata.core.nix.spec import NixClosure
from strata.rules.nix.subsystem import NixSubsystem
from strata.rules.nodes import RootLink
from strata.rules.processes import run_process, stderr_text
from strata.rules.tool import SHELL, BinaryOnThisMachine, FoundOnThisMachine, ImageTool
from strata.subsystems import StrataSubsystem
from strata.target_types.nix import (
    NixAttributesField,
    NixClosureDependenciesField,
    NixClosureTarget,
    NixCopyToRootField,
    NixSourceField,
    NixStorePathsField,
)

NAR_DIR = "nars"  # where a layer Process finds the NARs of its store paths
NIX_GCROOTS = "nix/var/nix/gcroots/docker"  # dockerTools' includeNixDB roots
_CLOSURE = "closure.json"
_LINKS = "links.json"
_DB_OUT = "nix-db"


# Why the Processes that build with Nix or read its store run on this machine, whatever the
# environment: a remote worker has its own store, or none.
NEEDS = "this machine's Nix store"


def nar_path(store_path: str) -> str:
    """Where a store path's NAR is in its node's digest (and in a layer Process's sandbox)."""
    return f"{NAR_DIR}/{posixpath.basename(store_path)}.nar"


@dataclass(frozen=True)
class NixTools:
    """Nix's binaries, if installed: `bin_dir` holds nix-build, nix and nix-store; `version`
    is what `nix-build --version` says, for the cache key of a build."""

    bin_dir: Optional[str]
    version: str
    search_paths: Tuple[str, ...]

    def require(self, address, field) -> str:
        if self.bin_dir is None:
            raise InvalidFieldException(
                f"The `{field.alias}` field of nix_closure {address} needs Nix, but there is "
                f"no `nix-build` in {list(self.search_paths)} ([nix].search_paths): install "
                "Nix (Debian's `nix-bin`), or point [nix].search_paths at it."
            )
        return self.bin_dir


@dataclass(frozen=True)
class NixToolsRequest:
    pass


@rule(desc="Finding Nix", level=LogLevel.DEBUG)
async def find_nix(_: NixToolsRequest, nix: NixSubsystem) -> NixTools:
    """Nix on this machine, where the Processes that read its store run."""
    found = await Get(
        FoundOnThisMachine,
        BinaryOnThisMachine("nix-build", tuple(nix.search_paths), NEEDS, ("--version",)),
    )
    if found.path is None:
        return NixTools(None, "", tuple(nix.search_paths))
    return NixTools(posixpath.dirname(found.path), found.version, tuple(nix.search_paths))


@dataclass(frozen=True)
class NixClosureRequest:
    target: Target  # a nix_closure


@dataclass(frozen=True)
class ResolvedNixClosure:
    """A `nix_closure`'s top-level paths and every path of their closure, as Nix reports them."""

    closure: NixClosure


def _option_args(nix: NixSubsystem, address) -> Tuple[str, ...]:
    args = []
    for option in nix.settings:
        name, equals, value = option.partition("=")
        if not equals or not name.strip():
            raise InvalidFieldException(
                f"[nix].settings holds {option!r}, which {address} would pass to Nix: each "
                "option is `name=value`."
            )
        args += ["--option", name.strip(), value]
    return tuple(args)


@rule(desc="Resolving a Nix closure", level=LogLevel.DEBUG)
async def resolve_nix_closure(
    request: NixClosureRequest, tool: ImageTool, nix: NixSubsystem, strata: StrataSubsystem
) -> ResolvedNixClosure:
    tgt = request.target
    address = tgt.address
    store_paths = tgt[NixStorePathsField].value
    field = NixStorePathsField if store_paths else NixSourceField
    tools = await Get(NixTools, NixToolsRequest())
    bin_dir = tools.require(address, field)
    if store_paths:
        what = f"looking up the `store_paths` of {address}"
        args: Tuple[str, ...] = tuple(a for p in store_paths for a in ("--store-path", p))
        inputs = tool.digest
    else:
        dependencies = await Get(
            Targets, DependenciesRequest(tgt[NixClosureDependenciesField])
        )
        sources = await Get(
            SourceFiles,
            SourceFilesRequest(
                [tgt[NixSourceField],
                 *(d[FileSourceField] for d in dependencies if d.has_field(FileSourceField))]
            ),
        )
        source = tgt[NixSourceField].file_path
        attributes = tgt[NixAttributesField].value or ()
        what = f"building {', '.join(attributes)} of {source} for {address}"
        args = ("--file", source, *(a for attr in attributes for a in ("--attr", attr)))
        inputs = await Get(Digest, MergeDigests([tool.digest, sources.snapshot.digest]))
    result = await run_process(
        Process(
            argv=tool.argv(
                "nix-closure", "--nix-bin", bin_dir, *_option_args(nix, address), *args,
                "--out", _CLOSURE,
            ),
            # Nix's version is part of the key: another Nix may build the same expression
            # into other paths.
            env={"STRATA_NIX_VERSION": tools.version},
            input_digest=inputs,
            output_files=(_CLOSURE,),
            description=what[0].upper() + what[1:],
            level=LogLevel.INFO,
            remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
        ),
        lambda failed: InvalidFieldException(
            f"The `{field.alias}` field of nix_closure {address} is invalid: {what} failed: "
            # without the core's own prefix
            f"{stderr_text(failed).split('nix-closure: error: ', 1)[-1]}"
        ),
        here=NEEDS,
    )
    (content,) = await Get(DigestContents, Digest, result.output_digest)
    return ResolvedNixClosure(NixClosure.from_json(json.loads(content.content)))


@dataclass(frozen=True)
class NarRequest:
    store_path: str


@dataclass(frozen=True)
class StorePathNar:
    """A store path's NAR, at `nar_path(store_path)`."""

    digest: Digest


@rule(desc="Copying a store path from the Nix store", level=LogLevel.DEBUG)
async def copy_store_path(request: NarRequest, strata: StrataSubsystem) -> StorePathNar:
    tools = await Get(NixTools, NixToolsRequest())
    path = request.store_path
    out = posixpath.basename(nar_path(path))
    if tools.bin_dir is None:
        raise EnvironmentError(
            f"Copying {path} from the Nix store needs Nix's `nix-store`, in one of "
            f"{list(tools.search_paths)} ([nix].search_paths)."
        )
    nix_store = posixpath.join(tools.bin_dir, "nix-store")
    result = await run_process(
        Process(
            # Keyed on the store path (and the binaries' paths) alone: its name carries the hash
            # of how it was built, and it never changes once built. The layer Process that reads
            # the NAR checks it against Nix's NAR hash. Like every Process here that reads the
            # machine's store, it waits for a remote cache hit before running: without the path
            # it can only fail, and a failure that came first would win the race.
            argv=(SHELL, "-c", 'exec "$0" --dump "$1" > "$2"', nix_store, path, out),
            output_files=(out,),
            description=f"Copying {path} from the Nix store",
            level=LogLevel.INFO,
            remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
        ),
        lambda failed: InvalidFieldException(
            f"Cannot copy {path} from this machine's Nix store: {stderr_text(failed)}. It is in "
            "a `nix_closure`'s closure, which a cache says was built; when that cache is this "
            "machine's own and the path was deleted since (garbage-collected), build it again "
            "with `nix-store --realise` or `nix-build`, or run Pants with `--no-local-cache`."
        ),
        here=NEEDS,
    )
    return StorePathNar(await Get(Digest, AddPrefix(result.output_digest, NAR_DIR)))


async def _with_closure(tool: ImageTool, closure: NixClosure) -> Digest:
    """The core, and `closure` at `_CLOSURE` for its `--closure` argument."""
    closure_file = await Get(Digest, CreateDigest([FileContent(
        _CLOSURE, json.dumps(closure.to_json(), sort_keys=True).encode()
    )]))
    return await Get(Digest, MergeDigests([tool.digest, closure_file]))


@dataclass(frozen=True)
class RootLinksRequest:
    """`copy_to_root`: what links the `closure`'s roots' `paths_to_link` into the image's root;
    `owner` is the `nix_closure`'s address."""

    owner: str
    closure: NixClosure
    paths_to_link: Tuple[str, ...]


@dataclass(frozen=True)
class RootLinks:
    links: Tuple[RootLink, ...]


@rule(desc="Linking Nix store paths into the image root", level=LogLevel.DEBUG)
async def root_links(
    request: RootLinksRequest, tool: ImageTool, strata: StrataSubsystem
) -> RootLinks:
    result = await run_process(
        Process(
            # Keyed on the store paths, as their copies are: what they hold never changes.
            argv=tool.argv(
                "nix-links", "--closure", _CLOSURE,
                *(a for name in request.paths_to_link for a in ("--link", name)),
                "--out", _LINKS,
            ),
            input_digest=await _with_closure(tool, request.closure),
            output_files=(_LINKS,),
            description=f"Linking the top-level paths of {request.owner} into the image root",
            level=LogLevel.DEBUG,
            remote_cache_speculation_delay_millis=strata.remote_cache_speculation_delay,
        ),
        lambda failed: InvalidFieldException(
            f"The `copy_to_root` field of nix_closure {request.owner} is invalid: "
            f"{stderr_text(failed)}"
        ),
        here=NEEDS,  # it follows the roots' links in the store
    )
    (content,) = await Get(DigestContents, Digest, result.output_digest)
    return RootLinks(tuple(
        RootLink(request.owner, path, target, NixCopyToRootField.alias, NixClosureTarget.alias)
        for path, target in json.loads(content.content)
    ))


@dataclass(frozen=True)
class NixDbRequest:
    """`include_nix_db`: a Nix database registering `closure`'s paths at `registration_time`."""

    closure: NixClosure
    registration_time: int


@rule(desc="Writing a Nix database", level=LogLevel.DEBUG)
async def nix_db(request: NixDbRequest, tool: ImageTool) -> Digest:
    result = await run_process(
        Process(
            argv=tool.argv(
                "nix-db", "--closure", _CLOSURE, "--registration-time",
                str(request.registration_time), "--out", _DB_OUT,
            ),
            input_digest=await _with_closure(tool, request.closure),
            output_directories=(_DB_OUT,),
            description=f"Registering {len(request.closure.paths)} Nix store paths in a database",
            level=LogLevel.INFO,
        )
    )
    return await Get(Digest, RemovePrefix(result.output_digest, _DB_OUT))


def rules():
    return collect_rules()
