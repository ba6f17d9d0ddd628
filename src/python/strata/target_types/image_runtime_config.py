"""The `oci_image` fields that set its runtime config (the config's `config`), each one key."""

from __future__ import annotations

import re
from fractions import Fraction
from functools import partial
from typing import Any, ClassVar, Dict, Iterable, List, Optional, Tuple, Type

from pants.engine.addresses import Address
from pants.engine.target import (
    DictStringToStringField,
    Field,
    StringSequenceField,
    Target,
)
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from strata.core.oci.image import (
    validate_config_path,
    validate_env_name,
    validate_stop_signal,
    validate_user,
)
from strata.target_types.fields import (
    CheckedDictStringToStringField,
    CheckedStringField,
    CheckedStringSequenceField,
    field_error,
)


class RuntimeConfigField:
    """A field that sets one key of the image's runtime config (the config's `config`), looped
    over like the docker backend's build options. How a base's value for the key is inherited
    is the core's `INHERITANCE[config_key]`: a base may carry keys no field sets."""

    config_key: ClassVar[str]
    empty_is_unset = True  # an empty string leaves the key unset (`config_value`), unchecked
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


class OciEnvField(RuntimeConfigField, CheckedDictStringToStringField):
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


class OciWorkdirField(RuntimeConfigField, CheckedStringField):
    alias = "workdir"
    config_key = "WorkingDir"
    core_check = staticmethod(validate_config_path)
    help = "The container's working directory (`WorkingDir`); absolute."


class OciUserField(RuntimeConfigField, CheckedStringField):
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
                raise field_error(
                    cls, address, f"has an invalid port {port!r}: expected `PORT` or "
                    "`PORT/tcp|udp|sctp`, PORT from 1 to 65535."
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


class OciVolumesField(RuntimeConfigField, CheckedStringSequenceField):
    alias = "volumes"
    core_check = staticmethod(validate_config_path)
    config_key = "Volumes"
    help = "Paths the container expects to be volumes (`Volumes`); absolute."

    def config_value(self) -> Optional[Dict[str, dict]]:
        return {volume: {} for volume in self.value} if self.value else None


class OciStopSignalField(RuntimeConfigField, CheckedStringField):
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

        invalid = partial(field_error, cls, address)
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
