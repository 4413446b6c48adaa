"""Deleting a function together with what points at it: its object triggers and the
bucket-notification entries that target it.

Why here and in SQL: deleting a function must remove, in the same transaction, its
triggers and the bucket-notification entries that target it; otherwise
GetBucketNotificationConfiguration would keep listing a target that no longer exists,
and a later function of the same name would silently inherit those events. The compute
tables and the ``buckets`` table live in the same SQLite file (vallum.compute.db), so
one ``BEGIN IMMEDIATE`` transaction covers both.

The stored document is the XML the client sent (vallum/s3/handlers/notification.py);
only the LambdaFunctionConfiguration / CloudFunctionConfiguration elements whose target
names the function are removed, everything else is kept as it was.
"""

from __future__ import annotations

import logging
import sqlite3
from xml.etree import ElementTree as ET  # noqa: S405 - serializing only; parsing is defusedxml

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from vallum.compute.spec import SpecError
from vallum.meta import codec

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


def drop_function(conn: sqlite3.Connection, bucket: str, function: str) -> int:
    """Remove ``function``'s entries from ``bucket``'s stored configuration, inside the
    caller's transaction; returns how many entries went."""
    row = conn.execute("SELECT config FROM buckets WHERE name=?", (bucket,)).fetchone()
    if row is None:
        return 0
    config = codec.load(row[0])
    text = config.get(CONFIG_KEY)
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
        config.pop(CONFIG_KEY)
    else:
        config[CONFIG_KEY] = kept
    conn.execute("UPDATE buckets SET config=? WHERE name=?", (codec.dump(config), bucket))
    return removed


def delete_function(conn: sqlite3.Connection, account: str, name: str) -> list[str]:
    """In the caller's transaction: the function row, its object triggers (API- and
    notification-made) and its entries in those buckets' notification documents. Any
    failure raises and the caller's savepoint rolls all of it back. Returns the trigger ids."""
    if not conn.execute("DELETE FROM compute_functions WHERE account=? AND name=?",
                        (account, name)).rowcount:
        raise SpecError(f"no such function {name!r}", "NoSuchFunction", 404)
    rows = conn.execute("SELECT id, bucket, source FROM compute_triggers WHERE account=? AND "
                        "kind='object' AND function=? ORDER BY created, id",
                        (account, name)).fetchall()
    conn.execute("DELETE FROM compute_triggers WHERE account=? AND kind='object' AND function=?",
                 (account, name))
    for bucket in sorted({r[1] for r in rows if r[2] == "notification"}):
        drop_function(conn, bucket, name)
    return [r[0] for r in rows]
