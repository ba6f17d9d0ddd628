"""A layer spec's `permissions`: modes and owners set on the layer's entries by image path globs,
when the layer is written and without running anything (nix2container's `perms`).

Each rule (strata.core.build.spec.Permission), in order, sets its attributes on every entry its glob
matches, so a later rule wins; a rule that matches no entry is an error, since it is a typo or
a path that lives in another layer. Globs, per `/`-separated component: `*` is any run of
characters and `?` one character (a leading `.` is not special); `**`, a component on its own,
is any number of components, but at the end at least one: `var/lib/app/**` is everything below
`var/lib/app`, not the directory itself. No `fnmatch` (it imports `re`): this module is loaded
by the layers that have permissions, and the matcher is a few lines.
"""

from __future__ import annotations  # annotations stay strings: no `typing` import at start-up

from strata.core.build.tarstream import Owner

# The end of the error for a rule that matches nothing; the shell finds it in the Process's
# stderr to name the target's `permissions` field.
UNMATCHED = "matches nothing in this layer"


def apply_permissions(entries: dict, rules, settings) -> None:
    """Applies `rules` to `entries` (image path -> strata.core.build.collector.LayerEntry) in
    place; an entry without an owner of its own starts from the layer settings' owner."""
    default = Owner(settings.uid, settings.gid, settings.uname, settings.gname)
    for index, rule in enumerate(rules):
        if "*" in rule.pattern or "?" in rule.pattern:
            parts = rule.pattern.split("/")
            matched = [path for path in entries if _match(parts, 0, path.split("/"), 0)]
        else:
            matched = [rule.pattern] if rule.pattern in entries else []
        if not matched:
            raise ValueError(f"permissions[{index}]: '/{rule.pattern}' {UNMATCHED}")
        for path in matched:
            entries[path] = _apply(entries[path], rule, default)


def _apply(entry, rule, default: Owner):
    """The entry with the rule's attributes. A symlink's mode means nothing (it stays 0777).
    An id without its name clears the name, so that readers show the number rather than a
    name that belongs to another id; a name alone keeps the id."""
    changes = {}
    if rule.mode is not None and entry.kind != "symlink":
        changes["mode"] = rule.mode
    if (rule.uid, rule.gid, rule.uname, rule.gname) != (None, None, None, None):
        uid, gid, uname, gname = entry.owner or default
        if rule.uid is not None:
            uid, uname = rule.uid, ""
        if rule.gid is not None:
            gid, gname = rule.gid, ""
        changes["owner"] = Owner(
            uid, gid,
            uname if rule.uname is None else rule.uname,
            gname if rule.gname is None else rule.gname,
        )
    return entry._replace(**changes)


def _match(parts: list, i: int, names: list, j: int) -> bool:
    """Whether path components `names[j:]` match glob components `parts[i:]`."""
    while i < len(parts):
        part = parts[i]
        if part == "**":
            if i == len(parts) - 1:
                return j < len(names)  # a trailing `**`: at least one component
            return any(_match(parts, i + 1, names, k) for k in range(j, len(names) + 1))
        if j == len(names) or not _match_name(part, names[j]):
            return False
        i += 1
        j += 1
    return j == len(names)


def _match_name(pattern: str, name: str) -> bool:
    """Whether one component matches: `*` any run of characters, `?` any one character. On a
    mismatch the last `*` takes one more character: at most len(pattern) * len(name) steps."""
    p = n = 0
    star = -1  # the pattern index of the last `*`, and where its match ended
    resume = 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, n
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", name[n]):
            p += 1
            n += 1
        elif star >= 0:
            resume += 1
            p, n = star + 1, resume
        else:
            return False
    return pattern[p:].strip("*") == ""
