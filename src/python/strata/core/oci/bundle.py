"""Several images in one docker-archive (`oci_image_bundle`, dockerTools' mergeImages), which
`docker load` and `podman load` load whole and skopeo reads image by image, by RepoTag.

The archive is `write_docker_archive` over the images in order: a layer or config that several
images share is stored once. Each image comes as its own image spec, its paths relative to the
spec's directory, so the rules put each image's inputs in a directory of its own.
"""

import os
from typing import Sequence, Tuple

from strata.core.atomic import write_file_atomically
from strata.core.errors import InvalidInput, UsageError
from strata.core.oci.docker_archive import write_docker_archive
from strata.core.oci.formats import load_image
from strata.core.oci.model import Image


class DuplicateRepoTag(InvalidInput):
    """Two images of one repository:tag: a loader would keep only one of them under it."""

    def __init__(self, repo_tag: str, names: Sequence[str]):
        self.repo_tag, self.names = repo_tag, list(names)
        super().__init__(f"{' and '.join(names)} are both {repo_tag}")


def check_repo_tags(images: Sequence[Tuple[str, Image]]) -> None:
    """`images` as (name, image) pairs: the first two with one repository:tag are an error
    naming both."""
    seen = {}
    for name, img in images:
        if img.repo_tag in seen:
            raise DuplicateRepoTag(img.repo_tag, [seen[img.repo_tag], name])
        seen[img.repo_tag] = name


def bundle_command(options) -> None:
    """Write the images of the specs (in their order) as one docker-archive."""
    if not options.spec:
        raise UsageError("a bundle needs at least one --spec")
    images = [load_image(spec) for spec in options.spec]
    check_repo_tags(list(zip(options.spec, images)))
    os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
    write_file_atomically(options.out, lambda f: write_docker_archive(images, f))
