"""The layer contract: the `layer` step's input (`LayerSpec`), which the Pants rules build and
write with `to_json()` and the layer Process reads back with `from_json()`, the one place its
shape is checked (what the files it names hold is checked where they are read).

A content part's item type lives with the part (`strata.core.build.parts`); this module holds
the rest of the spec, the checks the parts share, and the JSON plumbing every spec value of
the core uses. Namedtuples, not dataclasses or `typing`: every layer Process imports this
module, and its start-up time is paid per layer.
"""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
from collections import namedtuple

from strata.core.build import parts as content_parts
from strata.core.build.compression import SUFFIXES
from strata.core.build.tarstream import check_id, check_mtime, check_owner_name


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


def absolute_image_path(path, what: str) -> str:
    """An image path as a target's fields write it (`/etc/motd`): absolute, then `image_path`."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{what}: {path!r} is not an absolute path below `/`")
    return image_path(path, what)


def sandbox_path(path, what: str) -> str:
    """A spec's source: a normalised path relative to the sandbox root."""
    if isinstance(path, str) and path.startswith("/"):
        raise ValueError(f"{what}: source {path!r} must be relative to the sandbox")
    return normalise_path(path, what)


def glob_pattern(path, what: str) -> str:
    """An image path glob as `normalise_path` makes it (never the root itself): `*` and `?`
    match within one component, `**` (only as a whole component) any number of them."""
    pattern = image_path(path, what)
    if any("**" in part and part != "**" for part in pattern.split("/")):
        raise ValueError(f"{what}: {path!r}: '**' must be a whole path component, as in "
                         "'/var/lib/app/**' or '/a/**/b'")
    return pattern


# Nix's store path names (its StorePath rules): the hash part, 32 characters of Nix's base32
# alphabet, "-", then a name of at most 211 of these characters, not starting with ".".
NIX_STORE_DIR = "/nix/store"
_NIX_BASE32 = frozenset("0123456789abcdfghijklmnpqrsvwxyz")
_NIX_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=")


def nix_store_path(path, what: str) -> str:
    """A top-level Nix store path, `/nix/store/<32 base32 characters>-<name>`, never a path
    inside one."""
    base = path[len(NIX_STORE_DIR) + 1:] if isinstance(path, str) else ""
    hash_part, dash, name = base[:32], base[32:33], base[33:]
    if not (isinstance(path, str) and path.startswith(NIX_STORE_DIR + "/")
            and set(hash_part) <= _NIX_BASE32 and len(hash_part) == 32 and dash == "-"
            and name and len(name) <= 211 and not name.startswith(".")
            and set(name) <= _NIX_NAME_CHARS):
        raise ValueError(f"{what}: {path!r} is not a Nix store path "
                         f"({NIX_STORE_DIR}/<32-character hash>-<name>)")
    return path


def sha256_digest(value, what: str) -> str:
    """`sha256:` and 64 lower-case hex digits."""
    hex_part = value[len("sha256:"):] if isinstance(value, str) else ""
    if not (isinstance(value, str) and value.startswith("sha256:") and len(hex_part) == 64
            and all(c in "0123456789abcdef" for c in hex_part)):
        raise ValueError(f"{what}: not a sha256 digest: {value!r}")
    return value


def check_keys(obj, what: str, required, optional=()) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object")
    missing = [key for key in required if key not in obj]
    unknown = sorted(set(obj) - set(required) - set(optional))
    if missing or unknown:
        raise ValueError(f"{what}: missing keys {missing}, unknown keys {unknown}")


def json_list(value, what: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def optional_str(obj: dict, key: str, what: str):
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}: {key} must be a string or null, got {value!r}")
    return value


def json_strings(value, what: str) -> tuple:
    items = json_list(value, what)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(items)


def check_mode(value, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 0o7777:
        raise ValueError(f"{what}: mode must be an integer in 0..0o7777, got {value!r}")
    return value


def zstd_path(value, what: str):
    if value is not None and not (isinstance(value, str) and os.path.isabs(value)):
        raise ValueError(f"{what} must be the zstd binary's absolute path: {value!r}")
    return value


def to_json_value(value):
    """A spec value as JSON data: namedtuples become objects (without their None fields, unless
    their own `to_json` keeps them)."""
    if isinstance(value, JsonTuple):
        return value.to_json()
    if hasattr(value, "_asdict"):
        return {k: to_json_value(v) for k, v in value._asdict().items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_json_value(item) for item in value]
    return value


class JsonTuple:
    """A spec value: a namedtuple written as a JSON object of its fields, None ones left out."""

    __slots__ = ()

    def to_json(self) -> dict:
        return {k: to_json_value(v) for k, v in self._asdict().items() if v is not None}


class LayerSettings(
    JsonTuple,
    namedtuple("LayerSettings", "mtime uid gid uname gname compression zstd",
               defaults=(1, 0, 0, "root", "root", "none", None)),
):
    """How every entry of a layer is stamped and how its blob is compressed (`zstd`: the
    binary's absolute path, needed to write or to read zstd)."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj) -> LayerSettings:
        check_keys(obj, "settings", (), cls._fields)
        settings = cls(**obj)
        for key, default in cls._field_defaults.items():
            value = getattr(settings, key)
            expected = type(default) if key != "zstd" else (str, type(None))
            if type(value) is bool or not isinstance(value, expected):
                raise ValueError(f"settings: {key} has the wrong type: {value!r}")
        if settings.compression not in SUFFIXES:
            raise ValueError(f"settings: unknown compression {settings.compression!r}")
        zstd_path(settings.zstd, "settings.zstd")
        check_mtime(settings.mtime, "settings: mtime")
        for key in ("uid", "gid"):
            check_id(getattr(settings, key), f"settings: {key}")
        for key in ("uname", "gname"):
            check_owner_name(getattr(settings, key), f"settings: {key}")
        return settings


class Permission(
    JsonTuple,
    namedtuple("Permission", "pattern mode uid gid uname gname", defaults=(None,) * 5),
):
    """What a layer's entries matching the glob `pattern` get (strata.core.build.permissions):
    any of a mode (0..0o7777), an owner's ids and names. None leaves that attribute alone."""

    __slots__ = ()

    _ATTRIBUTES = ("mode", "uid", "gid", "uname", "gname")

    @classmethod
    def from_json(cls, obj, what: str) -> Permission:
        check_keys(obj, what, ("pattern",), cls._ATTRIBUTES)
        pattern = glob_pattern(obj["pattern"], what)
        if not set(cls._ATTRIBUTES) & set(obj):
            raise ValueError(f"{what}: {obj['pattern']!r} sets none of "
                             f"{', '.join(cls._ATTRIBUTES)}")
        if "mode" in obj:
            check_mode(obj["mode"], what)
        for key in ("uid", "gid"):
            check_id(obj.get(key, 0), f"{what}: {key}")
        for key in ("uname", "gname"):
            check_owner_name(obj.get(key, ""), f"{what}: {key}", empty=True)
        return cls(**{**obj, "pattern": pattern})


def _tools(value, what: str) -> tuple:
    """[[name, absolute path, sha256 of its content], ...] as a tuple of triples."""
    tools = []
    for item in json_list(value, what):
        if not (isinstance(item, list) and len(item) == 3
                and all(isinstance(part, str) and part for part in item)
                and "/" not in item[0] and os.path.isabs(item[1])):
            raise ValueError(f"{what}: a tool is [name, absolute path, sha256]: {item!r}")
        tools.append(tuple(item))
    return tuple(tools)


class Commands(
    JsonTuple,
    namedtuple("Commands", "extra_commands fake_root_commands tools runners files timeout",
               defaults=(None, None, (), (), (), None)),
):
    """Shell scripts run over the layer's content before it is written
    (strata.core.build.commands): `extra_commands`, then `fake_root_commands` under fakeroot,
    each for `timeout` seconds at most. `tools` are the host programs on their PATH, `runners`
    those that run them (bwrap, sh, fakeroot and what it runs), each (name, absolute path,
    sha256 of its content); `files` (absolute path, sha256) what else their sandbox holds, at
    that path (strata.core.command_files: loaders, libraries, interpreters, fakeroot's daemon
    and library). The hashes are the cache key's part of all a script can read: another build
    of a host file gives another layer."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Commands:
        check_keys(obj, what, ("tools", "runners", "files", "timeout"),
                   ("extra_commands", "fake_root_commands"))
        scripts = [obj.get(key) for key in ("extra_commands", "fake_root_commands")]
        if not any(scripts) or not all(s is None or isinstance(s, str) for s in scripts):
            raise ValueError(f"{what}: extra_commands or fake_root_commands must be a script")
        files = []
        for item in json_list(obj["files"], f"{what}.files"):
            if not (isinstance(item, list) and len(item) == 2
                    and all(isinstance(part, str) and part for part in item)
                    and os.path.isabs(item[0])):
                raise ValueError(f"{what}.files: a file is [absolute path, sha256]: {item!r}")
            files.append(tuple(item))
        timeout = obj["timeout"]
        if type(timeout) is not int or timeout <= 0:
            raise ValueError(f"{what}.timeout: expected a positive number of seconds: {timeout!r}")
        return cls(*scripts, _tools(obj["tools"], f"{what}.tools"),
                   _tools(obj["runners"], f"{what}.runners"), tuple(files), timeout)



class LayerSpec(
    JsonTuple,
    namedtuple("LayerSpec", "settings parts commands permissions", defaults=((), None, None)),
):
    """The `layer` step's input. `parts` is the layer's content, ((name, items), ...): each
    name is a module of `strata.core.build.parts`, the items are its `Item`s and its `add`
    puts their entries into the layer, in this order (which changes no byte: the entries are
    sorted once collected and identical duplicates collapse; it only decides which side a
    conflict's message names first). Then `commands` (scripts that run over the collected
    content) replace the entries with what they leave, and `permissions` (rules applied in
    order to the entries) set modes and owners. The JSON holds a key per non-empty part, and
    `commands` and `permissions` only when set, so that a new kind of content leaves the spec,
    and so the cache key, of every other layer unchanged."""

    __slots__ = ()

    _OTHER_KEYS = ("settings", "commands", "permissions")

    def to_json(self) -> dict:
        obj = {"settings": self.settings.to_json()}
        obj.update((name, to_json_value(items)) for name, items in self.parts if items)
        if self.commands is not None:
            obj["commands"] = self.commands.to_json()
        if self.permissions is not None:
            obj["permissions"] = to_json_value(self.permissions)
        return obj

    @classmethod
    def from_json(cls, obj) -> LayerSpec:
        names = [key for key in obj if key not in cls._OTHER_KEYS and content_parts.exists(key)
                 ] if isinstance(obj, dict) else []
        check_keys(obj, "layer spec", (), (*cls._OTHER_KEYS, *names))
        parts = tuple(
            (name, tuple(
                content_parts.load(name).Item.from_json(item, f"{name}[{index}]")
                for index, item in enumerate(json_list(obj[name], f"layer spec: {name}"))
            ))
            for name in names
        )
        commands = obj.get("commands")
        permissions = obj.get("permissions")
        if permissions is not None:
            permissions = tuple(
                Permission.from_json(item, f"permissions[{index}]")
                for index, item in enumerate(json_list(permissions, "layer spec: permissions"))
            )
        return cls(
            LayerSettings.from_json(obj.get("settings", {})),
            parts,
            None if commands is None else Commands.from_json(commands, "commands"),
            permissions,
        )
