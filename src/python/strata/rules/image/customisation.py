"""What an `oci_image` adds on top of its dependencies' layers, from its own fields and from
what its nodes contribute: the customisation layer (`fake_nss`, `directories`, `symlinks`, the CA
bundle, the merged-/usr symlinks, the Nix customisation, build-time commands), its check against
the dependencies' paths, and the venv entrypoint of its runtime config."""

from __future__ import annotations

import hashlib
from typing import List, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestEntries, MergeDigests
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, MultiGet
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from strata.core.debian.rootfs import merged_usr_entries, nss_files
from strata.core.graph.closure import SYMLINK, PathConflict, check_paths
from strata.core.oci.image import epoch_seconds
from strata.core.build.spec import Commands, normalise_path
from strata.rules.closure import (
    ImageClosure,
    InvalidImageContent,
    LayerPermissions,
    add_path_claims,
    owned_paths,
)
from strata.rules.commands import BuildCommands, CommandsRequest
from strata.rules.debian import DEB_DIR
from strata.rules.image.field_set import OciImageFieldSet
from strata.rules.layers import CustomisationLayer
from strata.rules.nodes import FileTree
from strata.rules.nodes.debian import DebianPackage
from strata.rules.nodes.nix import nix_customisation
from strata.rules.nodes.python_venv import PythonPart
from strata.rules.tool import ImageTool


async def customisation_layer(fs: OciImageFieldSet, closure: ImageClosure,
                              tool: ImageTool) -> CustomisationLayer:
    """The image's customisation layer, checked against what its dependencies place."""
    address = fs.address
    merged_usr = any(isinstance(node.kind, DebianPackage) for node in closure.nodes)
    nix = await nix_customisation(fs, closure, merged_usr, epoch_seconds(fs.layer_mtime()))
    customisation = CustomisationLayer(
        symlinks=tuple(sorted(
            [*(fs.symlinks.value or {}).items(), *((p, t) for _, p, t in nix.symlinks)]
        )),
        directories=tuple(
            sorted((p, int(m, 8)) for p, m in (fs.directories.value or {}).items())
        ),
        files=tuple(sorted(nss_files().items())) if fs.fake_nss.value else (),
        generated=await _generated(fs, closure, tool, nix.generated),
        merged_usr=merged_usr,
        commands=await _commands(fs),
        permissions=LayerPermissions(
            str(address),
            fs.permissions.value,
            f"what {address} adds on top (`directories`, `symlinks`, `fake_nss`, "
            "`ca_certificates`, merged-/usr symlinks, what its build-time commands leave); an "
            "`oci_layer`'s `permissions` reach a dependency's files",
        ) if fs.permissions.value else None,
    )
    await _check_customisation(fs, closure, customisation, nix.symlinks)
    return customisation


def with_venv_entrypoint(address: Address, config: dict, closure: ImageClosure) -> dict:
    """An image without an `entrypoint` of its own runs its `python_venv`'s launcher."""
    if "Entrypoint" in config:
        return config
    commands = sorted({n.kind.entrypoint for n in closure.nodes
                       if isinstance(n.kind, PythonPart) and n.kind.entrypoint})
    if len(commands) > 1:
        raise InvalidFieldException(
            f"{address} holds several `python_venv` targets with an entry point "
            f"({', '.join(c[0] for c in commands)}): set its `entrypoint` field to say which "
            "one the container runs."
        )
    return {**config, "Entrypoint": list(commands[0])} if commands else config


_CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


async def _ca_bundle(fs: OciImageFieldSet, closure: ImageClosure, tool: ImageTool) -> Digest:
    """/etc/ssl/certs/ca-certificates.crt, from the image's ca-certificates package."""
    package = next((n for n in closure.nodes if n.kind == DebianPackage("ca-certificates")), None)
    if package is None:
        raise InvalidFieldException(
            f"The `ca_certificates` field of {fs.address} needs the `ca-certificates` Debian "
            "package in the image: add it to one of its `debian_packages` targets."
        )
    result = await Get(
        ProcessResult,
        Process(
            argv=tool.argv(
                "ca-bundle", "--deb", f"{DEB_DIR}/ca-certificates.deb", "--out", _CA_BUNDLE
            ),
            input_digest=await Get(Digest, MergeDigests([tool.digest, package.digest])),
            output_files=(_CA_BUNDLE,),
            description=f"Generating the CA bundle of {fs.address}",
            level=LogLevel.INFO,
        ),
    )
    return result.output_digest


async def _generated(
    fs: OciImageFieldSet, closure: ImageClosure, tool: ImageTool, nix_db: Digest
) -> Digest:
    """The customisation layer's generated files: the CA bundle and the Nix database."""
    ca = await _ca_bundle(fs, closure, tool) if fs.ca_certificates.value else EMPTY_DIGEST
    if EMPTY_DIGEST in (ca, nix_db):
        return nix_db if ca == EMPTY_DIGEST else ca
    return await Get(Digest, MergeDigests([ca, nix_db]))


async def _check_customisation(
    fs: OciImageFieldSet,
    closure: ImageClosure,
    custom: CustomisationLayer,
    nix_symlinks: Tuple[Tuple[str, str, str], ...],
) -> None:
    """The customisation layer sits on top of every other: a path it sets would silently turn
    what a dependency places there into a directory or a symlink. Like a conflict between two
    dependencies, that is an error, naming the field, the path and the dependency.
    `nix_symlinks` are the (owner, path, target) of the symlinks Nix paths add to it."""
    def owner(field) -> str:
        return f"the `{field.alias}` field of {fs.address}"

    files: List[Tuple[str, str, str]] = []
    dirs: List[Tuple[str, str]] = []
    for path, target in (fs.symlinks.value or {}).items():
        files.append((owner(fs.symlinks), normalise_path(path, "symlinks"), SYMLINK + target))
    files.extend((who, path, SYMLINK + target) for who, path, target in nix_symlinks)
    for path, _ in custom.directories:
        dirs.append((owner(fs.directories), normalise_path(path, "directories")))
    for path, data in custom.files:
        files.append((owner(fs.fake_nss), path, f"{hashlib.sha256(data).hexdigest()}:0"))
    if custom.merged_usr:
        usr = f"the merged-/usr symlinks of {fs.address} (it has Debian packages)"
        files.extend((usr, e.path, SYMLINK + e.target)
                     for e in merged_usr_entries() if e.type == "symlink")
    if not files and not dirs and custom.generated == EMPTY_DIGEST:
        return
    trees = [n for n in closure.nodes if isinstance(n.kind, FileTree)]
    owners = [owner(fs.ca_certificates), *(n.key for n in trees)]
    digests = [custom.generated, *(n.digest for n in trees)]
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

