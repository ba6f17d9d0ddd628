"""What the target families' fields share: checks that fail as a BUILD file is read, naming
the target and field, by the core's rules."""

from __future__ import annotations

import re
from typing import Any, Callable, ClassVar, Dict, Iterable, Optional, Tuple, TypeVar

from pants.engine.addresses import Address
from pants.engine.target import (
    DictStringToStringField,
    IntField,
    InvalidFieldException,
    StringField,
    StringSequenceField,
)
from pants.util.frozendict import FrozenDict

from strata.core.build.spec import absolute_image_path

T = TypeVar("T")


class CoreChecked:
    """A field checked, when set, by the core's rule for it (`core_check`: one place for each
    rule), so that a bad value fails as the BUILD file is read, naming the target and field: a
    scalar's value, each item of a sequence, each key of a dict. An empty string where that
    means unset (`empty_is_unset`: a runtime config key's) is not checked.

    Each field type has its own subclass below because `pants help` reads a field's type from
    the `raw_value` hint of its `compute_value`, which a mixin's untyped one would hide."""

    core_check: ClassVar[Callable[[Any], Any]]
    empty_is_unset: ClassVar[bool] = False

    @classmethod
    def core_checked(cls, value: T, address: Address) -> T:
        if value is None or (value == "" and cls.empty_is_unset):
            return value
        for item in value if isinstance(value, (tuple, FrozenDict)) else (value,):
            check_field(cls, address, cls.core_check, item)
        return value


class CheckedStringField(CoreChecked, StringField):
    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        return cls.core_checked(super().compute_value(raw_value, address), address)


class CheckedIntField(CoreChecked, IntField):
    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> Optional[int]:
        return cls.core_checked(super().compute_value(raw_value, address), address)


class CheckedStringSequenceField(CoreChecked, StringSequenceField):
    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        return cls.core_checked(super().compute_value(raw_value, address), address)


class CheckedDictStringToStringField(CoreChecked, DictStringToStringField):
    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, str]], address: Address
    ) -> Optional[FrozenDict[str, str]]:
        return cls.core_checked(super().compute_value(raw_value, address), address)


class PatternStringField(StringField):
    """A string field whose value, when set, must match `pattern` whole; the error names the
    target and field, then says `mismatch` (formatted with the `value`)."""

    pattern: ClassVar[str]
    mismatch: ClassVar[str]

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not re.fullmatch(cls.pattern, value):
            raise field_error(cls, address, cls.mismatch.format(value=value))
        return value


class PositiveIntField(IntField):
    """An int field of at least 1, such as a count or a number of seconds."""

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> int:
        value = super().compute_value(raw_value, address)
        if value is not None and value < 1:
            raise field_error(cls, address, f"must be at least 1, but was {value}.")
        return value


def field_error(field: ClassVar[Any], address: Address, why: str) -> InvalidFieldException:
    return InvalidFieldException(f"The {field.alias!r} field in target {address} {why}")


def check_image_path(field: ClassVar[Any], address: Address, path: str) -> None:
    check_field(field, address, lambda p: absolute_image_path(p, "image path"), path)


def check_field(field: ClassVar[Any], address: Address, validate, value: str) -> None:
    """Turns a core validation error into a Pants error naming the target and field."""
    try:
        validate(value)
    except ValueError as e:
        raise field_error(field, address, f"is invalid: {e}") from e
