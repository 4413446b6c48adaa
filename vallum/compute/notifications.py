"""Deleting a function together with what points at it: its object triggers and the
bucket-notification entries that target it.

Why: GetBucketNotificationConfiguration would otherwise keep listing a target that no
longer exists, and a later function of the same name would silently inherit those
events. The bucket documents are the metadata store's (SQLite or PostgreSQL), the
triggers the compute store's, so the two are edited in order: the documents first,
through the MetaStore, then the function and trigger rows in one transaction. Both
steps are idempotent, so a delete that failed part way is finished by deleting again.

The stored document is the XML the client sent (vallum/s3/handlers/notification.py);
only the LambdaFunctionConfiguration / CloudFunctionConfiguration elements whose target
names the function are removed, everything else is kept as it was.
"""

from __future__ import annotations

import logging
from typing import Any
from xml.etree import ElementTree as ET  # noqa: S405 - serializing only; parsing is defusedxml

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from vallum.compute.spec import SpecError

log = logging.getLogger("vallum.compute")

CONFIG_KEY = "notification"          # the bucket.config key notification.py stores under
_TARGET_TAGS = {"LambdaFunctionConfiguration": ("LambdaFunctionArn", "CloudFunction"),
                "CloudFunctionConfiguration": ("CloudFunction",)}


def target_function(target: str) -> str | None:
    """The function name a notification target names (the forms notification.py accepts)."""
    if not target.startswith("arn:"):
        return target
    parts = target.split(":")
    if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
        return parts[6]
    if len(parts) == 4 and parts[1] == "vallum" and parts[2] == "function":
        return parts[3]
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def without_function(text: str, function: str) -> tuple[str | None, int]:
    """(the document without the entries targeting ``function`` or None when nothing is
    left, how many entries were removed)."""
    root = SafeET.fromstring(text.encode("utf-8"))
    removed = 0
    for elem in list(root):
        names = _TARGET_TAGS.get(_local(elem.tag))
        if names is None:
            continue
        targets = [(c.text or "").strip() for c in elem if _local(c.tag) in names]
        if any(target_function(t) == function for t in targets):
            root.remove(elem)
            removed += 1
    if not removed:
        return text, 0
    if not len(root):
        return None, removed
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else None
    try:
        body = ET.tostring(root, encoding="unicode", default_namespace=ns)
    except ValueError:       # elements outside that namespace: keep explicit prefixes
        body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body, removed


async def drop_function(meta: Any, bucket: str, function: str) -> int:
    """Remove ``function``'s entries from ``bucket``'s stored configuration through the
    metadata store (SQLite or PostgreSQL: wherever the buckets are); returns how many went."""
    record = await meta.get_bucket(bucket)
    if record is None:
        return 0
    text = record.config.get(CONFIG_KEY)
    if not text:
        return 0
    try:
        kept, removed = without_function(text, function)
    except (ET.ParseError, DefusedXmlException):       # never stored by the API; must not make the function undeletable
        log.warning("bucket %s: unreadable notification configuration left as is", bucket)
        return 0
    if not removed:
        return 0
    if kept is None:
        record.config.pop(CONFIG_KEY)
    else:
        record.config[CONFIG_KEY] = kept
    await meta.update_bucket(record)
    return removed


def notified_buckets(db: Any, account: str, name: str) -> list[str]:
    """The buckets whose notification configuration makes triggers for this function."""
    return sorted(r[0] for r in db.query(
        "SELECT DISTINCT bucket FROM compute_triggers WHERE account=? AND kind='object' AND "
        "function=? AND source='notification'", (account, name)))


async def strip_function(db: Any, meta: Any, account: str, name: str) -> int:
    """Step one of deleting a function: its entries leave the notification documents of the
    buckets its notification triggers watch. Before the rows go (step two), so a failure
    part way leaves the function whole and deleting it again finishes the job."""
    removed = 0
    for bucket in notified_buckets(db, account, name):
        removed += await drop_function(meta, bucket, name)
    return removed


def delete_function(conn: Any, account: str, name: str) -> list[str]:
    """In the caller's transaction: the function row and its object triggers (API- and
    notification-made). Returns the trigger ids."""
    if not conn.execute("DELETE FROM compute_functions WHERE account=? AND name=?",
                        (account, name)).rowcount:
        raise SpecError(f"no such function {name!r}", "NoSuchFunction", 404)
    rows = conn.execute("SELECT id FROM compute_triggers WHERE account=? AND "
                        "kind='object' AND function=? ORDER BY created, id",
                        (account, name)).fetchall()
    conn.execute("DELETE FROM compute_triggers WHERE account=? AND kind='object' AND function=?",
                 (account, name))
    return [r[0] for r in rows]
