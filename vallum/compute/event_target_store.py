"""The event targets an account's admins register, the bucket routes that name them, and
the dead letters they can read back (tables in compute/schema.py, rules in
event_targets.py). One instance per gateway, held by the compute service."""

from __future__ import annotations

import json
from typing import Any

from vallum.compute import event_targets as et
from vallum.compute import levels
from vallum.compute.spec import SpecError


class EventTargetStore:
    def __init__(self, db: Any, services: Any) -> None:
        self.db = db
        self.services = services
        self.region = services.config.region

    @property
    def ring(self) -> Any:
        return getattr(getattr(self.services, "blobs", None), "ring", None)

    async def put(self, principal: Any, doc: Any) -> dict[str, Any]:
        """Create or replace a target of the caller's account; a new target's webhook
        secret is in the answer, once (a replaced one keeps its secret)."""
        clearance = levels._clearance(principal)
        row = et.validate(doc, self.region, principal.account, principal.arn, clearance)
        fresh = row["secret"]
        row["secret"] = et.seal(self.ring, row["arn"], fresh)

        def tx(conn: Any) -> bool:
            old = conn.execute("SELECT kind, secret FROM event_targets WHERE arn=?",
                               (row["arn"],)).fetchone()
            if old is not None:
                if old[0] != row["kind"]:
                    raise SpecError(f"{row['arn']} is a {old[0]} target; delete it to change "
                                    "its type", "TargetTypeMismatch", 409)
                if row["kind"] == "webhook":
                    row["secret"] = old[1]
                conn.execute("UPDATE event_targets SET config=?, secret=?, ceiling=?, owner=? "
                             "WHERE arn=?", (row["config"], row["secret"], row["ceiling"],
                                             row["owner"], row["arn"]))
                return False
            cols = ", ".join(row)
            conn.execute(f"INSERT INTO event_targets ({cols}) VALUES "  # noqa: S608 - names from validate()
                         f"({', '.join('?' * len(row))})", list(row.values()))
            return True

        created = await self.db.write(tx)
        out = et.public(row)
        if created and row["kind"] == "webhook":
            out["secret"] = fresh
        out["created_now"] = created
        return out

    def targets(self, account: str) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM event_targets WHERE account=? ORDER BY name",
                             (account,))
        return [et.public(r) for r in rows]

    async def delete(self, account: str, name: str) -> dict[str, Any]:
        arn = et.arn_of(self.region, account, name)

        def tx(conn: Any) -> int:
            used = conn.execute("SELECT bucket FROM event_routes WHERE target=? LIMIT 1",
                                (arn,)).fetchone()
            if used is not None:
                raise SpecError(f"{arn} is named by the notification configuration of bucket "
                                f"{used[0]}; change that first", "TargetInUse", 409)
            conn.execute("DELETE FROM event_deliveries WHERE target=?", (arn,))
            n: int = conn.execute("DELETE FROM event_targets WHERE arn=? AND account=?",
                                  (arn, account)).rowcount
            return n

        if not await self.db.write(tx):
            raise SpecError(f"no such notification target {arn}", "NoSuchTarget", 404)
        return {"deleted": arn}

    def dead_letters(self, principal: Any, target: str | None, limit: int) -> list[dict[str, Any]]:
        """The account's dead letters the caller may read (its level dominates the label)."""
        reader = levels.reader_level(principal, None)
        sql, args = "SELECT * FROM event_dead_letters WHERE account=?", [principal.account]
        if target:
            sql, args = sql + " AND target=?", [*args, target]
        rows = self.db.query(sql + " ORDER BY id DESC LIMIT ?", (*args, max(1, min(limit, 1000))))
        return [{"id": r["id"], "target": r["target"], "bucket": r["bucket"], "key": r["key"],
                 "label": r["label"], "attempts": r["attempts"], "error": r["error"],
                 "created": r["created"], "event": json.loads(r["body"])}
                for r in rows if levels.sees(reader, r["label"])]

    # ------------------------------------------------------------ bucket routes

    def route_buckets(self) -> set[str]:
        return {r["bucket"] for r in self.db.query("SELECT DISTINCT bucket FROM event_routes")}

    def check_routes(self, bucket: str, owner: str, wanted: list[dict]) -> list[dict[str, Any]]:
        """The rows a bucket's QueueConfigurations make; SpecError before anything changes."""
        arns = sorted({w["target"] for w in wanted})
        known = {}
        for arn in arns:
            rows = self.db.query("SELECT arn, account FROM event_targets WHERE arn=?", (arn,))
            if rows:
                known[arn] = rows[0]
        return et.route_rows(bucket, owner, wanted, known)

    async def set_routes(self, bucket: str, rows: list[dict[str, Any]]) -> None:
        def tx(conn: Any) -> None:
            conn.execute("DELETE FROM event_routes WHERE bucket=?", (bucket,))
            for row in rows:
                conn.execute("INSERT INTO event_routes (id, bucket, account, target, config_id, "
                             "prefix, suffix, events) VALUES (?,?,?,?,?,?,?,?)",
                             tuple(row[k] for k in ("id", "bucket", "account", "target",
                                                    "config_id", "prefix", "suffix", "events")))

        await self.db.write(tx)

    async def owners(self, seqs: list[int]) -> dict[str, str | None]:
        """bucket -> owner account now, for the buckets of outbox events ``seqs`` that
        have routes (the fan-out sends only to the owner's targets)."""
        if not seqs:
            return {}
        marks = ",".join("?" * len(seqs))
        rows = self.db.query(f"SELECT DISTINCT o.bucket FROM compute_outbox o JOIN event_routes r "  # noqa: S608 - placeholders only
                             f"ON r.bucket=o.bucket WHERE o.seq IN ({marks})", list(seqs))
        out: dict[str, str | None] = {}
        for r in rows:
            # A bucket deleted (and maybe made again) since has no configuration naming
            # the target any more: its events go nowhere, whoever owns it now.
            bucket = await self.services.meta.get_bucket(r["bucket"])
            configured = bucket is not None and bool(bucket.config.get("notification"))
            out[r["bucket"]] = bucket.owner if bucket is not None and configured else None
        return out

    def fan_out(self, conn: Any, seqs: list[int], owners: dict[str, str | None]) -> int:
        """Deliveries for outbox events ``seqs``, in the caller's transaction (the
        dispatcher's, which settles them)."""
        return et.fan_out(conn, seqs, owners)[0]

    def target(self, arn: str) -> dict[str, Any] | None:
        """A target with its secret opened, for the sender."""
        rows = self.db.query("SELECT * FROM event_targets WHERE arn=?", (arn,))
        if not rows:
            return None
        r = rows[0]
        return {"arn": arn, "account": r["account"], "kind": r["kind"],
                "secret": et.unseal(self.ring, arn, r["secret"]), **json.loads(r["config"])}
