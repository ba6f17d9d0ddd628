"""Image config, manifest and index JSON, and references (OCI and Docker v2s2)."""

import datetime
import enum
import hashlib
import json
import re

from strata.core.build.tarstream import check_mtime
from strata.core.oci import media_types
# The normalisation the platform matcher applies (arm64 `8` is `v8`, `aarch64` is `arm64`), so
# that what an image's config says is what an index's clients look for.
from strata.core.oci.platforms import _ARCH_ALIASES, _VARIANT_ALIASES

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

# The tag used when the spec's `tag` is null: a prefix of the config digest, so equal content
# gives an equal tag. 32 hex chars (128 bits) keep collisions out of reach.
CONTENT_TAG_LENGTH = 32



class Inheritance(enum.Enum):
    """How an image built on a base gets one runtime config key; the value says it for help."""

    REPLACED = (
        "the base's unless this image sets it; a value it sets replaces the base's whole (even "
        "`ExposedPorts` and `Volumes`, to which Dockerfile `EXPOSE` and `VOLUME` add)"
    )
    RESET_BY_ENTRYPOINT = (
        "the base's unless this image sets it or `Entrypoint` (a new Dockerfile `ENTRYPOINT` "
        "resets `CMD` too, as the base's arguments rarely suit another program)"
    )
    MERGED_ENV = (
        "merged: the base's variables first, in their order; a variable this image sets "
        "replaces the base's value in place; new ones follow in this image's order"
    )
    MERGED_BY_KEY = "merged, this image's value winning per key"


# The one table of how a base's runtime config is inherited (inherit_config), keyed by Docker's
# config keys, whether or not an `oci_image` field sets them: a base may carry any. The shell's
# help for `base` is generated from it. Any other key of a base's is dropped.
INHERITANCE = {
    "Env": Inheritance.MERGED_ENV,
    "Labels": Inheritance.MERGED_BY_KEY,
    "Cmd": Inheritance.RESET_BY_ENTRYPOINT,
    **{
        key: Inheritance.REPLACED
        for key in ("Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "StopSignal",
                    "Healthcheck", "Shell")
    },
}

_SPEC_CONFIG_KEYS = frozenset({"architecture", "os", "variant", "created", "config"})
# The default `created` matches the layers' default mtime (1): 0 reads as "unset" to some tools.
DEFAULT_CREATED = "1970-01-01T00:00:01Z"

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})\Z")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:Z|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,
)
# github.com/distribution/reference: path-component and domain grammar.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(r"{0}(?:/{0})*\Z".format(_PATH_COMPONENT))
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?\Z"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z", re.ASCII)
_MAX_REPOSITORY_LENGTH = 255
# Manifests, indexes and configs are read whole, so their size is bounded, as containers/image
# bounds it: a base's beyond this are refused, and Strata writes no config it would refuse.
MAX_JSON_SIZE = 4 << 20


def canonical_json(obj) -> bytes:
    """The one serialisation every digest is taken over: sorted keys, no spaces, ASCII only,
    identical across Python versions."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


class ConfigTooLarge(ValueError):
    """An image config over MAX_JSON_SIZE; `largest`: its largest keys and their sizes."""

    def __init__(self, message: str, largest: list):
        super().__init__(message)
        self.largest = largest


def config_bytes(config: dict) -> bytes:
    """An image config's bytes (`canonical_json`), at most MAX_JSON_SIZE: the error names the
    config's largest keys (those of its runtime `config` as `config.<key>`)."""
    data = canonical_json(config)
    if len(data) > MAX_JSON_SIZE:
        runtime = config.get("config") or {}
        sizes = {f"config.{k}": len(canonical_json(v)) for k, v in runtime.items()}
        sizes.update((k, len(canonical_json(v))) for k, v in config.items() if k != "config")
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
        raise ConfigTooLarge(
            f"the image config is {len(data)} bytes, more than the {MAX_JSON_SIZE} bytes Strata "
            f"(like containers/image) reads of a config; largest: "
            f"{', '.join(f'{key} {size} bytes' for key, size in largest)}",
            largest,
        )
    return data


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """The hex part of a `sha256:<hex>` digest (a path component in archives and layouts)."""
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if not match:
        raise ValueError(f"not a sha256 digest (sha256:<64 lowercase hex>): {digest!r}")
    return match.group(1)


def _rfc3339(text: str):
    """The datetime of an RFC 3339 time (Go's parser: upper-case T and Z), to whole seconds, or
    None."""
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    offset = datetime.timedelta()
    if match.group(8):
        hours, minutes = int(match.group(9)), int(match.group(10))
        if hours > 23 or minutes > 59:
            return None
        offset = (1 if match.group(8) == "+" else -1) * datetime.timedelta(hours=hours,
                                                                          minutes=minutes)
    try:
        zone = datetime.timezone(offset)
        return datetime.datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None


def resolve_created(created: str) -> str:
    """`created` must be RFC 3339 (Go's parser: upper-case T and Z) or "now", the one option
    that makes the image non-reproducible."""
    if created == "now":
        now = datetime.datetime.now(datetime.timezone.utc)
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if _rfc3339(created) is None:
        raise ValueError(
            "config.created must be an RFC 3339 time such as "
            f'"1970-01-01T00:00:01Z" or "now": {created!r}'
        )
    return created


def epoch_seconds(created: str) -> int:
    """Whole seconds since the epoch of a time `resolve_created` takes, as a layer's mtime: so
    within the range a tar header holds (1970 to 2242)."""
    seconds = int(_rfc3339(resolve_created(created)).timestamp())
    return check_mtime(seconds, f"the time {created!r}, as the layers' mtime,")


def platform_of(config: dict) -> dict:
    """The OCI platform of an image config, for its index descriptor."""
    return {k: config[k] for k in ("architecture", "os", "variant") if k in config}


# Go's GOARCH names (go/build/syslist.go), which OCI's `architecture` is.
GO_ARCHITECTURES = (
    "386", "amd64", "amd64p32", "arm", "arm64", "arm64be", "armbe", "loong64", "mips",
    "mips64", "mips64le", "mips64p32", "mips64p32le", "mipsle", "ppc", "ppc64", "ppc64le",
    "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
)
# Go's GOOS names (go/build/syslist.go), which OCI's `os` is.
GO_OPERATING_SYSTEMS = (
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
    "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
)
# The variants an index's clients tell apart (OCI image-index.md's table, containerd's
# platforms package): arm's and arm64's ISA versions and amd64's GOAMD64 levels. Other
# architectures have none.
VARIANTS = {
    "arm": (r"v[5-8]", "v5, v6, v7 or v8"),
    "arm64": (r"v8(\.[1-9])?|v9(\.[1-5])?", "v8, v8.1 to v8.9, v9 or v9.1 to v9.5"),
    "amd64": (r"v[1-4]", "v1, v2, v3 or v4"),
}


def validate_architecture(architecture: str) -> str:
    """A Go architecture name; a common alias (`aarch64`, `x86_64`) is refused with Go's."""
    if architecture in GO_ARCHITECTURES:
        return architecture
    alias = _ARCH_ALIASES.get(architecture)
    if alias:
        hint = f"Go calls it {alias[0]!r}" + (f" (variant {alias[1]!r})" if alias[1] else "")
    else:
        hint = f"expected one of {', '.join(GO_ARCHITECTURES)}"
    raise ValueError(f"unknown architecture {architecture!r}: {hint}")


def validate_os(os_name: str) -> str:
    if os_name not in GO_OPERATING_SYSTEMS:
        expected = ", ".join(GO_OPERATING_SYSTEMS)
        raise ValueError(f"unknown os {os_name!r}: expected one of {expected}")
    return os_name


# Runtime config values that name things (a variable, a path, a user, a signal): one token, no
# control character (a newline would end a line of whatever prints or parses them).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_USER = re.compile(r"[^:\s]+(:[^:\s]+)?\Z")  # user, uid, user:group, uid:gid...
# A signal as moby's ParseSignal reads it: a number, or a name with or without SIG.
_SIGNAL = re.compile(r"[1-9][0-9]{0,2}\Z|(SIG)?[A-Z][A-Z0-9]*([+-][0-9]+)?\Z", re.IGNORECASE)


def _without_control(value: str, what: str) -> str:
    if not isinstance(value, str) or _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} holds a control character (a newline, NUL, ...)")
    return value


def validate_env_name(name: str) -> str:
    """A variable name of `Env` (KEY=VALUE entries): non-empty, no `=`, no control character."""
    _without_control(name, "environment variable name")
    if not name or "=" in name:
        raise ValueError(f"environment variable name {name!r} must be non-empty and hold no `=` "
                         "(it separates name from value in Env)")
    return name


def validate_config_path(path: str) -> str:
    """A path of `WorkingDir` or `Volumes`: absolute, no control character."""
    _without_control(path, "path")
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} is not absolute")
    return path


def validate_user(user: str) -> str:
    """`User`: `user`, `uid`, `user:group` or `uid:gid`, without spaces or control characters."""
    _without_control(user, "user")
    if not _USER.match(user):
        raise ValueError(f"user {user!r} must be `user`, `uid`, `user:group` or `uid:gid`, "
                         "without spaces")
    return user


def validate_stop_signal(signal: str) -> str:
    """`StopSignal`: a signal name (`SIGTERM`, `TERM`, `SIGRTMIN+3`) or number, as Docker
    parses it."""
    _without_control(signal, "stop signal")
    if not _SIGNAL.match(signal):
        raise ValueError(f"stop signal {signal!r} must be a signal name such as `SIGTERM` or a "
                         "number such as `15`")
    return signal


def normal_variant(architecture: str, variant: str) -> str:
    """The variant as index clients normalise it (`8` -> `v8`), checked against `architecture`."""
    normal = _VARIANT_ALIASES.get(architecture, {}).get(variant, variant)
    if architecture not in VARIANTS:
        raise ValueError(
            f"architecture {architecture!r} has no variants; only {', '.join(VARIANTS)} have"
        )
    pattern, expected = VARIANTS[architecture]
    if not re.fullmatch(pattern, normal):
        raise ValueError(f"unknown variant {variant!r} of {architecture!r}: expected {expected}")
    return normal


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def _string_list(value, what: str) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings: {value!r}")
    return value


def _labels(value, what: str) -> dict:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{what} must be an object of strings: {value!r}")
    return value


def inherit_config(base_runtime_config: dict, own: dict) -> dict:
    """The runtime `config` of an image built on a base, from the base's and the image's own,
    key by key as INHERITANCE says. A key set to null counts as unset. Details:
    - Env: an own `KEY=VALUE` whose KEY the base has replaces that entry in place (its last one,
      as Docker's ReplaceOrAppendEnvValues does).
    - ExposedPorts and Volumes are replaced, so that an image can close a base's port.
    - Any other base key (OnBuild triggers, Docker's per-container Hostname, Image, Attach*...)
      describes how the base was built, not how to run it, and is dropped.
    - The image's own keys are kept whatever they are.
    """
    if not isinstance(base_runtime_config, dict) or not isinstance(own, dict):
        raise ValueError("inherit_config takes two config objects")
    base = {k: v for k, v in base_runtime_config.items() if v is not None}
    own = {k: v for k, v in own.items() if v is not None}
    result = dict(own)
    for key, rule in INHERITANCE.items():
        if key in own:
            if rule is Inheritance.MERGED_ENV:
                result[key] = _merge_env(base.get(key, []), own[key])
            elif rule is Inheritance.MERGED_BY_KEY:
                merged = _labels(base.get(key, {}), f"the base config's {key}")
                result[key] = {**merged, **_labels(own[key], f"config.{key}")}
        elif key in base and not (
            rule is Inheritance.RESET_BY_ENTRYPOINT and "Entrypoint" in own
        ):
            result[key] = base[key]
    return result


def _merge_env(base: list, own: list) -> list:
    env = list(_string_list(base, "the base config's Env"))
    where = {_env_key(entry): i for i, entry in enumerate(env)}
    for entry in _string_list(own, "config.Env"):
        if "=" not in entry:
            raise ValueError(f"config.Env entries must be KEY=VALUE: {entry!r}")
        key = _env_key(entry)
        if key in where:
            env[where[key]] = entry
        else:
            where[key] = len(env)
            env.append(entry)
    return env


def platform_conflicts(spec_config: dict, base: dict) -> list:
    """(key, the spec's value, the base's) of each platform key both set differently: an image
    of another platform than its base's would not run the base's binaries."""
    return [
        (key, spec_config[key], base[key])
        for key in ("architecture", "os", "variant")
        if spec_config.get(key) is not None and base.get(key) is not None
        and spec_config[key] != base[key]
    ]


def _inherit_platform(spec_config: dict, base: dict) -> dict:
    """The spec's platform keys, defaulting to the base's; a different one is an error."""
    conflicts = platform_conflicts(spec_config, base)
    if conflicts:
        key, mine, theirs = conflicts[0]
        raise ValueError(f"config.{key} is {mine!r} but the base image's is {theirs!r}")
    platform = dict(spec_config)
    for key in ("architecture", "os", "variant"):
        if spec_config.get(key) is None and base.get(key) is not None:
            platform[key] = base[key]
    return platform


def base_parts(base: dict):
    """The base config's runtime config, diff_ids and history, checked."""
    if not isinstance(base, dict):
        raise ValueError("the base config must be an object")
    runtime = {} if base.get("config") is None else base["config"]
    rootfs = base.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    history = [] if base.get("history") is None else base["history"]
    if not isinstance(runtime, dict):
        raise ValueError("the base config's config must be an object")
    if not isinstance(diff_ids, list):
        raise ValueError("the base config has no rootfs.diff_ids list")
    for diff_id in diff_ids:
        digest_hex(diff_id)
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError("the base config's history must be a list of objects")
    return runtime, diff_ids, history


def make_config(spec_config: dict, layers: list, history_comments: list, base: dict = None) -> dict:
    """The image config. `config` is always present, even empty: Kubernetes rejects images
    without it (nixpkgs dockerTools/nixery learned this).

    With `base` (a base image's config), `layers` and `history_comments` are the image's own:
    the runtime config is inherited (inherit_config), diff_ids and history are the base's
    followed by the image's, and the platform must be the base's."""
    if not isinstance(spec_config, dict):
        raise ValueError("config must be an object")
    unknown = sorted(set(spec_config) - _SPEC_CONFIG_KEYS)
    if unknown:
        raise ValueError(f"config has unknown keys {unknown}; allowed: {sorted(_SPEC_CONFIG_KEYS)}")
    if len(history_comments) != len(layers):
        raise ValueError(f"{len(layers)} layers but {len(history_comments)} history comments")
    for key in ("architecture", "os", "variant"):
        value = spec_config.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"config.{key} must be a non-empty string: {value!r}")
    runtime = spec_config.get("config")
    runtime = {} if runtime is None else runtime
    if not isinstance(runtime, dict):
        raise ValueError(f"config.config must be an object: {runtime!r}")
    created = resolve_created(spec_config.get("created", DEFAULT_CREATED))
    diff_ids, history = [], []
    if base is not None:
        base_runtime, diff_ids, history = base_parts(base)
        runtime = inherit_config(base_runtime, runtime)
        spec_config = _inherit_platform(spec_config, base)
    config = {
        "architecture": spec_config.get("architecture", "amd64"),
        "os": spec_config.get("os", "linux"),
        "config": runtime,
        "created": created,
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids + [layer["diff_id"] for layer in layers],
        },
        "history": history + [
            {"created": created, "created_by": "strata", "comment": comment}
            for comment in history_comments
        ],
    }
    if spec_config.get("variant") is not None:
        config["variant"] = spec_config["variant"]
    return config


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


def make_manifest(config_bytes: bytes, layers: list, oci: bool) -> dict:
    """An image manifest over the config and the layer blobs as produced (layer.json dicts)."""
    return {
        "schemaVersion": 2,
        "mediaType": media_types.manifest_of(oci),
        "config": _descriptor(
            media_types.config_of(oci), config_bytes
        ),
        "layers": [
            {
                "mediaType": media_types.layer_media_type(layer["compression"], oci),
                "digest": layer["digest"],
                "size": layer["blob_size"],
            }
            for layer in layers
        ],
    }


def make_index(manifest_bytes: bytes, ref_name: str, platform: dict = None) -> dict:
    """An OCI layout's index.json naming one image manifest."""
    descriptor = _descriptor(media_types.OCI_MANIFEST, manifest_bytes)
    if platform:
        descriptor["platform"] = platform
    return layout_index(descriptor, ref_name)


def layout_index(descriptor: dict, ref_name: str) -> dict:
    """An OCI layout's index.json naming one manifest or image index; the ref.name annotation
    is what `oci:DIR:tag` finds."""
    named = dict(descriptor, annotations={REF_NAME_ANNOTATION: ref_name})
    return {"schemaVersion": 2, "mediaType": media_types.OCI_INDEX, "manifests": [named]}


def make_image_index(manifests: list) -> dict:
    """An image index (a multi-platform image) over manifest descriptors, each with its
    `platform`, in the order given."""
    return {"schemaVersion": 2, "mediaType": media_types.OCI_INDEX, "manifests": list(manifests)}


def index_descriptor(index_bytes: bytes) -> dict:
    return _descriptor(media_types.OCI_INDEX, index_bytes)


def content_tag(config_digest: str) -> str:
    return digest_hex(config_digest)[:CONTENT_TAG_LENGTH]


def validate_repository(repository: str) -> str:
    """A docker repository: optional registry host ("host[:port]/", recognised like Docker
    does: it has a "." or ":" or is "localhost"), then lowercase path components."""
    if not isinstance(repository, str) or not repository:
        raise ValueError(f"repository must be a non-empty string: {repository!r}")
    if len(repository) > _MAX_REPOSITORY_LENGTH:
        raise ValueError(
            f"repository is longer than {_MAX_REPOSITORY_LENGTH} characters: {repository!r}"
        )
    host, sep, path = repository.partition("/")
    if not (sep and ("." in host or ":" in host or host == "localhost")):
        host, path = "", repository
    if (host and not _DOMAIN.match(host)) or not _PATH.match(path):
        raise ValueError(
            f"invalid repository {repository!r}: expected lowercase components of [a-z0-9] "
            "separated by '.', '_', '__' or '-', joined by '/' (optionally after 'host[:port]/')"
        )
    return repository


def validate_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise ValueError(
            f"invalid tag {tag!r}: expected 1-128 characters of [A-Za-z0-9_.-], "
            "not starting with '.' or '-'"
        )
    return tag


def repo_tag(repository: str, tag: str) -> str:
    return f"{validate_repository(repository)}:{validate_tag(tag)}"
