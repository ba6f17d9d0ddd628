"""Strata's targets: `oci_image` and `oci_layer` (what an image holds and how it is layered),
`oci_image_archive` and `oci_pull` (base images), `debian_packages` (locked Debian packages
as store nodes), `python_venv` (a Python app as an installed virtualenv) and `nix_closure`
(Nix store paths as store nodes).

The `oci_image` fields are grouped by concern: what goes into the image (dependencies,
customisation), how it is layered, what the runtime config says, and how the result is written.
"""

from __future__ import annotations

import re
from enum import Enum
from fractions import Fraction
from functools import partial
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Tuple, Type

from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    DictStringToStringField,
    Field,
    IntField,
    InvalidFieldException,
    SingleSourceField,
    SpecialCasedDependencies,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from strata.core.build.commands import OUTPUT_TAIL
from strata.core.build.compression import SUFFIXES
from strata.core.build.tarstream import check_id, check_owner_name
from strata.core.debian.architectures import (
    ARCHITECTURES as DEBIAN_ARCHITECTURES,
    check_architecture,
)
from strata.core.oci.image import (
    INHERITANCE,
    ConfigTooLarge,
    Inheritance,
    config_bytes,
    epoch_seconds,
    normal_variant,
    validate_architecture,
    validate_config_path,
    validate_env_name,
    validate_os,
    validate_repository,
    validate_stop_signal,
    validate_tag,
    validate_user,
)
from strata.core.oci.formats import FORMATS
from strata.core.spec import BYTECODE_MODES, Permission, absolute_image_path, nix_store_path


class OciImageDependenciesField(Dependencies):
    help = help_text(
        """
        What the image contains: its dependency closure, projected onto store nodes.

        Each node becomes layer content at a fixed destination:

        - `file`/`files` targets: each file at `/<path from the build root>`.
        - `resource`/`resources` targets: each file at `/<path with its source root stripped>`,
          where Python's import machinery would find it.
        - A `file` or `resource` whose `source` is an `http_source` is downloaded (and checked
          against its `sha256` and `len`) by Pants, then placed as if it were on disk under its
          `filename`.
        - Any target that can be packaged (`pex_binary`, `archive`, ...): its built package at
          `/<its output_path>`, i.e. where `package` would put it under `dist/`. A package is a
          leaf: everything it needs is inside it. A `pex_binary` with `layout="packed"` is split
          into one node per third-party wheel (`.deps/*.whl`), one for `.bootstrap/` and one for
          the rest, so that shared wheels get shared layers.
        - `python_venv` targets: an installed virtualenv, one node per third-party
          distribution, one for the first-party sources and one for the venv's skeleton (see
          `pants help python_venv`). Like a package, a venv holds its closure.
        - `oci_layer` targets: one node holding everything in their closure (always one layer).
        - Other targets (`python_source`, `python_requirement`, `target`, ...) add no content of
          their own; the walk continues through them to the targets they depend on.

        A node references the nodes its target depends on; popular nodes sink into lower layers.
        """
    )


class OciLayerDependenciesField(Dependencies):
    help = help_text(
        """
        Targets whose content always shares one layer (like nix2container's `buildLayer`). Their
        whole closure is gathered into this layer, with the destinations described in
        `pants help oci_image`, except for nested `oci_layer` targets, which stay separate layers.
        """
    )


class _CoreChecked:
    """A field checked, when set, by the core's rule for it (`core_check`: one place for each
    rule), so that a bad value fails as the BUILD file is read, naming the target and field: a
    scalar's value, each item of a sequence, each key of a dict. An empty runtime config string
    is unset (`RuntimeConfigField.config_value`), so it is not checked."""

    core_check: ClassVar[Callable[[Any], Any]]

    @classmethod
    def compute_value(cls, raw_value, address: Address):
        value = super().compute_value(raw_value, address)  # type: ignore[misc]
        if value is None or (value == "" and issubclass(cls, RuntimeConfigField)):
            return value
        for item in value if isinstance(value, (tuple, FrozenDict)) else (value,):
            _check(cls, address, cls.core_check, item)
        return value


class _CheckedStringField(_CoreChecked, StringField):
    pass


class _PositiveIntField(IntField):
    """An int field of at least 1, such as a count or a number of seconds."""

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> int:
        value = super().compute_value(raw_value, address)
        if value is not None and value < 1:
            raise InvalidFieldException(
                f"The {repr(cls.alias)} field in target {address} must be at least 1, but was "
                f"{value}."
            )
        return value


class OciRepositoryField(_CheckedStringField):
    alias = "repository"
    core_check = staticmethod(validate_repository)
    help = help_text(
        """
        The image repository, e.g. `acme/app`: lowercase components of `[a-z0-9]` separated by
        `.`, `_`, `__` or `-`, joined by `/`. Defaults to the target name, lowercased.
        """
    )

    def value_or_default(self, address: Address) -> str:
        value = self.value or address.target_name.lower()
        _check(type(self), address, validate_repository, value)
        return value


class OciTagField(_CheckedStringField):
    alias = "tag"
    core_check = staticmethod(validate_tag)
    help = help_text(
        """
        The image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`). Defaults to a tag derived from the
        image's content (its config digest), so the same content always gets the same tag.
        """
    )


class OciMaxLayersField(_PositiveIntField):
    alias = "max_layers"
    default = 100
    help = help_text(
        """
        The most layers the image may have, counting base-image layers and the customisation layer
        on top. The most popular nodes get a layer each; when there are more nodes than layers,
        the least popular share the last one. A `docker-archive` (or an `oci_image_bundle`, or
        `pants run` through `docker load`) of more than 125 layers is an error: `docker load`
        fails on it with "max depth exceeded".

        When only one layer is left for the image's own content (`max_layers=1`, or one more
        than its base's layers), everything goes into that one layer, the customisation
        content included, as nixpkgs' `buildImage` does: the smallest image, but any change
        rebuilds and re-ships all of it.
        """
    )


class OciCreatedField(_CheckedStringField):
    alias = "created"
    default = "1970-01-01T00:00:01Z"
    core_check = staticmethod(epoch_seconds)  # the default `mtime`: a tar header must hold it
    help = help_text(
        """
        The image's creation time in the config and history (RFC 3339, from 1970 to
        2242-03-16T12:56:31Z, what a tar header's mtime holds: it is the default `mtime`). The
        default, one second past the epoch, keeps the image reproducible; `"now"` trades that
        for a meaningful date in `docker images`.
        """
    )


class OciMtimeField(_CheckedStringField):
    alias = "mtime"
    core_check = staticmethod(epoch_seconds)
    help = help_text(
        """
        The modification time of every file in the layers (RFC 3339 or `"now"`, from 1970 to
        2242-03-16T12:56:31Z). Defaults to `created`. Kept separate so that `created = "now"`
        can tell registries the real date while the layers stay bit-for-bit reproducible and
        shared.
        """
    )


class _OwnerIdField(_CoreChecked, IntField):
    default = 0


class OciUidField(_OwnerIdField):
    alias = "uid"
    core_check = staticmethod(partial(check_id, what="uid"))
    help = "The numeric owner of every file in the layers (0 to 2097151, what a tar header holds)."


class OciGidField(_OwnerIdField):
    alias = "gid"
    core_check = staticmethod(partial(check_id, what="gid"))
    help = "The numeric group of every file in the layers (0 to 2097151, what a tar header holds)."


class _OwnerNameField(_CheckedStringField):
    default = "root"


class OciUnameField(_OwnerNameField):
    alias = "uname"
    core_check = staticmethod(partial(check_owner_name, what="uname"))
    help = "The owner name recorded for every file in the layers (1 to 31 ASCII characters)."


class OciGnameField(_OwnerNameField):
    alias = "gname"
    core_check = staticmethod(partial(check_owner_name, what="gname"))
    help = "The group name recorded for every file in the layers (1 to 31 ASCII characters)."


class OciArchitectureField(_CheckedStringField):
    alias = "architecture"
    core_check = staticmethod(validate_architecture)
    default = "amd64"
    help = help_text(
        """
        The image's CPU architecture (config `architecture`), as Go's GOARCH names it:
        `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`, `mips64le`, `loong64`,
        ... (`aarch64` is `arm64`, `x86_64` is `amd64`). With a `base`, it must be the base's.
        """
    )


class OciOsField(_CheckedStringField):
    alias = "os"
    default = "linux"
    core_check = staticmethod(validate_os)
    help = "The image's operating system (config `os`), as Go's GOOS names it (`linux`, ...)."


class OciVariantField(StringField):
    alias = "variant"
    help = help_text(
        """
        The CPU variant (config `variant`), which an `oci_image_index` lists with the
        architecture so that clients pick the image their CPU runs: `v5` to `v8` for `arm`
        (`linux/arm/v7` is 32-bit ARMv7), `v8`, `v8.1`..., `v9`... for `arm64`, `v1` to `v4`
        for `amd64` (GOAMD64 levels). Normalised as containerd does (`7` is `v7`). Unset by
        default, and then absent from the config: clients read `arm64` as `arm64/v8`.
        """
    )


def image_platform(architecture: str, os: str, variant: Optional[str]) -> Dict[str, str]:
    """An `oci_image`'s config platform keys: `variant` only when set, normalised."""
    platform = {"architecture": architecture, "os": os}
    if variant is not None:
        platform["variant"] = normal_variant(architecture, variant)
    return platform


class RuntimeConfigField:
    """A field that sets one key of the image's runtime config (the config's `config`), looped
    over like the docker backend's build options. How a base's value for the key is inherited
    is the core's `INHERITANCE[config_key]`: a base may carry keys no field sets."""

    config_key: ClassVar[str]
    value: Any

    def config_value(self) -> Any:
        """The key's JSON value, or None to leave it unset (so that a base's is inherited)."""
        return self.value or None


class _CommandField(RuntimeConfigField, StringSequenceField):
    def config_value(self) -> Optional[List[str]]:
        # An empty list is set: it clears the base's command.
        return None if self.value is None else list(self.value)


class OciEntrypointField(_CommandField):
    alias = "entrypoint"
    config_key = "Entrypoint"
    help = "The command the container runs (config `Entrypoint`), e.g. `['/app/bin.pex']`."


class OciCmdField(_CommandField):
    alias = "cmd"
    config_key = "Cmd"
    help = "Default arguments for the entrypoint, or the command when there is none (`Cmd`)."


class OciEnvField(RuntimeConfigField, _CoreChecked, DictStringToStringField):
    alias = "env"
    core_check = staticmethod(validate_env_name)
    config_key = "Env"
    help = help_text(
        """
        Environment variables for the container (`Env`), written in key order. Names are
        non-empty and contain no `=` (it separates name from value in `Env`) nor control
        characters.
        """
    )

    def config_value(self) -> Optional[List[str]]:
        return [f"{k}={v}" for k, v in sorted(self.value.items())] if self.value else None


class OciWorkdirField(RuntimeConfigField, _CheckedStringField):
    alias = "workdir"
    config_key = "WorkingDir"
    core_check = staticmethod(validate_config_path)
    help = "The container's working directory (`WorkingDir`); absolute."


class OciUserField(RuntimeConfigField, _CheckedStringField):
    alias = "user"
    config_key = "User"
    core_check = staticmethod(validate_user)
    help = help_text(
        """
        The user (and group) the container runs as (`User`): `user`, `uid`, `user:group` or
        `uid:gid`, e.g. `nobody` or `65534:65534`.
        """
    )


class OciExposedPortsField(RuntimeConfigField, StringSequenceField):
    alias = "exposed_ports"
    config_key = "ExposedPorts"
    help = help_text(
        """
        Ports the container listens on (`ExposedPorts`), e.g. `['8080/tcp', '53/udp']`: a port
        from 1 to 65535, optionally with the protocol `tcp` (the default), `udp` or `sctp`.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for port in value or ():
            match = re.fullmatch(r"(\d{1,5})(/(tcp|udp|sctp))?", port)
            if not match or not 1 <= int(match.group(1)) <= 65535:
                raise InvalidFieldException(
                    f"The {repr(cls.alias)} field in target {address} has an invalid port "
                    f"{port!r}: expected `PORT` or `PORT/tcp|udp|sctp`, PORT from 1 to 65535."
                )
        return value

    def config_value(self) -> Optional[Dict[str, dict]]:
        if not self.value:
            return None
        return {port if "/" in port else f"{port}/tcp": {} for port in self.value}


class OciLabelsField(RuntimeConfigField, DictStringToStringField):
    alias = "labels"
    config_key = "Labels"
    help = "Image labels (`Labels`), e.g. `{'org.opencontainers.image.source': '...'}`."

    def config_value(self) -> Optional[Dict[str, str]]:
        return dict(self.value) if self.value else None


class OciVolumesField(RuntimeConfigField, _CoreChecked, StringSequenceField):
    alias = "volumes"
    core_check = staticmethod(validate_config_path)
    config_key = "Volumes"
    help = "Paths the container expects to be volumes (`Volumes`); absolute."

    def config_value(self) -> Optional[Dict[str, dict]]:
        return {volume: {} for volume in self.value} if self.value else None


class OciStopSignalField(RuntimeConfigField, _CheckedStringField):
    alias = "stop_signal"
    config_key = "StopSignal"
    core_check = staticmethod(validate_stop_signal)
    help = help_text(
        """
        The signal that stops the container (`StopSignal`): a name such as `SIGTERM` (or
        `TERM`, `SIGRTMIN+3`) or a number such as `15`.
        """
    )


class OciHealthcheckField(RuntimeConfigField, Field):
    alias = "healthcheck"
    config_key = "Healthcheck"
    default = None
    value: Optional[FrozenDict[str, Any]]
    help = help_text(
        """
        How the container's health is checked (Docker's `Healthcheck`, as a Dockerfile's
        `HEALTHCHECK` writes it), e.g.
        `{'test': ['CMD', '/app/bin.pex', '--check'], 'interval': '30s', 'retries': 3}`.

        `test` is `['CMD', program, arg...]`, `['CMD-SHELL', command]` (run by the image's
        `/bin/sh -c`) or `['NONE']` (no check, not even a base's; then no other key).
        `interval`, `timeout` and `start_period` are durations as Go writes them (`1m30s`,
        `500ms`; units `h`, `m`, `s`, `ms`, `us`, `ns`) of at least 1ms, stored in nanoseconds;
        `retries` is at least 1. Docker's defaults apply to those left out (30s, 30s, 0s, 3).
        """
    )

    _DURATION_KEYS = {"interval": "Interval", "timeout": "Timeout", "start_period": "StartPeriod"}
    _NANOSECONDS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3,
                    "µs": 10**3, "ns": 1}  # fmt: skip
    _DURATION_PART = r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)"

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, Any]], address: Address
    ) -> Optional[FrozenDict[str, Any]]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None

        invalid = partial(_field_error, cls, address)
        if not isinstance(value, dict):
            raise invalid(f"must be a dict such as {{'test': ['CMD', '/bin/check']}}: {value!r}.")
        unknown = sorted(set(value) - {"test", "retries", *cls._DURATION_KEYS})
        if unknown:
            raise invalid(
                f"has unknown keys {unknown}: expected `test`, `interval`, `timeout`, "
                "`start_period` and `retries`."
            )
        test = value.get("test")
        if not (
            isinstance(test, (list, tuple))
            and all(isinstance(word, str) for word in test)
            and (
                (len(test) >= 2 and test[0] == "CMD")
                or (len(test) == 2 and test[0] == "CMD-SHELL")
                or list(test) == ["NONE"]
            )
        ):
            raise invalid(
                f"has an invalid `test` {test!r}: expected `['CMD', program, arg...]`, "
                "`['CMD-SHELL', command]` or `['NONE']`."
            )
        if test[0] == "NONE" and len(value) > 1:
            raise invalid("turns the check off (`['NONE']`), so it takes no other key.")
        healthcheck: Dict[str, Any] = {"Test": tuple(test)}
        for key, config_key in cls._DURATION_KEYS.items():
            duration = value.get(key)
            if duration is None:
                continue
            parts = re.findall(cls._DURATION_PART, duration) if isinstance(duration, str) else []
            if not duration or "".join(n + u for n, u in parts) != duration:
                raise invalid(
                    f"has an invalid `{key}` {duration!r}: expected a duration such as `30s`, "
                    "`1m30s` or `500ms`."
                )
            nanoseconds = int(sum(Fraction(n) * cls._NANOSECONDS[u] for n, u in parts))
            if nanoseconds < 10**6:
                raise invalid(f"has `{key}` {duration!r}: it must be at least 1ms.")
            healthcheck[config_key] = nanoseconds
        retries = value.get("retries")
        if retries is not None:
            if not isinstance(retries, int) or isinstance(retries, bool) or retries < 1:
                raise invalid(f"has an invalid `retries` {retries!r}: expected an integer >= 1.")
            healthcheck["Retries"] = retries
        return FrozenDict(healthcheck)

    def config_value(self) -> Optional[Dict[str, Any]]:
        return None if self.value is None else {**self.value, "Test": list(self.value["Test"])}


# The image's runtime config: `oci_image` has these fields, `runtime_config` writes them, and the
# help of `base` says how each key is inherited.
RUNTIME_CONFIG_FIELDS: Tuple[Type[RuntimeConfigField], ...] = (
    OciEntrypointField,
    OciCmdField,
    OciEnvField,
    OciWorkdirField,
    OciUserField,
    OciExposedPortsField,
    OciLabelsField,
    OciVolumesField,
    OciStopSignalField,
    OciHealthcheckField,
)


def runtime_config(target: Target) -> dict:
    """The image's own runtime config: the keys its RUNTIME_CONFIG_FIELDS set (a FieldSet holds
    fields one by one, so the list is looped over on the target, as the docker backend's
    `get_build_options` does)."""
    values = {field.config_key: target[field].config_value() for field in RUNTIME_CONFIG_FIELDS}
    return {key: value for key, value in values.items() if value is not None}


def _inherited_config_help() -> str:
    """The inheritance paragraph of `base`'s help, from the core's table and the fields."""
    aliases = {field.config_key: field.alias for field in RUNTIME_CONFIG_FIELDS}

    def key(name: str) -> str:
        return f"`{name}` (`{aliases[name]}`)" if name in aliases else f"`{name}`"

    items = [
        f"* {', '.join(key(name) for name, r in INHERITANCE.items() if r is rule)}: {rule.value}."
        for rule in Inheritance
    ]
    return "\n".join(
        [
            "Its runtime config is inherited key by key (with the field that sets each key):",
            *items,
            "",
            "Other keys of the base's (`OnBuild`, `Hostname`, ...) describe how it was built and "
            "are dropped. The architecture and OS must match the base's.",
        ]
    )


# The core's output formats and layer compressions, as enums: OutputFormat.OCI_ARCHIVE is
# "oci-archive". A format or compression the core adds is a choice here with no edit.
OutputFormat = Enum("OutputFormat", {name.upper().replace("-", "_"): name for name in FORMATS})
Compression = Enum("Compression", {name.upper(): name for name in SUFFIXES})


class OciOutputFormatField(StringField):
    alias = "output_format"
    default = OutputFormat.DOCKER_ARCHIVE.value
    valid_choices = OutputFormat
    help = help_text(
        """
        What `package` writes: `docker-archive` (a tarball for `podman load`/`docker load`,
        `dist/<path>/<name>.tar`), `oci` (an OCI image layout directory, `dist/<path>/<name>`),
        `oci-archive` (that layout as a tarball, `dist/<path>/<name>.tar`) or `rootfs` (no image
        but its filesystem, as dockerTools' `exportImage` writes it: one tar,
        `dist/<path>/<name>.tar`, of the base's layers and the image's own merged, files deleted
        by a layer's whiteouts left out, each entry as the layer it comes from has it).
        `pants run` and `pants publish` are unaffected: they load or push the image itself.
        """
    )


class OciCompressionField(StringField):
    alias = "compression"
    default = Compression.NONE.value
    valid_choices = Compression
    help = help_text(
        """
        How layer blobs are compressed in `oci` and `oci-archive` output: `none`, `gzip` or
        `zstd`, always deterministically (no names or timestamps in headers). In
        `docker-archive` output the image's own layers are always uncompressed tars; a base
        image's layers go in as they are when uncompressed or gzip (`docker load`, `podman load`
        and skopeo read those), and decompressed (with the `zstd` binary) when zstd, which
        Docker cannot read.
        """
    )


class OciSymlinksField(DictStringToStringField):
    alias = "symlinks"
    help = help_text(
        """
        Symlinks the image adds in its customisation layer: `{'/bin/sh': '/bin/busybox'}`
        (absolute link path to target). The customisation layer is the top layer, holding what
        the image target itself adds. A symlink may not replace what a dependency places at its
        path, or at a path below it: that is an error naming the path and the dependency.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, str]], address: Address
    ) -> Optional[FrozenDict[str, str]]:
        value = super().compute_value(raw_value, address)
        for path in value or {}:
            _check_image_path(cls, address, path)
        return value


class OciDirectoriesField(DictStringToStringField):
    alias = "directories"
    help = help_text(
        """
        Empty directories the image adds in its customisation layer, with octal modes:
        `{'/tmp': '1777', '/var/empty': '0755'}`. A directory a dependency also has gets this
        mode; one where a dependency places a file or symlink is an error.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, str]], address: Address
    ) -> Optional[FrozenDict[str, str]]:
        value = super().compute_value(raw_value, address)
        for path, mode in (value or {}).items():
            _check_image_path(cls, address, path)
            if not re.fullmatch(r"[0-7]{3,4}", mode):
                raise InvalidFieldException(
                    f"The {repr(cls.alias)} field in target {address} has an invalid mode "
                    f"{mode!r} for {path!r}: expected 3 or 4 octal digits such as '1777'."
                )
        return value


class OciFakeNssField(BoolField):
    alias = "fake_nss"
    default = False
    help = help_text(
        """
        Add `/etc/passwd` and `/etc/group` with root and nobody (65534) and an
        `/etc/nsswitch.conf`, so that `user="nobody"` and name lookups work without base-passwd.
        """
    )


# Where `embed_sbom` puts an image's SBOM documents.
EMBEDDED_SBOM_DIR = "/usr/share/sbom"


class OciSbomField(BoolField):
    alias = "sbom"
    default = True
    help = help_text(
        """
        Write the image's software bill of materials beside it, as SPDX 2.3 JSON
        (`<output>.spdx.json`) and CycloneDX 1.5 JSON (`<output>.cdx.json`), and attach both to
        the manifest `pants publish` pushes, as OCI 1.1 referrers (artifact manifests whose
        `subject` is the image; on a registry without the referrers API, under the
        `sha256-<hex>` tag of the referrers tag schema).

        The SBOM comes from the closure Strata resolved, not from scanning the image: each
        Debian package (name, version, architecture, source package, licence from a
        machine-readable `copyright` file, `pkg:deb` purl), each Python distribution (name,
        version, licence from its metadata, `pkg:pypi` purl), each first-party target (its
        address and every file's checksums), the base image (`pkg:oci` purl, and the packages
        of the SBOM attached to it in its registry), and the layer that holds each. The same
        inputs give the same bytes: its times are the image's `created`, its namespace and
        serial number derive from the image's digest.
        """
    )


class OciEmbedSbomField(BoolField):
    alias = "embed_sbom"
    default = False
    help = help_text(
        f"""
        Also put the SBOM in the image, as `{EMBEDDED_SBOM_DIR}/image.spdx.json` and
        `{EMBEDDED_SBOM_DIR}/image.cdx.json`, in a layer of its own on top (it takes one of
        `max_layers`). That SBOM describes the layers below it; since it cannot name the digest
        of the image that holds it, its namespace and serial number derive from those layers'
        diff_ids.
        """
    )


class OciCaCertificatesField(BoolField):
    alias = "ca_certificates"
    default = False
    help = help_text(
        """
        Add `/etc/ssl/certs/ca-certificates.crt`, generated at build time from the certificates
        of the `ca-certificates` Debian package, which must be in the image's `debian_packages`
        (its postinst, which would write the bundle, is never run).
        """
    )


class OciIncludeNixDbField(BoolField):
    alias = "include_nix_db"
    default = False
    help = help_text(
        """
        Register the image's Nix store paths (those of its `nix_closure` dependencies) in a
        Nix database at `/nix/var/nix/db`, as dockerTools' `includeNixDB` does, so that Nix in
        a container knows them: `nix-store --verify --check-contents` passes there, and
        `nix-store -q --references` answers. Each top-level path of each `nix_closure` also
        gets a GC root, `/nix/var/nix/gcroots/docker/<name>`. The database is in the
        customisation layer; its registration times are the image's `mtime`, so the same
        closure gives the same bytes.
        """
    )


class OciPermissionsField(Field):
    alias = "permissions"
    default = None
    value: Optional[Tuple[Permission, ...]]
    help = help_text(
        """
        Modes and owners set on this target's layer as it is written (no command runs): on an
        `oci_image`, its customisation layer (`directories`, `symlinks`, `fake_nss`, the CA
        bundle, the merged-/usr symlinks, and what its build-time commands leave); on an
        `oci_layer`, that layer's content, which then always gets a layer of its own. E.g.

            permissions={
                "/var/lib/app": {"mode": "2775", "uid": 1000, "gid": 1000},
                "/var/lib/app/**": {"uid": 1000, "gid": 1000, "uname": "app"},
            }

        Each key is an absolute image path or glob: `*` and `?` match within one path
        component, `**` (a whole component) any number of components, but at the end at least
        one (`/var/lib/app/**` is everything below `/var/lib/app`, not the directory itself).
        Each value sets any of `mode` (3 or 4 octal digits as a string, such as `"0755"` or
        `"4755"`: setuid, setgid and sticky allowed; an integer is refused, since `755` is not
        `0o755`), `uid` and `gid` (0 to 2097151, what a tar header holds), `uname` and `gname`
        (up to 31 ASCII characters). A `uid` without a `uname` leaves the name empty (readers
        show the number), and likewise `gid` and `gname`; a name alone keeps the id. Symlinks
        take the owner but keep mode 0777. The rules apply in order, so a later one wins; a
        rule that matches nothing in the layer is an error.
        """
    )

    _KEYS = ("mode", "uid", "gid", "uname", "gname")

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, Any]], address: Address
    ) -> Optional[Tuple[Permission, ...]]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None

        invalid = partial(_field_error, cls, address)
        if not isinstance(value, dict):
            raise invalid(
                f"must be a dict of image paths to what they get, such as "
                f"{{'/var/lib/app': {{'mode': '0755', 'uid': 1000}}}}: {value!r}."
            )
        rules = []
        for path, attributes in value.items():
            if not isinstance(attributes, dict):
                raise invalid(f"maps {path!r} to {attributes!r}: expected a dict of {cls._KEYS}.")
            unknown = sorted(set(attributes) - set(cls._KEYS))
            if unknown:
                raise invalid(f"has unknown keys {unknown} for {path!r}: expected {cls._KEYS}.")
            rule = {"pattern": path, **attributes}
            mode = attributes.get("mode")
            if mode is not None:
                if not (isinstance(mode, str) and re.fullmatch(r"[0-7]{3,4}", mode)):
                    raise invalid(
                        f"has an invalid mode {mode!r} for {path!r}: expected 3 or 4 octal "
                        "digits as a string, such as '0755' or '2775'."
                    )
                rule["mode"] = int(mode, 8)
            try:
                absolute_image_path(path, "permissions")
                rules.append(Permission.from_json(rule, f"{path!r}"))
            except ValueError as e:
                raise invalid(f"is invalid: {e}") from e
        return tuple(rules)


_SANDBOX_HELP = """
    The script runs as `sh -eu` (a failing command fails the build) in a directory holding
    the image's customisation layer (its `symlinks`, `directories`, `fake_nss` and
    `ca_certificates` files, the merged-/usr links; not its dependencies' files), in a
    bubblewrap sandbox: its own user (uid 0 without capabilities), processes, network (an
    empty loopback), IPC and host name, and a file system holding only that directory (all it
    may write), its `command_tools` at `/tools` and what they and their runners need (shared
    libraries, interpreters, fakeroot's), read-only and in the layer's cache key, and a
    minimal `/dev`: no other host file, no `/proc`, no `/tmp`. Its environment is only
    `PATH=/tools`, `HOME=/nonexistent`, `LC_ALL=C`, `TZ=UTC` and `SOURCE_DATE_EPOCH` (the
    layers' mtime). It may run for `command_timeout` seconds; what it starts in the
    background ends with it. Use relative paths. What the directory holds afterwards (files,
    directories, symlinks) becomes the customisation layer, with the layers' timestamps.
    """


class OciExtraCommandsField(StringField):
    alias = "extra_commands"
    help = help_text(
        """
        A shell script run at build time over the image's customisation layer, like
        dockerTools' `extraCommands`: `'mkdir -p var/cache/app && ln -s ../run var/run'`. The
        modes it leaves are kept; owners are the image's `uid`/`gid` (see
        `fake_root_commands` to set owners). Runs before `fake_root_commands`.
        """
    ) + "\n\n" + help_text(_SANDBOX_HELP)


class OciFakeRootCommandsField(StringField):
    alias = "fake_root_commands"
    help = help_text(
        """
        A shell script run at build time under `fakeroot` over the image's customisation
        layer, like dockerTools' `fakeRootCommands`: the owners and modes it sets (`chown
        1000:1000 var/log/app`, `chmod 2775 var/log/app`) are written into the layer, with
        the user and group names of the layer's own `etc/passwd` and `etc/group` (root for
        0; numeric only for ids they lack). Everything it does not chown or chmod keeps its
        mode and the image's `uid`/`gid`.
        """
    ) + "\n\n" + help_text(_SANDBOX_HELP)


class OciCommandToolsField(StringSequenceField):
    alias = "command_tools"
    default = (
        "sh", "[", "basename", "cat", "chgrp", "chmod", "chown", "cp", "cut", "dirname",
        "echo", "false", "find", "grep", "head", "id", "install", "ln", "ls", "mkdir", "mv",
        "printf", "readlink", "rm", "rmdir", "sed", "sort", "stat", "tail", "tee", "test",
        "touch", "tr", "true", "uniq", "wc", "xargs",
    )
    help = help_text(
        """
        The host programs `extra_commands` and `fake_root_commands` may run: each name is
        looked up in `[strata].command_search_paths` (missing: an error), and its content and
        its shared libraries' are part of the layer's cache key. Their sandbox holds these
        alone (with the libraries, and the `#!` interpreter of a script), so a script cannot
        depend on anything else the machine has installed; a program that needs data files
        of its own (Python's or Perl's modules) does not run there.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for name in value or ():
            if not name or "/" in name:
                raise InvalidFieldException(
                    f"The {repr(cls.alias)} field in target {address} has {name!r}: expected "
                    "a program's name such as 'chown', without a directory."
                )
        return value


class OciCommandTimeoutField(_PositiveIntField):
    alias = "command_timeout"
    default = 600
    help = help_text(
        f"""
        The seconds `extra_commands` and `fake_root_commands` may each run. A script still
        running then is stopped, with everything it started, and the build fails naming this
        field; so does a failing script, with the last {OUTPUT_TAIL >> 10} KiB of its output.
        """
    )


class OciImageOutputPathField(OutputPathField):
    pass


class OciBaseField(StringField):
    alias = "base"
    help = help_text(
        """
        The image to build on top of: the address of another `oci_image`, an `oci_image_archive`
        or an `oci_pull` target. Its layers are reused verbatim (never unpacked) below this
        image's own and count against `max_layers`; its history is kept.
        """
    ) + "\n\n" + _inherited_config_help()


class OciRegistriesField(StringSequenceField):
    alias = "registries"
    help = help_text(
        """
        Registries `pants publish` pushes this image to, as `host[:port]` (e.g.
        `registry.example.com`, `127.0.0.1:5000`). Plain HTTP is used for localhost and
        127.0.0.1; anything else needs TLS. Credentials come from `STRATA_REGISTRY_USERNAME` /
        `STRATA_REGISTRY_PASSWORD` or the docker `config.json` (`$DOCKER_CONFIG` or `~/.docker`).
        """
    )


class OciPublishFormatField(StringField):
    alias = "publish_format"
    default = "oci"
    valid_choices = ("oci", "docker")
    help = help_text(
        """
        The manifest `pants publish` pushes: `oci` (OCI image manifest; layers as `compression`
        says, gzip when that is `none`) or `docker` (Docker v2 schema 2, for registries and
        tools that predate OCI; gzip layers, so `compression="zstd"` is an error). The blobs are
        the same either way. For an `oci_image_index`: an OCI image index of OCI manifests, or
        a Docker manifest list of Docker v2 schema 2 manifests.
        """
    )


class OciImageTagsField(_CoreChecked, StringSequenceField):
    alias = "image_tags"
    core_check = staticmethod(validate_tag)
    help = help_text(
        """
        Tags `pants publish` gives the pushed image in each registry (the `tags` field is
        Pants' own, for selecting targets). Defaults to `[tag]`, i.e. the `tag` field or the
        content-derived tag. The manifest is pushed by digest first, then each tag, so a failed
        push never leaves a tag naming a partial image.
        """
    )


class OciImageTarget(Target):
    alias = "oci_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciImageDependenciesField,
        OciRepositoryField,
        OciTagField,
        OciMaxLayersField,
        OciCreatedField,
        OciMtimeField,
        OciUidField,
        OciGidField,
        OciUnameField,
        OciGnameField,
        OciArchitectureField,
        OciOsField,
        OciVariantField,
        *RUNTIME_CONFIG_FIELDS,
        OciSymlinksField,
        OciDirectoriesField,
        OciOutputFormatField,
        OciCompressionField,
        OciImageOutputPathField,
        OciBaseField,
        OciRegistriesField,
        OciImageTagsField,
        OciPublishFormatField,
        OciFakeNssField,
        OciCaCertificatesField,
        OciSbomField,
        OciEmbedSbomField,
        OciPermissionsField,
        OciExtraCommandsField,
        OciFakeRootCommandsField,
        OciCommandToolsField,
        OciCommandTimeoutField,
        OciIncludeNixDbField,
    )
    help = help_text(
        """
        A layered, reproducible OCI/Docker image built from this target's dependency closure,
        with no Docker daemon.

        Each dependency that has content is a store node; nodes are assigned to layers by
        popularity (nixpkgs' `buildLayeredImage` algorithm), each layer is built by its own
        cached Process, and the same inputs always give the same image digest.

        `pants package` writes the image to `dist/`; `pants run` loads it into podman (or
        docker, `[strata].loader`) without writing it to disk, then runs it with the arguments
        after `--` (`--strata-load-only`: load only).
        """
    )

    def validate(self) -> None:
        """What fields decide together (they are checked one by one): the `variant` must be one
        of the `architecture`'s, and the runtime config fields must leave a config that readers
        take (a base's keys, which only a build knows, are checked when the config is made)."""
        variant = self[OciVariantField].value
        if variant is not None:
            architecture = self[OciArchitectureField].value
            _check(OciVariantField, self.address, partial(normal_variant, architecture), variant)
        try:
            config_bytes({"config": runtime_config(self)})
        except ConfigTooLarge as e:
            aliases = {f"config.{f.config_key}": f.alias for f in RUNTIME_CONFIG_FIELDS}
            fields = ", ".join(f"`{aliases[key]}`" for key, _ in e.largest)
            raise InvalidFieldException(
                f"The runtime config fields of {self.address} (largest first: {fields}) make "
                f"its config too large: {e}."
            ) from e


class OciLayerTarget(Target):
    alias = "oci_layer"
    core_fields = (*COMMON_TARGET_FIELDS, OciLayerDependenciesField, OciPermissionsField)
    help = help_text(
        """
        A group of targets that always share one image layer, whatever their popularity.

        Use it for content that changes together, or to keep a set of small files from taking a
        layer each.
        """
    )


class OciArchiveSourceField(SingleSourceField):
    help = help_text(
        """
        An image archive in the repository: a docker-archive (`docker save`, `podman save`) or an
        oci-archive tarball.
        """
    )


class OciArchiveRefField(StringField):
    alias = "ref"
    help = help_text(
        """
        Which image of the archive to use, when it holds several: its
        `org.opencontainers.image.ref.name` or one of its `RepoTags`.
        """
    )


class OciPlatformField(StringField):
    alias = "platform"
    help = help_text(
        """
        `os/arch[/variant]`: the platform of the image to use. Defaults to the platform of the
        `oci_image` built on it (its `os`, `architecture` and `variant`), so that each image of
        an `oci_image_index` gets the base's image for its own platform. It picks the image from a
        multi-platform index (or an archive of several images) by the OCI image-index rules with
        containerd's normalisation (`linux/arm64` is `linux/arm64/v8`, `linux/amd64` is
        `linux/amd64/v1`); a single image must be of it too. Without a variant it takes the
        image without one, else the only variant there: `linux/arm` before arm/v6 and arm/v7 is
        ambiguous. When it matches no image, or images of several platforms, the error lists
        the platforms on offer.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", value):
            raise InvalidFieldException(
                f"The {repr(cls.alias)} field in target {address} must look like `linux/amd64` "
                f"or `linux/arm/v7`, not {value!r}."
            )
        return value


class OciImageArchiveTarget(Target):
    alias = "oci_image_archive"
    core_fields = (*COMMON_TARGET_FIELDS, OciArchiveSourceField, OciArchiveRefField, OciPlatformField)
    help = help_text(
        """
        An image kept in the repository as an archive, for use as an `oci_image`'s `base`.
        Its blobs are checked against their digests when it is imported.
        """
    )


class OciPullRegistryField(StringField):
    alias = "registry"
    required = True
    help = "The registry, as `host[:port]`. Plain HTTP is used for localhost and 127.0.0.1."


class OciPullRepositoryField(_CheckedStringField):
    alias = "repository"
    core_check = staticmethod(validate_repository)
    required = True
    help = "The repository in the registry, e.g. `library/debian`."


class OciPullDigestField(StringField):
    alias = "digest"
    required = True
    help = help_text(
        """
        The `sha256:...` digest of the image manifest or of a multi-platform index. Pulls are
        pinned by digest so builds are reproducible: a tag can move, a digest cannot.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", value or ""):
            raise InvalidFieldException(
                f"The {repr(cls.alias)} field in target {address} must be a `sha256:<64 hex>` "
                f"digest, not {value!r}: pulls are pinned by digest so builds stay reproducible. "
                "To find it: `skopeo inspect --raw docker://REGISTRY/REPO:TAG | sha256sum`, or "
                "the `Digest` of `skopeo inspect`."
            )
        return value


class OciPullTagField(StringField):
    alias = "tag"
    help = "The tag the digest was taken from: informational only, never used to pull."


class OciPullInsecureField(BoolField):
    alias = "insecure"
    default = False
    help = "Use plain HTTP for this registry even though it is not localhost."


class OciPullTarget(Target):
    alias = "oci_pull"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciPullRegistryField,
        OciPullRepositoryField,
        OciPullDigestField,
        OciPullTagField,
        OciPlatformField,
        OciPullInsecureField,
    )
    help = help_text(
        """
        An image in a registry, pinned by digest, for use as an `oci_image`'s `base` (like
        nixpkgs' `pullImage`). It is fetched by Strata's own registry client in a cached process,
        every manifest and blob verified against its digest, so each blob is fetched once.
        Credentials come from the docker `config.json` (`$DOCKER_CONFIG` or `~/.docker`).
        """
    )


class DebianPackagesField(StringSequenceField):
    alias = "packages"
    required = True
    help = help_text(
        """
        Debian binary packages to install, by name (optionally with a version relation, as in
        `python3.11 (>= 3.11.2)`). Their Depends/Pre-Depends closure is resolved like apt does
        and pinned in `lockfile`; each package becomes a store node referencing its
        dependencies, so the most shared (libc6 and friends) sink to the lowest layers.
        """
    )


class DebianSuiteField(StringField):
    alias = "suite"
    default = "bookworm"
    help = "The Debian suite (codename) to resolve against."


class DebianArchitecturesField(StringSequenceField):
    alias = "architectures"
    default = ("amd64",)
    help = help_text(
        f"""
        The Debian architectures to resolve and lock the packages for, by Debian's names:
        {", ".join(f"`{a}`" for a in DEBIAN_ARCHITECTURES)}. Each is resolved on its own
        (its `all` packages included) from the same snapshot of the mirror, and the lockfile
        holds each one's packages. An `oci_image` takes the packages of its own `architecture`
        (Go's names: `arm64` is `arm64`, `386` is `i386`, `ppc64le` is `ppc64el`,
        `mips64le` is `mips64el`, `arm` is `armhf`), which must be listed here.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if not value:
            raise InvalidFieldException(
                f"The {repr(cls.alias)} field in target {address} needs at least one "
                "architecture."
            )
        for arch in value:
            _check(cls, address, check_architecture, arch)
        return value


class DebianLockfileField(StringField):
    alias = "lockfile"
    default = "debian.lock.json"
    help = help_text(
        """
        The lockfile, relative to the BUILD file's directory: for each of `architectures`, the
        mirror's snapshot and per package its version, architecture, sha256, size, archive path
        (`pool/...`) and resolved dependencies, and no host names (the mirror is
        `[debian].mirror`). `pants debian-lock <target>` writes it.
        """
    )


class DebianPackagesTarget(Target):
    alias = "debian_packages"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        DebianPackagesField,
        DebianSuiteField,
        DebianArchitecturesField,
        DebianLockfileField,
    )
    help = help_text(
        """
        Debian packages as store nodes of an `oci_image`: each locked package's `data.tar` becomes
        layer content with modes preserved (setuid and all), ownership and mtimes normalised,
        paths moved under `/usr` (merged-/usr: the image gets `/bin`, `/sbin`, `/lib*` as
        symlinks into `/usr`), and its control fields in `/var/lib/dpkg/status.d/<package>` so
        SBOM and vulnerability scanners see it.

        Maintainer scripts are never run: no `postinst` (so no alternatives symlinks, no
        `ldconfig` cache, no generated config such as `/etc/passwd` — use `fake_nss` — or
        `/etc/ssl/certs/ca-certificates.crt` — use `ca_certificates`), and Essential packages
        are not pulled in implicitly.
        Each `.deb` is downloaded once by URL and sha256 and kept in the Pants cache.
        """
    )


class PythonVenvDependenciesField(Dependencies):
    help = help_text(
        """
        The app the venv holds: a `pex_binary` (its entry point becomes the venv's), and/or
        `python_source(s)`, `python_requirement` and `resource(s)` targets. Their whole closure
        goes into the venv: each third-party distribution installed as its own store node, the
        first-party sources and resources as one more. `file(s)` targets are not part of a
        venv; depend on them from the `oci_image`.
        """
    )


class _ImagePathField(StringField):
    """A string field naming an absolute path in the image, checked by the core's rules."""

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        _check_image_path(cls, address, value)
        return value


class PythonVenvInterpreterField(_ImagePathField):
    alias = "python"
    required = True
    help = help_text(
        """
        The image's Python interpreter that the venv runs on: an absolute path in the image,
        e.g. `/usr/bin/python3.11` from `debian_packages(packages=['python3.11'])`, or
        `/usr/local/bin/python3.11` from a `python:3.11-slim` base. It is never run at build
        time; wheels are resolved and bytecode is compiled for its version (see
        `python_version`) by a CPython of the same version on the build machine.
        """
    )


class PythonVenvVersionField(StringField):
    alias = "python_version"
    help = help_text(
        """
        The interpreter's `MAJOR.MINOR` version, e.g. `3.11`. Defaults to the version in the
        `python` field's file name (`python3.11`); required when that name has none.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not re.fullmatch(r"\d+\.\d+", value):
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} must be MAJOR.MINOR, such as "
                f"'3.11', but was {value!r}."
            )
        return value


class PythonVenvPathField(_ImagePathField):
    alias = "venv_path"
    default = "/opt/venv"
    help = help_text(
        """
        Where the venv is in the image. Third-party distributions and first-party code are in
        its `lib/pythonX.Y/site-packages`, console scripts and launchers in its `bin/`, and
        `bin/python` links to the `python` interpreter.
        """
    )


class PythonVenvBytecodeField(StringField):
    alias = "bytecode"
    default = "unchecked-hash"
    valid_choices = BYTECODE_MODES
    help = help_text(
        """
        The `.pyc` files written beside each module at build time, so that no container
        compiles at start (nor needs a writable filesystem to cache it). `unchecked-hash`
        (the default): Python trusts the pyc and never reads the source to check it, right for
        an image, whose files never change. `checked-hash`: Python checks each pyc against its
        source's hash on import. `none`: no bytecode. Pycs are reproducible (hash-based, not
        timestamped); compiling them needs a CPython of `python_version` on the build machine.
        """
    )


class PythonVenvEntryPointField(StringField):
    alias = "entry_point"
    help = help_text(
        """
        What the venv runs: `module:function` or `module` (run as `__main__`). It becomes a
        launcher script, `bin/<target name>` in the venv, and the image's default `entrypoint`
        (an image's own `entrypoint` field overrides it). Defaults to the `entry_point` of a
        `pex_binary` among the dependencies, or to its `script` (then `bin/<script>`).
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not re.fullmatch(
            r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?", value
        ):
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} must be `module:function` or "
                f"`module`, but was {value!r}."
            )
        return value


class PythonVenvAllowSdistsField(BoolField):
    alias = "allow_sdists"
    default = False
    help = help_text(
        """
        Whether a distribution with no wheel for the image's platform may be built from its
        source distribution (sdist) on this machine. Off by default: building runs this
        machine's compiler against its own headers, for its CPU and libc rather than the
        image's, so a requirement with no wheel is an error naming the distribution, its
        version and the image's platform. Building can only work for an image of this
        machine's architecture.
        """
    )


class PythonVenvTarget(Target):
    alias = "python_venv"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        PythonVenvDependenciesField,
        PythonVenvInterpreterField,
        PythonVenvVersionField,
        PythonVenvPathField,
        PythonVenvBytecodeField,
        PythonVenvEntryPointField,
        PythonVenvAllowSdistsField,
    )
    help = help_text(
        """
        A Python app as an installed virtualenv in an `oci_image`: no PEX to unpack when a
        container starts, so it runs with a read-only root filesystem, and a code change
        rebuilds one small layer.

        Its store nodes: each third-party distribution, installed as pip installs it
        (`site-packages` content, `.dist-info` with a sorted `RECORD` and `INSTALLER`, console
        scripts whose shebang is the venv's python, `.data` files, `.pth` files), so a
        distribution shared by many images is a shared layer; the first-party sources and
        resources, source roots stripped, in the same `site-packages`; and the venv's skeleton
        (`pyvenv.cfg`, `bin/python*` linking to `python`, the launcher).

        Distributions are resolved by Pants and pex for `python_version` on this machine, as
        for a `pex_binary`, and installed at build time by Strata's layer Processes, cached like
        any layer; nothing runs inside the image. A distribution whose tags do not fit the
        interpreter's version or the image's architecture is an error naming both.
        """
    )


class NixSourceField(SingleSourceField):
    alias = "source"
    required = False
    expected_file_extensions = (".nix",)
    help = help_text(
        """
        A Nix expression file whose `attributes` are built with `nix-build`. The files of the
        `dependencies` (`file` targets: the `.nix` files it imports, builder scripts) are
        beside it at build time, at their paths in the repository.
        """
    )


class NixAttributesField(StringSequenceField):
    alias = "attributes"
    help = help_text(
        """
        The attribute paths of `source` to build (`nix-build <source> -A <attribute>`), e.g.
        `['hello', 'pkgs.curl']`. Their outputs are the closure's top-level paths.
        """
    )


class NixStorePathsField(_CoreChecked, StringSequenceField):
    alias = "store_paths"
    core_check = staticmethod(partial(nix_store_path, what="store path"))
    help = help_text(
        """
        Store paths already in this machine's Nix store, `/nix/store/<hash>-<name>`, instead of
        `source` and `attributes`: e.g. the output of a Nix build run outside Pants. They are
        the closure's top-level paths.
        """
    )


class NixClosureDependenciesField(Dependencies):
    help = help_text(
        """
        `file` targets that `source` reads (imported `.nix` files, builder scripts): they are
        put beside it when Nix evaluates it, so a change to any of them rebuilds the closure.
        Their own content is not in the image.
        """
    )


class NixCopyToRootField(BoolField):
    alias = "copy_to_root"
    default = False
    help = help_text(
        """
        Link the top-level paths' `paths_to_link` directories into the image's root, as
        dockerTools' `copyToRoot` does with a `buildEnv`/`symlinkJoin`: every file under
        `/nix/store/<hash>-hello/bin/` gets a symlink at `/bin/<file>` pointing at it, in real
        directories, so `entrypoint=['/bin/hello']` works without naming a hash. The links are
        in the image's customisation layer (under `/usr` when the image has Debian packages,
        whose `/bin`, `/sbin` and `/lib*` are symlinks into `/usr`). Two top-level paths with a
        file at the same place are an error.
        """
    )


class NixPathsToLinkField(StringSequenceField):
    alias = "paths_to_link"
    default = ("bin", "lib", "etc", "share")
    help = help_text(
        """
        The top-level directories of the closure's top-level paths that `copy_to_root` links
        into the image's root (buildEnv's `pathsToLink`).
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for name in value or ():
            if not re.fullmatch(r"[^/]+", name) or name in (".", ".."):
                raise _field_error(cls, address, f"holds {name!r}: each must be a directory "
                                   "name, such as 'bin'.")
        return value


class NixClosureTarget(Target):
    alias = "nix_closure"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        NixSourceField,
        NixAttributesField,
        NixStorePathsField,
        NixClosureDependenciesField,
        NixCopyToRootField,
        NixPathsToLinkField,
    )
    help = help_text(
        """
        Nix store paths and their closure as store nodes of an `oci_image`: each store path is
        one node, at its own `/nix/store/<hash>-<name>` in the image, referencing the paths Nix
        says it references (`nix path-info`), so popularity layering works over the Nix graph
        and the Pants graph together. An image of Nix paths alone is layered as nixpkgs'
        `buildLayeredImage` layers it for the same `max_layers`.

        Either build `attributes` of a `source` file with `nix-build`, or take existing
        `store_paths`.

        What is read from outside the sandbox, and why it is sound:
        building runs this machine's `nix-build` (see `[nix].search_paths`), which writes to
        `/nix/store` through the Nix daemon or as root, and may read whatever the expression
        reads (`<nixpkgs>`, fetchers): that Process is cached on the `.nix` sources, the
        attributes, `[nix].settings` and Nix's version, so an expression must name everything
        else by hash (as pinned nixpkgs and fixed-output fetchers do). Each store path's
        content is then copied (`nix-store --dump`, the NAR, checked against Nix's NAR hash)
        by a Process keyed on the store path alone: a store path is immutable and its name
        carries the hash of how it was built, so the copy is cached and shared through a
        remote cache like any layer. A machine whose caches hold those Processes builds the
        image with an empty `/nix/store`.
        """
    )

    def validate(self) -> None:
        source = self[NixSourceField].value
        attributes = self[NixAttributesField].value
        store_paths = self[NixStorePathsField].value
        if bool(source) == bool(store_paths):
            raise InvalidFieldException(
                f"The nix_closure {self.address} needs either `source` and `attributes` "
                "(what nix-build builds) or `store_paths` (existing store paths), not "
                f"{'both' if source else 'neither'}."
            )
        if bool(source) != bool(attributes):
            raise InvalidFieldException(
                f"The `attributes` field of nix_closure {self.address} is needed with "
                "`source`, and only there: the attribute paths to build."
            )


class OciIndexImagesField(SpecialCasedDependencies):
    alias = "images"
    required = True
    help = help_text(
        """
        The `oci_image` targets of the index, one per platform (their `os`, `architecture`
        and `variant`), e.g. `[':app-amd64', ':app-arm64']`. Each is built as `pants package`
        would build it as an `oci` layout; the index lists their manifests in this order, each
        with its platform. Two images of one platform (`linux/arm64` and `linux/arm64/v8` are
        one) are an error: a client could not tell which to take.
        """
    )


class OciIndexTagField(OciTagField):
    help = help_text(
        """
        The index's tag in its layout and, unless `image_tags` says otherwise, in registries
        (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`). Defaults to a tag derived from the index's
        digest, so the same images always get the same tag.
        """
    )


class OciIndexOutputFormatField(StringField):
    alias = "output_format"
    default = OutputFormat.OCI.value
    valid_choices = OutputFormat
    help = help_text(
        """
        What `package` writes: `oci` (an OCI image layout directory, `dist/<path>/<name>`) or
        `oci-archive` (that layout as a tarball, `dist/<path>/<name>.tar`). Its `index.json`
        names the image index by `tag`; each blob is stored once, however many images share it.
        `docker-archive` is refused: `docker load` takes images of one platform only, and so is
        `rootfs`, one filesystem.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        if value == OutputFormat.ROOTFS.value:
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} is `rootfs`, one image's "
                "filesystem: use `oci` or `oci-archive` for the index, or package one of its "
                "`images` with `output_format=\"rootfs\"`."
            )
        if value == OutputFormat.DOCKER_ARCHIVE.value:
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} is `docker-archive`, which holds "
                "images of one platform only (`docker load` has no image index): use `oci` or "
                "`oci-archive` for the index, or package one of its `images` as a "
                "`docker-archive`."
            )
        return value


class OciImageIndexTarget(Target):
    alias = "oci_image_index"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciIndexImagesField,
        OciRepositoryField,
        OciIndexTagField,
        OciIndexOutputFormatField,
        OciImageOutputPathField,
        OciRegistriesField,
        OciImageTagsField,
        OciPublishFormatField,
    )
    help = help_text(
        """
        A multi-platform image: an OCI image index over `oci_image` targets of different
        platforms (e.g. `linux/amd64` and `linux/arm64`), from which each client takes the image
        of its own platform.

        `pants package` writes an OCI layout (or `oci-archive`) whose `index.json` names the
        index by its tag; the index lists each image's manifest with its `platform` (`os`,
        `architecture` and `variant` where set). The images' blobs are composed without a copy
        and stored once. `pants publish` pushes each image's blobs and manifest (by digest, no
        tag; layers gzip-compressed when an image's `compression` is `none`), then the index
        by digest, then its tags; blobs the registry has are skipped.
        """
    )


def _field_error(field: ClassVar[Any], address: Address, why: str) -> InvalidFieldException:
    return InvalidFieldException(f"The {field.alias!r} field in target {address} {why}")


def _check_image_path(field: ClassVar[Any], address: Address, path: str) -> None:
    _check(field, address, lambda p: absolute_image_path(p, "image path"), path)


def _check(field: ClassVar[Any], address: Address, validate, value: str) -> None:
    """Turns a core validation error into a Pants error naming the target and field."""
    try:
        validate(value)
    except ValueError as e:
        raise _field_error(field, address, f"is invalid: {e}") from e


def target_types():
    return [
        OciImageTarget,
        PythonVenvTarget,
        OciLayerTarget,
        OciImageArchiveTarget,
        OciPullTarget,
        DebianPackagesTarget,
        OciImageIndexTarget,
        OciImageBundleTarget,
        NixClosureTarget,
    ]


class OciBundleImagesField(SpecialCasedDependencies):
    alias = "images"
    required = True
    help = help_text(
        """
        The `oci_image` targets the archive holds, e.g. `[':api', ':worker', '//tools:cli']`:
        at least one, each of its own `repository:tag` (as its `repository` and `tag` fields, or
        its content-derived tag, give it), so that every image keeps its name when loaded. Each
        is built as its `docker-archive` (its own layers uncompressed, whatever its
        `output_format` and `compression` say); `manifest.json` lists them in this order.
        """
    )


class OciImageBundleTarget(Target):
    alias = "oci_image_bundle"
    core_fields = (*COMMON_TARGET_FIELDS, OciBundleImagesField, OciImageOutputPathField)
    help = help_text(
        """
        Several `oci_image` targets in one docker-archive (nixpkgs' `dockerTools.mergeImages`),
        e.g. to hand a set of images to an air-gapped machine as one file.

        `pants package` writes `dist/<path>/<name>.tar`: `podman load -i` and `docker load -i`
        load every image under its `repository:tag`, and skopeo reads each by that name
        (`docker-archive:<file>:<repository:tag>`) or by position (`docker-archive:<file>:@0`).
        A layer that several images share (the same content, e.g. a common `files` target or
        base) is stored once, and so is a config. The same images give the same bytes.
        """
    )
