"""The `describe` subcommand: the facts an SBOM lists of one package (a .deb, a wheel:
`strata.core.sbom.packages`) or of first-party content (a directory's files, with the SHA1 SPDX
asks for and Pants digests lack).

A first-party tree is described again at every edit of its files, so this module imports only
what hashing it needs: the package readers (email, zipfile, the .deb reader, the licence
tables) are imported when a package is described.
"""

import hashlib
import json
import os
import stat
from typing import Tuple

from strata.core.atomic import write_bytes_atomically
from strata.core.build.compression import CHUNK
from strata.core.errors import UsageError
from strata.core.build.spec import normalise_path
from strata.core.sbom.spec import PackageFacts


def _digests(chunks) -> Tuple[str, str]:
    """(SHA256, SHA1) hex of the bytes `chunks` yields."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    for chunk in chunks:
        sha256.update(chunk)
        sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def _tree_facts(name: str, dest: str, files) -> PackageFacts:
    """`files`: (path relative to the tree, (SHA256, SHA1)), each at image path `dest/<path>`."""
    return PackageFacts("files", name, files=tuple(sorted(
        (normalise_path(f"{dest}/{relative}", name), *digests) for relative, digests in files
    )))


def describe_tree(root: str, name: str, dest: str = "") -> PackageFacts:
    """First-party content: each regular file under `root` (symlinks are not followed) at
    image path `dest/<its path under root>`, with its SHA256 and SHA1."""
    if not os.path.isdir(root):
        raise ValueError(f"{root}: not a directory")
    files = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories.sort()
        for file_name in names:
            path = os.path.join(directory, file_name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                with open(path, "rb") as f:
                    digests = _digests(iter(lambda: f.read(CHUNK), b""))
                files.append((os.path.relpath(path, root), digests))
    return _tree_facts(name, dest, files)


def describe_contents(name: str, dest: str, contents) -> PackageFacts:
    """`describe_tree` of files given as (path relative to the tree, content) pairs: what the
    rules use for a small first-party node, whose contents pantsd holds anyway, rather than a
    Process (its start-up would be most of an edit loop's SBOM time)."""
    return _tree_facts(name, dest, ((relative, _digests((data,))) for relative, data in contents))


def describe_command(options) -> None:
    """`describe --out FILE` and exactly one of `--deb FILE`, `--wheel FILE`, `--tree DIR
    --name NAME [--dest PATH]`."""
    given = [flag for flag in ("deb", "wheel", "tree") if getattr(options, flag) is not None]
    if len(given) != 1:
        raise UsageError("describe takes exactly one of --deb, --wheel and --tree")
    if (options.tree is None) != (options.name is None) or (
            options.dest is not None and options.tree is None):
        raise UsageError("--name (and --dest) go with --tree, and --tree needs --name")
    if options.deb is not None or options.wheel is not None:
        from strata.core.sbom import packages

        facts = (packages.describe_deb(options.deb) if options.deb is not None
                 else packages.describe_wheel(options.wheel))
    else:
        facts = describe_tree(options.tree, options.name, options.dest or "")
    data = json.dumps(facts.to_json(), sort_keys=True, indent=2, ensure_ascii=False)
    write_bytes_atomically(options.out, data.encode("utf-8") + b"\n")
