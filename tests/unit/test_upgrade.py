"""Schema versions and forward migrations (vallum/ops/schema_versions.py) on real SQLite files."""

from __future__ import annotations

import sqlite3

import pytest

from vallum.ops import schema_versions as sv
from vallum.ops.schema_versions import SchemaError, Store


def _versions(path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT store, version FROM vallum_schema"))


def _old_site(tmp_path):
    """A data directory of a release before versioning: tables, no version table."""
    for file in ("meta.sqlite3", "object-keys.sqlite3"):
        with sqlite3.connect(tmp_path / file) as db:
            db.execute("CREATE TABLE t (x INTEGER)")
            db.execute("INSERT INTO t VALUES (7)")
    return tmp_path


def test_a_new_site_is_stamped_with_the_current_versions(tmp_path):
    assert sv.prepare(tmp_path) == []
    assert _versions(tmp_path / "meta.sqlite3") == {"meta": 1, "iam": 1, "compute": 1}
    assert _versions(tmp_path / "object-keys.sqlite3") == {"keytable": 1}
    assert {f.store.name: f.version for f in sv.found_versions(tmp_path)} == {
        "meta": 1, "iam": 1, "compute": 1, "keytable": 1}
    assert sv.prepare(tmp_path) == []                     # idempotent


def test_an_older_site_asks_for_the_upgrade_command(tmp_path):
    site = _old_site(tmp_path)
    with pytest.raises(SchemaError, match=r"vallum upgrade --data-dir") as exc:
        sv.prepare(site)
    assert "meta 0 -> 1" in str(exc.value) and "--auto-upgrade" in str(exc.value)
    assert sv.upgrade(site) == ["meta 0 -> 1", "iam 0 -> 1", "compute 0 -> 1", "keytable 0 -> 1"]
    assert sv.prepare(site) == []
    with sqlite3.connect(site / "meta.sqlite3") as db:
        assert db.execute("SELECT x FROM t").fetchall() == [(7,)]


def test_auto_upgrade_runs_the_migrations(tmp_path):
    site = _old_site(tmp_path)
    assert len(sv.prepare(site, auto_upgrade=True)) == 4
    assert _versions(site / "meta.sqlite3")["meta"] == 1


def test_a_newer_schema_is_refused_and_left_alone(tmp_path):
    sv.prepare(tmp_path)
    with sqlite3.connect(tmp_path / "meta.sqlite3") as db:
        db.execute("UPDATE vallum_schema SET version = 9 WHERE store = 'iam'")
    for run in (sv.prepare, sv.upgrade, lambda d: sv.prepare(d, auto_upgrade=True)):
        with pytest.raises(SchemaError, match=r"newer Vallum: iam is version 9 \(this Vallum knows 1\)"):
            run(tmp_path)
    assert _versions(tmp_path / "meta.sqlite3")["iam"] == 9


STORE_V1 = Store("things", "things.sqlite3", 1, {1: ()})
STORE_V3 = Store("things", "things.sqlite3", 3, {
    1: (),
    2: ("ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 0",
        "UPDATE things SET size = length(name)"),
    3: ("CREATE INDEX ix_things_size ON things (size)",)})


def _things(tmp_path):
    path = tmp_path / "things.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE things (name TEXT)")
        db.executemany("INSERT INTO things VALUES (?)", [("a",), ("bbb",)])
    assert sv.upgrade(tmp_path, [STORE_V1]) == ["things 0 -> 1"]
    return path


def test_migrations_run_in_order_and_transform_the_data(tmp_path):
    path = _things(tmp_path)
    with pytest.raises(SchemaError, match="things 1 -> 3"):
        sv.prepare(tmp_path, stores=[STORE_V3])
    assert sv.upgrade(tmp_path, [STORE_V3]) == ["things 1 -> 2", "things 2 -> 3"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name, size FROM things ORDER BY name").fetchall() == [("a", 1), ("bbb", 3)]
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'ix_things_size'").fetchone()
    assert _versions(path) == {"things": 3}


def test_a_failing_migration_changes_nothing(tmp_path):
    path = _things(tmp_path)
    broken = Store("things", "things.sqlite3", 3, {**STORE_V3.migrations, 3: ("CREATE INDEX broken ON nowhere (x)",)})
    with pytest.raises(SchemaError, match="nothing changed"):
        sv.upgrade(tmp_path, [broken])
    with sqlite3.connect(path) as db:
        assert [c[1] for c in db.execute("PRAGMA table_info(things)")] == ["name"]   # step 2 rolled back
    assert _versions(path) == {"things": 1}


def test_a_missing_migration_is_refused(tmp_path):
    path = _things(tmp_path)
    gap = Store("things", "things.sqlite3", 2, {1: ()})
    with pytest.raises(SchemaError, match="no migration of things to version 2"):
        sv.upgrade(tmp_path, [gap])
    assert _versions(path) == {"things": 1}


def test_an_unreadable_database_is_a_schema_error(tmp_path):
    (tmp_path / "meta.sqlite3").write_bytes(b"not a database at all, just text" * 100)
    with pytest.raises(SchemaError, match="cannot read its schema version"):
        sv.prepare(tmp_path)
