"""The files a root built from .debs needs but no package's data.tar holds, because a
maintainer script would have written them (none is ever run): the CA bundle, users and groups,
the merged-/usr root symlinks."""

import os
from typing import Dict, List, Optional

from strata.core.atomic import write_bytes_atomically
from strata.core.build.deb import MERGED_USR_DIRS, open_deb
from strata.core.build.parts.entries import Entry
from strata.core.build.spec import normalise_path


def ca_bundle_command(options) -> None:
    """`ca-bundle --deb CA_CERTIFICATES_DEB --out FILE [--zstd PATH]`: the bundle postinst would
    have written."""
    with open(options.deb, "rb") as f:
        bundle = ca_certificates_bundle(f, options.zstd)
    os.makedirs(os.path.dirname(options.out) or ".", exist_ok=True)
    write_bytes_atomically(options.out, bundle)


def merged_usr_entries() -> List[Entry]:
    """The merged-/usr root symlinks (/bin -> usr/bin, ...) and their target directories, for a
    layer on top of the deb layers: deb layers put those directories' content under usr/."""
    entries: List[Entry] = []
    for name in MERGED_USR_DIRS:
        entries += [Entry.symlink(name, f"usr/{name}"), Entry.dir(f"usr/{name}")]
    return entries


def ca_certificates_bundle(f, zstd: Optional[str] = None) -> bytes:
    """/etc/ssl/certs/ca-certificates.crt from the ca-certificates .deb in `f`: its
    usr/share/ca-certificates/**/*.crt concatenated in path order, each ending in a newline, as
    update-ca-certificates writes it (the package's postinst, which runs it, is never run)."""
    prefix = "usr/share/ca-certificates/"
    certificates: Dict[str, bytes] = {}
    with open_deb(f, zstd) as (_, tar):
        for info in tar:
            path = normalise_path(info.name, "ca-certificates data.tar")
            if info.isreg() and path.startswith(prefix) and path.endswith(".crt"):
                certificates[path] = tar.extractfile(info).read()
    if not certificates:
        raise ValueError(f"the .deb has no {prefix}**/*.crt files")
    return b"".join(
        data if data.endswith(b"\n") or not data else data + b"\n"
        for _, data in sorted(certificates.items(), key=lambda item: item[0].encode())
    )


def nss_files() -> Dict[str, bytes]:
    """Minimal users, groups and nsswitch.conf, so that root and nobody resolve without
    base-passwd (whose postinst, never run, would write them). Image path -> content."""
    return {
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"
                      b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
        "etc/nsswitch.conf": b"passwd: files\ngroup: files\nshadow: files\n"
                             b"hosts: files dns\nnetworks: files\nprotocols: files\n"
                             b"services: files\nethers: files\nrpc: files\n",
    }
