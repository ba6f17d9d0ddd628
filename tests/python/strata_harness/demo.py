"""The demo app (`//app:image`: Debian's CPython 3.11 and the app as a venv, 46 layers) in a
scratch repo, built as a user would build it.

Its sources are copied from the test sandbox, so a test using it depends on the `files` targets
`app:demo_sources` and `//:pins` (in a sandbox, `files` sit at their paths from the
build root)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from strata_harness.scratch import ScratchRepo

DEMO_FILES = (
    "app/BUILD",
    "app/debian.lock.json",
    "app/hello/__init__.py",
    "app/hello/main.py",
    "3rdparty/python/app-constraints.txt",
    "3rdparty/python/app-requirements.txt",
)


def demo_repo(
    root: str | os.PathLike[str],
    *,
    isolated_cache: bool = False,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    plugin_wheel: Path | None = None,
) -> ScratchRepo:
    """A scratch repo holding the demo app; see ScratchRepo for `isolated_cache`,
    `plugin_wheel` and `config` (settings merged over the demo's)."""
    demo_config: dict[str, dict[str, Any]] = {
        "source": {"root_patterns": ["/app"]},
        "python": {
            "enable_resolves": True,
            "default_resolve": "app",
            "resolves": {"app": "3rdparty/python/app-constraints.txt"},
        },
    }
    for section, values in (config or {}).items():
        demo_config.setdefault(section, {}).update(values)
    repo = ScratchRepo(
        root, config=demo_config, isolated_cache=isolated_cache, plugin_wheel=plugin_wheel
    )
    for rel in DEMO_FILES:
        (repo.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rel, repo.root / rel)
    repo.write(
        {
            "app/hello/BUILD": 'python_sources(interpreter_constraints=["CPython==3.11.*"])\n',
            "3rdparty/python/BUILD": 'python_requirements(name="app", source="app-requirements.txt")\n',
        }
    )
    return repo


def pin(repo: ScratchRepo, *requirements: str) -> None:
    """Adds `name==version` pins to the demo's `app` resolve (its lockfile, a pinned
    requirements file), which every requirement of the resolve needs."""
    with open(repo.root / "3rdparty/python/app-constraints.txt", "a") as lockfile:
        lockfile.write("".join(f"{r}\n" for r in requirements))

