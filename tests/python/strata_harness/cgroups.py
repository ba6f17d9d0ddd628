"""Removing the cgroups a container engine made for a test's containers."""

from __future__ import annotations

from pathlib import Path


def cgroup_mounts() -> list[Path]:
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, after = line.split(" - ", 1)
            if after.split()[0] in ("cgroup", "cgroup2"):
                mounts.append(Path(before.split()[4]))
    return mounts


def remove_cgroup(parent: str) -> None:
    """Removes the cgroup `parent` ("/name") and its children from every hierarchy."""
    for mount in cgroup_mounts():
        path = mount / parent.lstrip("/")
        if path.is_dir():
            # cgroups go by rmdir, children first; their control files go with them.
            children = [p for p in path.rglob("*") if p.is_dir()]
            for d in sorted(children, key=lambda p: -len(p.parts)):
                d.rmdir()
            path.rmdir()
