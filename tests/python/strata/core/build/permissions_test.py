"""A layer spec's `permissions`: globs, rule order, owners and modes as tar readers see them."""

import json
import tarfile
from pathlib import Path

import pytest

from strata.core.build import layer
from strata.core.build.permissions import UNMATCHED, _match
from strata.core.cli import main
from strata.core.build.spec import LayerSettings, LayerSpec

SETTINGS = {"mtime": 1, "uid": 0, "gid": 0, "uname": "root", "gname": "root",
            "compression": "none", "zstd": None}
# var, var/lib, var/lib/app, var/lib/app/data, var/lib/app/data/db, var/lib/app/run.sh,
# var/lib/app/link -> run.sh, var/lib/other: the parents come from add_parents.
ENTRIES = [
    {"path": "var/lib/app/data/db", "type": "file", "source": "f", "mode": 0o644},
    {"path": "var/lib/app/run.sh", "type": "file", "source": "f", "mode": 0o755},
    {"path": "var/lib/app/link", "type": "symlink", "target": "run.sh"},
    {"path": "var/lib/other", "type": "dir", "mode": 0o755},
]


def members(tmp_path: Path, permissions, entries=ENTRIES) -> dict:
    """The layer's tar members by path, for a spec of `entries` with `permissions`."""
    (tmp_path / "f").write_bytes(b"data\n")
    spec = {"settings": SETTINGS, "entries": entries, "permissions": permissions}
    layer.build_layer(LayerSpec.from_json(spec), tmp_path, tmp_path / "out")
    with tarfile.open(tmp_path / "out/layer.tar") as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def owner(member: tarfile.TarInfo) -> tuple:
    return member.uid, member.gid, member.uname, member.gname


@pytest.mark.parametrize("pattern, path, matches", [
    ("var/lib/app", "var/lib/app", True),
    ("var/lib/app", "var/lib/app/data", False),
    ("var/lib/app/**", "var/lib/app", False),  # below app, not app itself
    ("var/lib/app/**", "var/lib/app/data", True),
    ("var/lib/app/**", "var/lib/app/data/db", True),
    ("var/**/db", "var/db", True),  # `**` inside: zero or more components
    ("var/**/db", "var/lib/app/data/db", True),
    ("var/**/db", "var/lib/app/data/db2", False),
    ("**", "var", True),
    ("**/db", "var/lib/app/data/db", True),
    ("var/*/app", "var/lib/app", True),
    ("var/*/app", "var/lib/x/app", False),  # `*` stays within one component
    ("var/lib/*.sh", "var/lib/run.sh", True),
    ("var/lib/*.sh", "var/lib/.sh", True),  # a leading dot is not special
    ("var/lib/r?n.sh", "var/lib/run.sh", True),
    ("var/lib/r?n.sh", "var/lib/rn.sh", False),
    ("var/lib/*a*b*", "var/lib/xaxxbx", True),
    ("var/lib/*a*b", "var/lib/abab_", False),
    ("var/lib/a*", "var/lib/a", True),
])
def test_globs(pattern, path, matches):
    assert _match(pattern.split("/"), 0, path.split("/"), 0) is matches


def test_rules_set_modes_and_owners_and_later_rules_win(tmp_path):
    got = members(tmp_path, [
        {"pattern": "/var/lib/app", "mode": 0o2775, "uid": 1000, "gid": 1000},
        {"pattern": "/var/lib/app/**", "uid": 1000, "gid": 1000, "uname": "app"},
        {"pattern": "/var/lib/app/run.sh", "mode": 0o4755, "uid": 0},
        {"pattern": "/var/lib/app/link", "mode": 0o600},
    ])
    # An id without its name clears the name: never "root" beside 1000.
    assert (got["var/lib/app"].mode, owner(got["var/lib/app"])) == (0o2775, (1000, 1000, "", ""))
    assert owner(got["var/lib/app/data"]) == (1000, 1000, "app", "")
    assert got["var/lib/app/data"].mode == 0o755
    assert owner(got["var/lib/app/data/db"]) == (1000, 1000, "app", "")
    # The later rule wins: uid 0 again, its name cleared; setuid kept; the group untouched.
    assert (got["var/lib/app/run.sh"].mode, owner(got["var/lib/app/run.sh"])) == (
        0o4755, (0, 1000, "", ""))
    # A symlink takes the owner, never a mode.
    link = got["var/lib/app/link"]
    assert link.issym() and link.mode == 0o777 and owner(link) == (1000, 1000, "app", "")
    for untouched in ("var", "var/lib", "var/lib/other"):
        assert (got[untouched].mode, owner(got[untouched])) == (0o755, (0, 0, "root", "root"))


def test_a_name_alone_keeps_the_id(tmp_path):
    got = members(tmp_path, [{"pattern": "/var/lib/other", "uname": "daemon", "gname": "adm"}])
    assert owner(got["var/lib/other"]) == (0, 0, "daemon", "adm")


def test_a_rule_that_matches_nothing_is_an_error_naming_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "f").write_bytes(b"")
    spec = {"settings": SETTINGS, "entries": ENTRIES, "permissions": [
        {"pattern": "/var/lib/app/**", "uid": 1},
        {"pattern": "/var/lib/other/**", "uid": 1},  # an empty directory: nothing below it
    ]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    assert main(["layer", "--spec", "spec.json", "--out", "out"]) == 1
    assert capsys.readouterr().err == (
        f"strata.core layer: error: permissions[1]: '/var/lib/other/**' {UNMATCHED}\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rule, message", [
    ({"pattern": "/var/../etc", "uid": 1}, r"escapes the image root"),
    ({"pattern": "/", "uid": 1}, r"names the image root itself"),
    ({"pattern": "/var/a**", "uid": 1}, r"'\*\*' must be a whole path component"),
    ({"pattern": "/var"}, r"sets none of mode, uid, gid, uname, gname"),
    ({"pattern": "/var", "owner": 1}, r"unknown keys \['owner'\]"),
    ({"pattern": "/var", "mode": 0o10000}, r"mode must be an integer in 0..0o7777"),
    ({"pattern": "/var", "mode": "755"}, r"mode must be an integer"),
    ({"pattern": "/var", "uid": 0o10000000}, r"uid must be an integer in 0..2097151 \(the 7 octal"),
    ({"pattern": "/var", "gid": -1}, r"gid must be an integer in 0..2097151"),
    ({"pattern": "/var", "uid": True}, r"uid must be an integer"),
    ({"pattern": "/var", "uname": "x" * 32}, r"uname must be at most 31 ASCII characters"),
    ({"pattern": "/var", "gname": "grüppe"}, r"gname must be at most 31 ASCII"),
])
def test_invalid_rules_are_rejected(rule, message):
    with pytest.raises(ValueError, match=r"permissions\[0\]: .*" + message):
        LayerSpec.from_json({"permissions": [rule]})


def test_a_spec_without_permissions_serialises_as_before():
    # The field is optional and left out when None: every existing layer keeps its cache key.
    spec = LayerSpec(LayerSettings(), parts=(("entries", ()),))
    settings = {k: v for k, v in SETTINGS.items() if v is not None}
    assert spec.to_json() == {"settings": settings}
    assert LayerSpec.from_json(spec.to_json()).permissions is None
    with_rules = LayerSpec.from_json({"permissions": [{"pattern": "/a/**", "mode": 0o700}]})
    assert with_rules.to_json()["permissions"] == [{"pattern": "a/**", "mode": 0o700}]
