"""The typed contract between the Pants rules and the core: what each subcommand reads.

Both halves import this module: the rules build these values and write `to_json()`, the core
reads them back with `from_json()`, the one place their shape is checked (what the files they
name hold is checked where they are read). Namedtuples, not dataclasses or `typing`: every
layer Process imports this module, and its start-up time is paid per layer.
"""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

import os
from collections import namedtuple

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


def check_keys(obj, what: str, required, optional=()) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object")
    missing = [key for key in required if key not in obj]
    unknown = sorted(set(obj) - set(required) - set(optional))
    if missing or unknown:
        raise ValueError(f"{what}: missing keys {missing}, unknown keys {unknown}")


def _list(value, what: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def _mode(value, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 0o7777:
        raise ValueError(f"{what}: mode must be an integer in 0..0o7777, got {value!r}")
    return value


def _zstd(value, what: str):
    if value is not None and not (isinstance(value, str) and os.path.isabs(value)):
        raise ValueError(f"{what} must be the zstd binary's absolute path: {value!r}")
    return value


def _to_json(value):
    """A spec value as JSON data: namedtuples become objects (without their None fields, unless
    their own `to_json` keeps them)."""
    if isinstance(value, _Spec):
        return value.to_json()
    if hasattr(value, "_asdict"):
        return {k: _to_json(v) for k, v in value._asdict().items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return value


class _Spec:
    __slots__ = ()

    def to_json(self) -> dict:
        return {k: _to_json(v) for k, v in self._asdict().items() if v is not None}


class LayerSettings(
    _Spec,
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
        _zstd(settings.zstd, "settings.zstd")
        check_mtime(settings.mtime, "settings: mtime")
        for key in ("uid", "gid"):
            check_id(getattr(settings, key), f"settings: {key}")
        for key in ("uname", "gname"):
            check_owner_name(getattr(settings, key), f"settings: {key}")
        return settings


class Tree(_Spec, namedtuple("Tree", "source dest executables")):
    """A sandbox directory's files at `dest` in the image; modes are 0644, or 0755 for the
    `executables` (image paths relative to `dest`): a sandbox's modes say nothing reliable."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Tree:
        check_keys(obj, what, cls._fields)
        executables = _list(obj["executables"], f"{what}: executables")
        return cls(
            sandbox_path(obj["source"], what),
            normalise_path(obj["dest"], what),
            tuple(image_path(path, f"{what}.executables") for path in executables),
        )


class Entry(_Spec, namedtuple("Entry", "path type mode source target", defaults=(None,) * 3)):
    """One explicit image entry: a `dir` (mode), a `symlink` (target) or a `file` (a sandbox
    `source`, and its mode)."""

    __slots__ = ()

    _KEYS = {"dir": (("path", "type"), ("mode",)), "symlink": (("path", "type", "target"), ()),
             "file": (("path", "type", "source", "mode"), ())}

    @classmethod
    def dir(cls, path: str, mode: int = 0o755) -> Entry:
        return cls(path, "dir", mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        return cls(path, "symlink", target=target)

    @classmethod
    def file(cls, path: str, source: str, mode: int) -> Entry:
        return cls(path, "file", mode, source)

    @classmethod
    def from_json(cls, obj, what: str) -> Entry:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in cls._KEYS:
            raise ValueError(f"{what}: type must be 'dir', 'symlink' or 'file', got {kind!r}")
        check_keys(obj, what, *cls._KEYS[kind])
        path = image_path(obj["path"], what)
        if kind == "dir":
            return cls.dir(path, _mode(obj.get("mode", 0o755), what))
        if kind == "symlink":
            target = obj["target"]
            if not isinstance(target, str) or not target or "\0" in target:
                raise ValueError(f"{what}: invalid symlink target {target!r}")
            return cls.symlink(path, target)
        return cls.file(path, sandbox_path(obj["source"], what), _mode(obj["mode"], what))


class Deb(_Spec, namedtuple("Deb", "source package")):
    """A Debian package's .deb in the sandbox, whose files the layer holds as dpkg installs
    them (merged-/usr), with its dpkg status entry."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Deb:
        check_keys(obj, what, cls._fields)
        if not isinstance(obj["package"], str) or not obj["package"]:
            raise ValueError(f"{what}: package must be a package name")
        return cls(sandbox_path(obj["source"], what), obj["package"])


BYTECODE_MODES = ("none", "checked-hash", "unchecked-hash")


def _python_version(value, what: str) -> str:
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"{what}: version must be MAJOR.MINOR, such as '3.11': {value!r}")
    return value


def _bytecode(value, what: str) -> str:
    if value not in BYTECODE_MODES:
        raise ValueError(f"{what}: bytecode must be one of {list(BYTECODE_MODES)}: {value!r}")
    return value


class Venv(_Spec, namedtuple("Venv", "path python version launchers")):
    """A virtualenv's skeleton at image path `path`: `pyvenv.cfg`, and `bin/python`,
    `bin/python3` and `bin/pythonX.Y` as symlinks to the image's interpreter at image path
    `python`, of `version`; each launcher (name, entry point `module:function` or
    `module`) is a console script `bin/<name>` run by the venv's python."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Venv:
        check_keys(obj, what, cls._fields)
        launchers = []
        for item in _list(obj["launchers"], f"{what}: launchers"):
            if not (isinstance(item, list) and len(item) == 2
                    and all(isinstance(part, str) and part for part in item)
                    and "/" not in item[0]):
                raise ValueError(f"{what}: a launcher is [name, entry point]: {item!r}")
            launchers.append(tuple(item))
        return cls(image_path(obj["path"], what), image_path(obj["python"], what),
                   _python_version(obj["version"], what), tuple(launchers))


class Wheel(_Spec, namedtuple("Wheel", "source venv version machine bytecode")):
    """One distribution as pex installs it into a chroot (a packed PEX's `.deps/<wheel>` zip:
    importable files at the top, scripts, headers and data under `.prefix/`) at sandbox path
    `source`, installed into the venv at image path `venv` for CPython `version` on `machine`
    (`x86_64`, `aarch64`, ...) as pip would, with `bytecode` pycs."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Wheel:
        check_keys(obj, what, cls._fields)
        if not isinstance(obj["machine"], str) or not obj["machine"]:
            raise ValueError(f"{what}: machine must be a machine name such as 'x86_64'")
        return cls(sandbox_path(obj["source"], what), image_path(obj["venv"], what),
                   _python_version(obj["version"], what), obj["machine"],
                   _bytecode(obj["bytecode"], what))


class PythonSources(_Spec, namedtuple("PythonSources", "source venv version bytecode")):
    """First-party modules and resources, source roots stripped, in sandbox directory `source`:
    placed in the site-packages of the venv at image path `venv` (CPython `version`), where
    its python imports them, with `bytecode` pycs."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> PythonSources:
        check_keys(obj, what, cls._fields)
        return cls(sandbox_path(obj["source"], what), image_path(obj["venv"], what),
                   _python_version(obj["version"], what), _bytecode(obj["bytecode"], what))


def glob_pattern(path, what: str) -> str:
    """An image path glob as `normalise_path` makes it (never the root itself): `*` and `?`
    match within one component, `**` (only as a whole component) any number of them."""
    pattern = image_path(path, what)
    if any("**" in part and part != "**" for part in pattern.split("/")):
        raise ValueError(f"{what}: {path!r}: '**' must be a whole path component, as in "
                         "'/var/lib/app/**' or '/a/**/b'")
    return pattern


class Permission(
    _Spec,
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
            _mode(obj["mode"], what)
        for key in ("uid", "gid"):
            check_id(obj.get(key, 0), f"{what}: {key}")
        for key in ("uname", "gname"):
            check_owner_name(obj.get(key, ""), f"{what}: {key}", empty=True)
        return cls(**{**obj, "pattern": pattern})


def _tools(value, what: str) -> tuple:
    """[[name, absolute path, sha256 of its content], ...] as a tuple of triples."""
    tools = []
    for item in _list(value, what):
        if not (isinstance(item, list) and len(item) == 3
                and all(isinstance(part, str) and part for part in item)
                and "/" not in item[0] and os.path.isabs(item[1])):
            raise ValueError(f"{what}: a tool is [name, absolute path, sha256]: {item!r}")
        tools.append(tuple(item))
    return tuple(tools)


class Commands(
    _Spec,
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
        for item in _list(obj["files"], f"{what}.files"):
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


class Nar(_Spec, namedtuple("Nar", "source store_path nar_hash")):
    """One Nix store path as a NAR (`nix-store --dump`) at sandbox path `source`, whose entries
    the layer holds at `store_path` (strata.core.build.nar), once the NAR's sha256 is
    `nar_hash` ("sha256:<hex>")."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> Nar:
        check_keys(obj, what, cls._fields)
        return cls(sandbox_path(obj["source"], what),
                   nix_store_path(obj["store_path"], f"{what}.store_path"),
                   _digest(obj["nar_hash"], f"{what}.nar_hash"))


class LayerSpec(
    _Spec,
    namedtuple("LayerSpec",
               "settings trees entries debs venvs wheels python_sources nars commands "
               "permissions",
               defaults=((), (), ()) + (None,) * 6),
):
    """The `layer` subcommand's input. Each content part (trees, entries, ...) is written by
    its own step (strata.core.build.layer.CONTENT_STEPS) into one sorted, checked layer; then
    `commands` (not a content part: scripts that run over the collected content) replace the
    entries with what they leave, and `permissions` (rules applied in order to the entries) set
    modes and owners. The Python parts, `nars`, `commands` and `permissions` default to None,
    which `to_json` leaves out: adding them kept the spec, and so the cache key, of every other
    layer unchanged."""

    __slots__ = ()

    PARTS = {"trees": Tree, "entries": Entry, "debs": Deb, "venvs": Venv, "wheels": Wheel,
             "python_sources": PythonSources, "nars": Nar}

    @classmethod
    def from_json(cls, obj) -> LayerSpec:
        check_keys(obj, "layer spec", (), ("settings", *cls.PARTS, "commands", "permissions"))
        parts = {
            name: tuple(
                part.from_json(item, f"{name}[{index}]")
                for index, item in enumerate(_list(obj.get(name, []), f"layer spec: {name}"))
            )
            for name, part in cls.PARTS.items()
        }
        commands = obj.get("commands")
        permissions = obj.get("permissions")
        if permissions is not None:
            permissions = tuple(
                Permission.from_json(item, f"permissions[{index}]")
                for index, item in enumerate(_list(permissions, "layer spec: permissions"))
            )
        return cls(
            LayerSettings.from_json(obj.get("settings", {})),
            **parts,
            commands=None if commands is None else Commands.from_json(commands, "commands"),
            permissions=permissions,
        )


class LayerRef(_Spec, namedtuple("LayerRef", "dir comment", defaults=("",))):
    """A `layer` output directory in the sandbox, and its history comment."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> LayerRef:
        if not isinstance(obj, dict) or not isinstance(obj.get("dir"), str):
            raise ValueError(f"{what} must be an object with a string 'dir'")
        check_keys(obj, what, ("dir",), ("comment",))
        if not isinstance(obj.get("comment", ""), str):
            raise ValueError(f"{what}.comment must be a string")
        return cls(**obj)


class ImageSpec(
    _Spec,
    namedtuple("ImageSpec", "format layers config repository tag base zstd",
               defaults=(None, None, None)),
):
    """The `assemble` and `stream` subcommands' input: the output format, the image's own
    layers (bottom first), the image config's settings (strata.core.oci.image.make_config),
    the repository and tag (None: one derived from the config digest), the base dir, and the
    zstd binary that decompresses a base's zstd layers for docker-archive."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj) -> ImageSpec:
        from strata.core.oci.formats import FORMATS  # not in layer Processes' sandboxes

        check_keys(obj, "image spec", ("format", "layers"), cls._fields[2:])
        if obj.get("format") not in FORMATS:
            raise ValueError(f"format must be one of {list(FORMATS)}: {obj.get('format')!r}")
        layers = _list(obj["layers"], "layers")
        if obj.get("base") is not None and not isinstance(obj["base"], str):
            raise ValueError(f"base must be a base dir's path: {obj['base']!r}")
        return cls(
            obj["format"],
            tuple(LayerRef.from_json(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
            obj.get("config", {}),
            obj.get("repository"),
            obj.get("tag"),
            obj.get("base"),
            _zstd(obj.get("zstd"), "zstd"),
        )


class BaseInfo(_Spec, namedtuple("BaseInfo", "config_digest manifest_digest media_type")):
    """A base dir's base.json, which `import-base` writes beside config.json and layers/NNN:
    the config's digest, and the manifest (and its media type) the base was read from."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> BaseInfo:
        from strata.core.oci.image import digest_hex

        if not isinstance(obj, dict) or not isinstance(obj.get("media_type"), str):
            raise ValueError(f"{what} must be an object with a string media_type")
        check_keys(obj, what, cls._fields)
        try:
            digest_hex(obj["config_digest"])
            digest_hex(obj["manifest_digest"])
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
        return cls(**obj)


def _optional_str(obj: dict, key: str, what: str):
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}: {key} must be a string or null, got {value!r}")
    return value


def _strings(value, what: str) -> tuple:
    items = _list(value, what)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(items)


def _digest(value, what: str) -> str:
    hex_part = value[len("sha256:"):] if isinstance(value, str) else ""
    if not (isinstance(value, str) and value.startswith("sha256:") and len(hex_part) == 64
            and all(c in "0123456789abcdef" for c in hex_part)):
        raise ValueError(f"{what}: not a sha256 digest: {value!r}")
    return value


class SourcePackage(_Spec, namedtuple("SourcePackage", "name version")):
    """The Debian source package a binary package was built from."""

    __slots__ = ()


PACKAGE_KINDS = ("deb", "python", "files", "nix")


class PackageFacts(
    _Spec,
    namedtuple("PackageFacts",
               "kind name version architecture source supplier homepage license license_texts "
               "purl warnings files",
               defaults=(None,) * 6 + ({}, None, (), None)),
):
    """What the `describe` subcommand learnt of one package (a .deb, a wheel) or of first-party
    content (kind `files`: `files` = (image path, sha256 hex, sha1 hex) per regular file).
    `license` is an SPDX expression or None (unknown); `license_texts` holds the text of each
    LicenseRef it uses; `warnings` say what could not be read."""

    __slots__ = ()

    def to_json(self) -> dict:
        """Every field, null included (the contract's FACTS.json), but `files` only for kind
        `files`."""
        obj = {key: _to_json(value) for key, value in self._asdict().items()}
        if self.files is None:
            del obj["files"]
        return obj

    @classmethod
    def from_json(cls, obj, what: str) -> PackageFacts:
        check_keys(obj, what, ("kind", "name"), cls._fields[2:])
        if obj["kind"] not in PACKAGE_KINDS:
            raise ValueError(f"{what}: kind must be one of {list(PACKAGE_KINDS)}: {obj['kind']!r}")
        if not isinstance(obj["name"], str) or not obj["name"]:
            raise ValueError(f"{what}: name must be a non-empty string")
        texts = obj.get("license_texts", {})
        if not (isinstance(texts, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in texts.items())):
            raise ValueError(f"{what}: license_texts must map LicenseRef ids to texts")
        source = obj.get("source")
        if source is not None:
            check_keys(source, f"{what}.source", SourcePackage._fields)
            source = SourcePackage(_optional_str(source, "name", what),
                                   _optional_str(source, "version", what))
        files = obj.get("files")
        if (files is not None) != (obj["kind"] == "files"):
            raise ValueError(f"{what}: files belong to kind 'files', and only there")
        if files is not None:
            for item in _list(files, f"{what}.files"):
                if not (isinstance(item, list) and len(item) == 3
                        and all(isinstance(part, str) for part in item)):
                    raise ValueError(f"{what}: a file is [path, sha256, sha1]: {item!r}")
            files = tuple((image_path(path, f"{what}.files"), sha256, sha1)
                          for path, sha256, sha1 in files)
        strings = {key: _optional_str(obj, key, what)
                   for key in ("version", "architecture", "supplier", "homepage", "license",
                               "purl")}
        return cls(obj["kind"], obj["name"], source=source, license_texts=dict(texts),
                   warnings=_strings(obj.get("warnings", []), f"{what}.warnings"), files=files,
                   **strings)


class SbomSubject(_Spec, namedtuple("SbomSubject", "name tag seed digest", defaults=(None,))):
    """The image an SBOM describes: its repository name and tag, its manifest digest (None: the
    SBOM goes into the image, which cannot name its own digest, nor a tag derived from its
    content: then `tag` is None unless the image sets one) and the seed from which the
    documents' namespace and serial number derive."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomSubject:
        check_keys(obj, what, ("name", "seed"), ("tag", "digest"))
        tag = obj.get("tag")
        for key, value in (("name", obj["name"]), ("tag", tag or "-")):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{what}: {key} must be a non-empty string")
        digest = obj.get("digest")
        return cls(obj["name"], tag, _digest(obj["seed"], f"{what}.seed"),
                   None if digest is None else _digest(digest, f"{what}.digest"))


class SbomPlatform(_Spec, namedtuple("SbomPlatform", "os architecture variant",
                                     defaults=(None,))):
    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomPlatform:
        check_keys(obj, what, ("os", "architecture"), ("variant",))
        if not (isinstance(obj["os"], str) and isinstance(obj["architecture"], str)):
            raise ValueError(f"{what}: os and architecture must be strings")
        return cls(obj["os"], obj["architecture"], _optional_str(obj, "variant", what))


class SbomLayer(_Spec, namedtuple("SbomLayer", "diff_id comment", defaults=("",))):
    """One of the image's own layers: its diff_id and history comment."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomLayer:
        check_keys(obj, what, ("diff_id",), ("comment",))
        comment = obj.get("comment", "")
        if not isinstance(comment, str):
            raise ValueError(f"{what}: comment must be a string")
        return cls(_digest(obj["diff_id"], f"{what}.diff_id"), comment)


class SbomComponent(_Spec, namedtuple("SbomComponent", "node facts layer depends",
                                      defaults=(None, ()))):
    """A node of the image's closure: its key, its facts, the index of the image layer holding
    it (None: none of the image's own) and the keys of the nodes it depends on."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str, layers: int) -> SbomComponent:
        check_keys(obj, what, ("node", "facts"), ("layer", "depends"))
        if not isinstance(obj["node"], str) or not obj["node"]:
            raise ValueError(f"{what}: node must be a non-empty string")
        layer = obj.get("layer")
        if layer is not None and (type(layer) is not int or not 0 <= layer < layers):
            raise ValueError(f"{what}: layer must be an index into layers or null: {layer!r}")
        return cls(obj["node"], PackageFacts.from_json(obj["facts"], f"{what}.facts"), layer,
                   _strings(obj.get("depends", []), f"{what}.depends"))


class SbomBase(_Spec, namedtuple("SbomBase", "name digest layers documents", defaults=((), ()))):
    """A base image: its name, manifest digest, layer diff_ids (bottom first) and the SBOM
    documents (SPDX or CycloneDX JSON objects) attached to it, read tolerantly later."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str) -> SbomBase:
        check_keys(obj, what, ("name", "digest"), ("layers", "documents"))
        if not isinstance(obj["name"], str) or not obj["name"]:
            raise ValueError(f"{what}: name must be a non-empty string")
        layers = tuple(_digest(layer, f"{what}.layers")
                       for layer in _list(obj.get("layers", []), f"{what}.layers"))
        documents = _list(obj.get("documents", []), f"{what}.documents")
        if not all(isinstance(document, dict) for document in documents):
            raise ValueError(f"{what}: documents must be JSON objects")
        return cls(obj["name"], _digest(obj["digest"], f"{what}.digest"), layers,
                   tuple(documents))


class SbomSpec(
    _Spec,
    namedtuple("SbomSpec", "subject created platform layers components bases warnings",
               defaults=((), (), ())),
):
    """The `sbom` subcommand's input (strata.core.sbom.documents): the image, its `created`
    time (the documents' own, so that they are reproducible), its own layers, the components of
    its closure, its bases and the rules' own warnings."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj) -> SbomSpec:
        check_keys(obj, "sbom spec", ("subject", "created", "platform"),
                   ("layers", "components", "bases", "warnings"))
        created = obj["created"]
        if not (isinstance(created, str) and len(created) >= 20 and created[10] == "T"
                and created.endswith("Z")):
            raise ValueError(f"sbom spec: created must be an RFC 3339 UTC time such as "
                             f"1970-01-01T00:00:01Z: {created!r}")
        layers = tuple(SbomLayer.from_json(layer, f"layers[{i}]")
                       for i, layer in enumerate(_list(obj.get("layers", []), "layers")))
        components = tuple(
            SbomComponent.from_json(item, f"components[{i}]", len(layers))
            for i, item in enumerate(_list(obj.get("components", []), "components")))
        nodes = [component.node for component in components]
        if len(set(nodes)) != len(nodes):
            raise ValueError("sbom spec: two components have the same node")
        return cls(
            SbomSubject.from_json(obj["subject"], "subject"),
            created,
            SbomPlatform.from_json(obj["platform"], "platform"),
            layers,
            components,
            tuple(SbomBase.from_json(base, f"bases[{i}]")
                  for i, base in enumerate(_list(obj.get("bases", []), "bases"))),
            _strings(obj.get("warnings", []), "warnings"),
        )


class NixPathInfo(_Spec, namedtuple("NixPathInfo", "path nar_hash nar_size references deriver")):
    """What Nix knows of one valid store path (`nix path-info --json`): its NAR's sha256
    ("sha256:<hex>") and size, the store paths it references (sorted; itself among them when
    it refers to itself) and the derivation that built it (None: none, as for `toFile`)."""

    __slots__ = ()

    def to_json(self) -> dict:
        """Every field, `deriver` null included (closure.json's shape)."""
        return {**self._asdict(), "references": list(self.references)}

    @classmethod
    def from_json(cls, obj, what: str) -> NixPathInfo:
        check_keys(obj, what, cls._fields)
        size = obj["nar_size"]
        if type(size) is not int or size < 0:
            raise ValueError(f"{what}: nar_size must be a non-negative integer: {size!r}")
        references = _strings(obj["references"], f"{what}.references")
        if list(references) != sorted(set(references)):
            raise ValueError(f"{what}: references must be sorted and distinct")
        deriver = _optional_str(obj, "deriver", what)
        return cls(nix_store_path(obj["path"], what), _digest(obj["nar_hash"], f"{what}.nar_hash"),
                   size, tuple(nix_store_path(ref, f"{what}.references") for ref in references),
                   None if deriver is None else nix_store_path(deriver, f"{what}.deriver"))


class NixClosure(_Spec, namedtuple("NixClosure", "roots paths")):
    """The `nix-closure` subcommand's output (closure.json): the roots, as nix-build printed
    them (or as given), and every store path of their closure, sorted by path, each
    referencing only paths of the closure."""

    __slots__ = ()

    @classmethod
    def from_json(cls, obj, what: str = "closure") -> NixClosure:
        check_keys(obj, what, cls._fields)
        paths = tuple(NixPathInfo.from_json(item, f"{what}.paths[{index}]")
                      for index, item in enumerate(_list(obj["paths"], f"{what}.paths")))
        names = [info.path for info in paths]
        if names != sorted(set(names)):
            raise ValueError(f"{what}: paths must be sorted by path and distinct")
        held = set(names)
        for info in paths:
            missing = [ref for ref in info.references if ref not in held]
            if missing:
                raise ValueError(f"{what}: {info.path} references {missing[0]}, which the "
                                 f"closure does not hold")
        roots = tuple(nix_store_path(root, f"{what}.roots")
                      for root in _strings(obj["roots"], f"{what}.roots"))
        for root in roots:
            if root not in held:
                raise ValueError(f"{what}: root {root} is not among the closure's paths")
        return cls(roots, paths)
