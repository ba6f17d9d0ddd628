"""`oci_layer`: targets that always share one layer, and the `permissions` a layer is written
with (an `oci_image`'s customisation layer takes them too)."""

from __future__ import annotations

import re
from functools import partial
from typing import Any, Dict, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.target import COMMON_TARGET_FIELDS, Dependencies, Field, Target
from pants.util.strutil import help_text

from strata.core.build.spec import Permission, absolute_image_path
from strata.target_types.fields import field_error


class OciLayerDependenciesField(Dependencies):
    help = help_text(
        """
        Targets whose content always shares one layer (like nix2container's `buildLayer`). Their
        whole closure is gathered into this layer, with the destinations described in
        `pants help oci_image`, except for nested `oci_layer` targets, which stay separate layers.
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

        invalid = partial(field_error, cls, address)
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


def target_types():
    return [OciLayerTarget]
