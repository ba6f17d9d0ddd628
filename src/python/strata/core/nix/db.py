"""The `nix-db` subcommand: the Nix database that registers closures' store paths as valid, as
dockerTools' `includeNixDB` makes it (`nix-store --load-db`, registration times reset), so that
`nix` in the image knows its store.

    DIR/nix/var/nix/db/db.sqlite   Nix's schema 10 (Nix 2.8's src/libstore/schema.sql)
    DIR/nix/var/nix/db/schema      "10"

Same closures, same bytes (for one SQLite library): paths are inserted in sorted order (ids
1..N), each path's references in sorted order, one transaction, rollback journal (no WAL
files beside it), and every registration time the one given.
"""

import json
import os
import sqlite3

from strata.core.atomic import write_dir_atomically
from strata.core.errors import InvalidInput, UsageError
from strata.core.nix.spec import NixClosure

SCHEMA_VERSION = 10
DB_DIR = "nix/var/nix/db"

# Nix's schema, as Nix 2.8 creates it (a format contract: Nix opens this file as its own).
SCHEMA = """
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer, -- null implies "false"
    sigs             text, -- space-separated
    ca               text -- if not null, an assertion that the path is content-addressed; see ValidPathInfo
);

create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);

create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);

-- Paths can refer to themselves, causing a tuple (N, N) in the Refs
-- table.  This causes a deletion of the corresponding row in
-- ValidPaths to cause a foreign key constraint violation (due to `on
-- delete restrict' on the `reference' column).  Therefore, explicitly
-- get rid of self-references.
create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;

create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null, -- symbolic output id, usually "out"
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);

create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
"""


def merge_closures(closures) -> list:
    """Every store path of `closures` (strata.core.nix.spec.NixClosure), sorted by path; a path
    two closures describe differently is an error."""
    infos = {}
    for closure in closures:
        for info in closure.paths:
            known = infos.setdefault(info.path, info)
            if known != info:
                raise InvalidInput(f"two closures disagree about {info.path}: {known} and {info}")
    return [infos[path] for path in sorted(infos)]


def write_db(path: str, infos: list, registration_time: int) -> None:
    """Nix's database at `path` (a new file) registering `infos` (sorted by path) as valid,
    as `nix-store --load-db` registers paths: not ultimately trusted, without signatures or
    content address."""
    ids = {info.path: index for index, info in enumerate(infos, 1)}
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("pragma journal_mode = delete")
        db.executescript("begin;" + SCHEMA)  # one transaction: the schema and every row
        db.executemany(
            "insert into ValidPaths (id, path, hash, registrationTime, deriver, narSize) "
            "values (?, ?, ?, ?, ?, ?)",
            [(ids[info.path], info.path, info.nar_hash, registration_time, info.deriver,
              info.nar_size or None) for info in infos])
        db.executemany(
            "insert into Refs (referrer, reference) values (?, ?)",
            [(ids[info.path], ids[reference]) for info in infos
             for reference in info.references])
        db.execute("commit")
    finally:
        db.close()


def nix_db_command(options) -> None:
    """`nix-db --closure FILE... --registration-time SECONDS --out DIR`."""
    if not options.closure:
        raise UsageError("give at least one --closure")
    try:
        registration_time = int(options.registration_time)
    except ValueError:
        registration_time = -1
    if registration_time < 0:
        raise UsageError(f"--registration-time must be seconds since the epoch: "
                         f"{options.registration_time!r}")
    closures = []
    for name in options.closure:
        with open(name, encoding="utf-8") as f:
            try:
                closures.append(NixClosure.from_json(json.load(f), name))
            except json.JSONDecodeError as e:
                raise InvalidInput(f"{name}: not JSON: {e}") from None
    infos = merge_closures(closures)

    def write(tmp: str) -> None:
        write_db(os.path.join(tmp, "db.sqlite"), infos, registration_time)
        with open(os.path.join(tmp, "schema"), "w", encoding="ascii") as f:
            f.write(str(SCHEMA_VERSION))

    db_dir = os.path.join(options.out, DB_DIR)
    os.makedirs(os.path.dirname(db_dir), exist_ok=True)
    write_dir_atomically(db_dir, write)
