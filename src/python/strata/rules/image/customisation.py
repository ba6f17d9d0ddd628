"""What an `oci_image` adds on top of its dependencies' layers: the customisation layer, from its
own fields (`symlinks`, `directories`, `fake_nss`, build-time commands, `permissions`) and from
what each kind of its nodes adds (`CustomisationRequest`: merged-/usr, the CA bundle, a Nix
database, ...) or its targets ask for (`copy_to_root`); its check against the dependencies'
paths; and the default entrypoint its kinds offer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestEntries, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, Target
from pants.engine.unions import UnionMembership
from pants.util.logging import LogLevel

from strata.core.debian.rootfs import nss_files
from strata.core.graph.closure import SYMLINK, PathConflict, check_paths
from strata.core.oci.image import epoch_seconds
from strata.core.build.parts.entries import Entry
from strata.core.build.spec import Commands, normalise_path
from strata.rules.closure import (
    ImageClosure,
    InvalidImageContent,
    LayerPermissions,
    add_path_claims,
    owned_paths,
)
from strata.rules.commands import BuildCommands, CommandsRequest
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.layers import CustomisationLayer
from strata.rules.nodes import (
    Customisation,
    CustomisationRequest,
    RequiredProgram,
    RootLink,
    StoreNode,
)


@dataclass(frozen=True)
class ImageCustomisationRequest:
    field_set: OciImageFieldSet
    target: Target  # the same `oci_image`, whose fields its kinds read
    closure: ImageClosure


@dataclass(frozen=True)
class ImageCustomisation:
    """The customisation layer, and what the image's kinds say of how it runs: the entrypoints
    they offer an image without one of its own (each with what it is, for errors) and the
    programs the image must hold."""

    layer: CustomisationLayer
    entrypoints: Tuple[Tuple[Tuple[str, ...], str], ...]
    programs: Tuple[RequiredProgram, ...]


def with_default_entrypoint(
    address: Address, config: dict, customisation: ImageCustomisation
) -> dict:
    """An image without an `entrypoint` of its own runs the one its kinds offer (a
    `python_venv`'s launcher)."""
    offered = customisation.entrypoints
    if "Entrypoint" in config or not offered:
        return config
    if len(offered) > 1:
        raise InvalidFieldException(
            f"{address} has several default entrypoints ({', '.join(o for _, o in offered)}): "
            "set its `entrypoint` field to say which one the container runs."
        )
    return {**config, "Entrypoint": list(offered[0][0])}


def _root_links(
    address: Address, links: Sequence[RootLink], root_entries: Sequence[Entry]
) -> List[Tuple[str, str, str]]:
    """The symlinks the image's targets ask for, as (owner, path, target): one under a
    directory that a kind makes a symlink (merged-/usr's /bin -> usr/bin) goes where it
    points; one path may be linked one way only."""
    redirects = {e.path: e.target for e in root_entries if e.type == "symlink"}
    placed: Dict[str, RootLink] = {}
    for link in links:
        top = link.path.split("/")[0]
        path = redirects[top] + link.path[len(top):] if top in redirects else link.path
        other = placed.setdefault(path, link)
        if other.target != link.target:
            raise InvalidImageContent(
                f"Cannot build {address}: the `{link.field}` of {other.owner} and of "
                f"{link.owner} both link /{path} ({other.target} and {link.target}): "
                f"a top-level path may provide it for one `{link.owner_type}` only."
            )
    return [(f"the `{link.field}` field of {link.owner}", path, link.target)
            for path, link in sorted(placed.items())]


async def _merged(digests: List[Digest]) -> Digest:
    if len(digests) > 1:
        return await Get(Digest, MergeDigests(digests))
    return digests[0] if digests else EMPTY_DIGEST


async def _check_customisation(
    fs: OciImageFieldSet,
    closure: ImageClosure,
    custom: CustomisationLayer,
    symlinks: List[Tuple[str, str, str]],
    entry_claims: List[Tuple[str, str, str]],
    generated: List[Tuple[str, Digest]],
) -> None:
    """The customisation layer sits on top of every other: a path it sets would silently turn
    what a dependency places there into a directory or a symlink. Like a conflict between two
    dependencies, that is an error, naming the field, the path and the dependency.
    `symlinks` are the (owner, path, target) of those the kinds and targets add,
    `entry_claims` the (owner, path, content) of the kinds' root entries, `generated` the
    files they make, by owner."""
    def owner(field) -> str:
        return f"the `{field.alias}` field of {fs.address}"

    files: List[Tuple[str, str, str]] = []
    dirs: List[Tuple[str, str]] = []
    for path, target in (fs.symlinks.value or {}).items():
        files.append((owner(fs.symlinks), normalise_path(path, "symlinks"), SYMLINK + target))
    files.extend((who, path, SYMLINK + target) for who, path, target in symlinks)
    for path, _ in custom.directories:
        dirs.append((owner(fs.directories), normalise_path(path, "directories")))
    for path, data in custom.files:
        files.append((owner(fs.fake_nss), path, f"{hashlib.sha256(data).hexdigest()}:0"))
    files.extend(entry_claims)
    if not files and not dirs and not generated:
        return
    trees = [n for n in closure.nodes if n.kind.at_image_paths]
    owners = [*(who for who, _ in generated), *(n.key for n in trees)]
    digests = [*(digest for _, digest in generated), *(n.digest for n in trees)]
    all_entries = await MultiGet(Get(DigestEntries, Digest, d) for d in digests)
    for claimant, entries in zip(owners, all_entries):
        add_path_claims(claimant, entries, files, dirs)
    try:
        check_paths(files, dirs, owned_paths(closure.nodes))
    except PathConflict as e:
        raise InvalidImageContent(f"Cannot build {fs.address}: {e}") from e


async def _commands(fs: OciImageFieldSet) -> Optional[Commands]:
    """The image's build-time scripts and their tools, or None when it has no script."""
    extra, fake_root = fs.extra_commands.value or None, fs.fake_root_commands.value or None
    if extra is None and fake_root is None:
        return None
    request = CommandsRequest(fs.address, extra, fake_root, tuple(fs.command_tools.value or ()),
                              fs.command_timeout.value)
    return (await Get(BuildCommands, CommandsRequest, request)).commands


@rule(desc="Customising an image", level=LogLevel.DEBUG)
async def image_customisation(
    request: ImageCustomisationRequest, union_membership: UnionMembership
) -> ImageCustomisation:
    """The image's customisation layer, checked against what its dependencies place."""
    fs, closure = request.field_set, request.closure
    address = fs.address
    by_kind: Dict[type, List[StoreNode]] = {}
    for node in closure.nodes:
        by_kind.setdefault(type(node.kind), []).append(node)
    mtime = epoch_seconds(fs.layer_mtime())
    kinds = await MultiGet(
        Get(Customisation, CustomisationRequest,
            member(request.target, tuple(by_kind.get(member.kind, ())), mtime))
        for member in union_membership.get(CustomisationRequest)
    )
    root_entries = tuple(entry for kind in kinds for entry in kind.entries)
    symlinks = [*_root_links(address, closure.root_links, root_entries),
                *(link for kind in kinds for link in kind.symlinks)]
    generated = [item for kind in kinds for item in kind.generated]
    layer = CustomisationLayer(
        symlinks=tuple(sorted(
            [*(fs.symlinks.value or {}).items(), *((p, t) for _, p, t in symlinks)]
        )),
        directories=tuple(
            sorted((p, int(m, 8)) for p, m in (fs.directories.value or {}).items())
        ),
        files=tuple(sorted(nss_files().items())) if fs.fake_nss.value else (),
        generated=await _merged([digest for _, digest in generated]),
        root_entries=root_entries,
        commands=await _commands(fs),
        permissions=LayerPermissions(
            str(address),
            fs.permissions.value,
            f"what {address} adds on top (`directories`, `symlinks`, `fake_nss`, "
            "`ca_certificates`, merged-/usr symlinks, what its build-time commands leave); an "
            "`oci_layer`'s `permissions` reach a dependency's files",
        ) if fs.permissions.value else None,
    )
    entry_claims = [(kind.entries_owner, e.path, SYMLINK + e.target)
                    for kind in kinds for e in kind.entries if e.type == "symlink"]
    await _check_customisation(fs, closure, layer, symlinks, entry_claims, generated)
    return ImageCustomisation(
        layer,
        tuple(kind.entrypoint for kind in kinds if kind.entrypoint),
        tuple(program for kind in kinds for program in kind.programs),
    )


def rules():
    return collect_rules()
