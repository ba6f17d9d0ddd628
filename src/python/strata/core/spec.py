"""The typed contract between the Pants rules and the core: what each subcommand reads.

Both halves import this module: the rules build these values and write `to_json()`, the core
reads them back with `from_json()`, which is the one place their shape is checked. Plain
classes and namedtuples, not dataclasses or `typing`: every layer Process imports this module,
and its start-up time is paid per layer.
"""


def normalise_path(path, what: str) -> str:
    """A relative, `/`-separated image path without `.`, empty or trailing components."""
    if not isinstance(path, str) or "\0" in path:
        raise ValueError(f"{what}: invalid path {path!r}")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{what}: path {path!r} escapes the image root ('..' is not allowed)")
    return "/".join(parts)


def image_path(path, what: str) -> str:
    """`normalise_path` for a path that names something in the image: never the root itself."""
    normal = normalise_path(path, what)
    if not normal:
        raise ValueError(f"{what}: path {path!r} names the image root itself")
    return normal
