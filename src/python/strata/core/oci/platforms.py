"""Picking an image by platform: one matcher for every route an image comes by (an index in a
registry, an OCI layout or archive, a docker-archive), so `linux/arm` means the same for each.

The rules, after the OCI image-index spec's `platform` (image-index.md: `os` and
`architecture` as Go's GOOS/GOARCH, an optional `variant` such as arm `v6`/`v7`/`v8`, arm64
`v8`, and optional `os.version` and `os.features`) and containerd's `platforms` package
(`Normalize`, `NewMatcher`):

- os and architecture must match exactly, after containerd's normalisation: case folded,
  `x86_64`/`x86-64` = `amd64`, `aarch64` = `arm64`, `i386` = `386`, `armhf` = `arm/v7`,
  `armel` = `arm/v6`, and arm variants `5`..`8` = `v5`..`v8`;
- where containerd documents a default variant it is applied, on both sides: amd64 without a
  variant is `amd64/v1`, arm64 without one is `arm64/v8` (containerd also reads a bare `arm`
  as `arm/v7`; Strata does not, so `linux/arm` before arm/v6 and arm/v7 is ambiguous rather
  than a silent pick);
- a requested variant must match; a request without one takes an image without one, else any
  variant, and is ambiguous when that leaves images of different variants;
- `os.version` and `os.features` are never requested (`os/arch[/variant]` cannot name them),
  but they tell platforms apart: images that differ only there are ambiguous too.

No image, or images of several platforms, is a PlatformError; several images of one platform
are left to the caller to tell apart (by name, say).
"""

from typing import Hashable, List, Sequence, Tuple

from strata.core.errors import InvalidInput

_ARCH_ALIASES = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "aarch64": ("arm64", None),
    "i386": ("386", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
}
_VARIANT_ALIASES = {
    "arm": {"5": "v5", "6": "v6", "7": "v7", "8": "v8"},
    "arm64": {"8": "v8", "v8.0": "v8", "9": "v9", "9.0": "v9", "v9.0": "v9"},
}
_DEFAULT_VARIANT = {"amd64": "v1", "arm64": "v8"}


class PlatformError(InvalidInput):
    """The requested platform matches no image in `where`, or images of several platforms
    (`matching`); `available` lists every platform there, as each image gives it. Its exit
    code and JSON details let the rules name the target's `platform` field."""

    exit_code = 3

    def __init__(self, requested: str, where: str, matching: List[str], available: List[str]):
        self.requested, self.where = requested, where
        self.matching, self.available = matching, available
        if matching:
            problem = f"is ambiguous in {where}: it holds {', '.join(matching)}"
        else:
            problem = f"is not in {where}: it holds {', '.join(available) or 'no image'}"
        super().__init__(f"platform {requested} {problem}")

    def details(self) -> dict:
        return {
            "platform": self.requested,
            "in": self.where,
            "matching": self.matching,
            "available": self.available,
        }


def parse(text: str) -> dict:
    """`os/arch[/variant]` -> an OCI platform object."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"a platform must be os/arch or os/arch/variant: {text!r}")
    return dict(zip(("os", "architecture", "variant"), parts))


def describe(platform: object) -> str:
    """`os/arch[/variant]`, with os.version and os.features when there are any."""
    if not isinstance(platform, dict):
        return "unknown"
    text = "/".join(str(platform[k]) for k in ("os", "architecture", "variant") if platform.get(k))
    extra = [f"os.version {platform['os.version']}"] if platform.get("os.version") else []
    features = platform.get("os.features")
    if features:
        extra.append("os.features " + ",".join(map(str, features)))
    return (text or "unknown") + (f" ({'; '.join(extra)})" if extra else "")


def _normal(platform: object) -> Tuple[str, str, str]:
    """(os, architecture, variant) as containerd normalises them (but a bare arm stays bare)."""
    if not isinstance(platform, dict):
        return ("", "", "")
    keys = ("os", "architecture", "variant")
    os_, arch, variant = (str(platform.get(k) or "").lower() for k in keys)
    arch, implied = _ARCH_ALIASES.get(arch, (arch, None))
    variant = implied or _VARIANT_ALIASES.get(arch, {}).get(variant, variant)
    return os_, arch, variant or _DEFAULT_VARIANT.get(arch, "")


def _identity(platform: object) -> tuple:
    """What tells two platforms apart: the normal form, os.version and os.features."""
    if not isinstance(platform, dict):
        return _normal(platform)
    features = platform.get("os.features")
    features = tuple(sorted(map(str, features))) if isinstance(features, list) else ()
    return (*_normal(platform), str(platform.get("os.version") or ""), features)


def select(
    requested: str, offered: Sequence[Tuple[Hashable, object]], where: str
) -> List[Hashable]:
    """The keys of the images of `offered` ((key, OCI platform object) pairs, one key per
    image) that are of the `requested` platform: all of one platform, one key each, in order.
    Raises PlatformError when none is, or when they are of several platforms."""
    want_os, want_arch, want_variant = _normal(parse(requested))
    candidates = [
        (key, platform)
        for key, platform in offered
        if _normal(platform)[:2] == (want_os, want_arch)
        and (not want_variant or _normal(platform)[2] == want_variant)
    ]
    exact = [(k, p) for k, p in candidates if _normal(p)[2] == want_variant]
    chosen = exact or candidates
    available = list(dict.fromkeys(describe(p) for _, p in offered))
    if not chosen:
        raise PlatformError(requested, where, [], available)
    if len({_identity(p) for _, p in chosen}) > 1:
        matching = list(dict.fromkeys(describe(p) for _, p in chosen))
        raise PlatformError(requested, where, matching, available)
    return list(dict.fromkeys(key for key, _ in chosen))
