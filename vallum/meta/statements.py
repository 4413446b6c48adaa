"""The statements both SQL metadata backends run, built once from the tables of schema.py.

Each backend compiles them for its dialect (``make``: a statement, the column keys an
INSERT or UPDATE takes, and an index hint SQLite honours) and adds the few it needs alone
(PostgreSQL's row locks and upsert).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from vallum.meta import schema

# make(statement, column_keys=None, index=(table, index name) or None) -> compiled statement
Make = Callable[..., Any]


def _p(name: str) -> Any:
    return sa.bindparam(name)


def build(make: Make) -> Any:
    """Every statement, compiled by ``make`` (the backend's dialect)."""
    b, v, u, p = schema.buckets, schema.versions, schema.uploads, schema.parts
    one: Any = sa.literal_column("1")
    zero: Any = sa.literal_column("0")

    def insert(table: sa.Table, skip: tuple[str, ...] = ("seq",)) -> Any:
        return make(sa.insert(table), [c.name for c in table.c if c.name not in skip])

    def scans(table: sa.Table, order: list[Any], *extra: Any, index: str | None = None,
              columns: list[Any] | None = None) -> dict[tuple[bool, bool], Any]:
        """Four variants: start inclusive or not, with or without an end bound."""
        out = {}
        for inclusive in (True, False):
            for bounded in (True, False):
                cond = [table.c.bucket == _p("bucket"), *extra,
                        table.c.key >= _p("start") if inclusive else table.c.key > _p("start")]
                if bounded:
                    cond.append(table.c.key < _p("end"))
                out[(inclusive, bounded)] = make(
                    sa.select(*(columns or table.columns)).where(*cond).order_by(*order)
                    .limit(_p("n")),
                    index=(table.name, index) if index else None)
        return out

    same_key = (v.c.bucket == _p("bucket"), v.c.key == _p("key"))
    up_key = (u.c.bucket == _p("bucket"), u.c.key == _p("key"))
    ns = type("Statements", (), {})()
    ns.bucket_get = make(sa.select(b).where(b.c.name == _p("name")))
    ns.bucket_exists = make(sa.select(b.c.name).where(b.c.name == _p("name")))
    ns.bucket_list = make(sa.select(b).order_by(b.c.name))
    ns.bucket_list_owner = make(sa.select(b).where(b.c.owner == _p("owner")).order_by(b.c.name))
    ns.bucket_insert = insert(b, ())
    ns.bucket_update = make(sa.update(b).where(b.c.name == _p("w_name")),
                             ["versioning", "object_lock", "config"])
    ns.bucket_delete = make(sa.delete(b).where(b.c.name == _p("name")))
    ns.bucket_any_version = make(sa.select(v.c.seq).where(v.c.bucket == _p("bucket")).limit(1))

    ns.ver_latest = make(sa.select(v).where(*same_key).order_by(v.c.seq.desc()).limit(1))
    ns.ver_get = make(sa.select(v).where(*same_key, v.c.version_id == _p("version_id")))
    ns.ver_seq_of = make(sa.select(v.c.seq).where(*same_key,
                                                   v.c.version_id == _p("version_id")))
    ns.ver_insert = insert(v)
    ns.ver_delete = make(sa.delete(v).where(v.c.seq == _p("seq")))
    ns.ver_clear_latest = make(sa.update(v).where(v.c.seq == _p("w_seq")).values(is_latest=zero))
    ns.ver_set_latest = make(sa.update(v).where(v.c.seq == _p("w_seq")).values(is_latest=one))
    ns.ver_update_meta = make(
        sa.update(v).where(v.c.bucket == _p("w_bucket"), v.c.key == _p("w_key"),
                           v.c.version_id == _p("w_version_id")),
        ["system_meta", "user_meta", "extra"])
    # Listings return neither inline bodies nor HTTP/user metadata (see
    # MetaStore.list_objects): a page would otherwise copy every small body out of the
    # database and decode two JSON documents per entry that no listing shows.
    unlisted = ("inline", "system_meta", "user_meta")
    listed = [sa.null().label(c.name) if c.name in unlisted else c for c in v.columns]
    ns.ver_rest_of_key = make(sa.select(*listed).where(*same_key, v.c.seq < _p("seq"))
                               .order_by(v.c.seq.desc()).limit(_p("n")))
    ns.ver_scan = scans(v, [v.c.key, v.c.seq.desc()], columns=listed)
    # Must repeat the partial index's WHERE (is_latest = 1 AND delete_marker = 0); without
    # statistics the planner would rather walk every version through ux_versions_id.
    ns.obj_scan = scans(v, [v.c.key], v.c.is_latest == one, v.c.delete_marker == zero,
                        index="ix_versions_visible", columns=listed)
    ns.ver_blob_refs = make(sa.select(v.c.blob_id, v.c.parts)
                             .where(sa.or_(v.c.blob_id.is_not(None), v.c.parts.is_not(None))))

    ns.upload_insert = insert(u)
    ns.upload_get = make(sa.select(u).where(u.c.upload_id == _p("upload_id")))
    ns.upload_delete = make(sa.delete(u).where(u.c.upload_id == _p("upload_id")))
    ns.upload_ids_of_bucket = make(sa.select(u.c.upload_id).where(u.c.bucket == _p("bucket"))
                                    .order_by(u.c.seq))
    ns.up_scan = scans(u, [u.c.key, u.c.seq])
    ns.up_rest_of_key = make(sa.select(u).where(*up_key, u.c.seq > _p("seq"))
                              .order_by(u.c.seq).limit(_p("n")))

    part_cols = [c for c in p.c if c.name != "upload_id"]
    ns.part_insert = insert(p, ())
    ns.part_blob = make(sa.select(p.c.blob_id).where(p.c.upload_id == _p("upload_id"),
                                                      p.c.part_number == _p("part_number")))
    ns.part_delete = make(sa.delete(p).where(p.c.upload_id == _p("upload_id"),
                                              p.c.part_number == _p("part_number")))
    ns.parts_list = make(sa.select(*part_cols)
                          .where(p.c.upload_id == _p("upload_id"),
                                 p.c.part_number > _p("marker"))
                          .order_by(p.c.part_number).limit(_p("n")))
    ns.part_blobs_of_upload = make(sa.select(p.c.blob_id).where(p.c.upload_id == _p("upload_id"))
                                    .order_by(p.c.part_number))
    ns.parts_delete_upload = make(sa.delete(p).where(p.c.upload_id == _p("upload_id")))
    ns.part_blob_refs = make(sa.select(p.c.blob_id))
    return ns
