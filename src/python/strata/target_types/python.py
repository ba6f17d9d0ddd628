"""`python_venv`: a Python app as an installed virtualenv, its distributions as store nodes."""

from __future__ import annotations

from typing import Optional

from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    StringField,
    Target,
)
from pants.util.strutil import help_text

from strata.core.build.python import BYTECODE_MODES
from strata.target_types.fields import PatternStringField, check_image_path


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
        check_image_path(cls, address, value)
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


class PythonVenvVersionField(PatternStringField):
    alias = "python_version"
    pattern = r"\d+\.\d+"
    mismatch = "must be MAJOR.MINOR, such as '3.11', but was {value!r}."
    help = help_text(
        """
        The interpreter's `MAJOR.MINOR` version, e.g. `3.11`. Defaults to the version in the
        `python` field's file name (`python3.11`); required when that name has none.
        """
    )


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


class PythonVenvEntryPointField(PatternStringField):
    alias = "entry_point"
    pattern = r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?"
    mismatch = "must be `module:function` or `module`, but was {value!r}."
    help = help_text(
        """
        What the venv runs: `module:function` or `module` (run as `__main__`). It becomes a
        launcher script, `bin/<target name>` in the venv, and the image's default `entrypoint`
        (an image's own `entrypoint` field overrides it). Defaults to the `entry_point` of a
        `pex_binary` among the dependencies, or to its `script` (then `bin/<script>`).
        """
    )


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


def target_types():
    return [PythonVenvTarget]
