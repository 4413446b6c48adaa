"""External event targets (webhook, NATS): registration, bucket routes, and the fan-out
of outbox events into per-target deliveries.

Why here and not in the S3 handlers: an event reaches a target only through the outbox
the S3 write made durable before answering (object_events.py); the dispatcher settles
each outbox event and, in the same transaction, writes one delivery row per matching
target (``fan_out``), so an event is never lost between the two. What a target hears of
is decided then: its account must own the bucket (IAM), and the object's label must be
dominated by the target's ceiling (MAC); a withheld event only raises a counter.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from vallum.compute import levels
from vallum.compute.object_events import KNOWN_PATTERNS, event_matches
from vallum.compute.spec import SpecError
from vallum.security.crypto import envelope

KINDS = ("webhook", "nats")
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SUBJECT = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
ARN = re.compile(r"arn:vallum:sqs:([a-z0-9-]*):([^:]+):([A-Za-z0-9_-]{1,64})")
LIMITS = {"max_attempts": (1, 50, 8), "backoff_s": (0.05, 600.0, 1.0),
          "timeout_s": (0.5, 60.0, 10.0)}
_FIELDS = {"name", "type", "endpoint", "subject", "token", "ceiling", *LIMITS}


def arn_of(region: str, account: str, name: str) -> str:
    return f"arn:vallum:sqs:{region}:{account}:{name}"


def _url(text: Any, schemes: tuple[str, ...]) -> str:
    if not isinstance(text, str) or not text or len(text) > 2048:
        raise SpecError("endpoint must be a URL of at most 2048 characters")
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise SpecError("endpoint must not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise SpecError(f"endpoint is not a valid URL: {exc}") from None
    if parts.scheme not in schemes:
        raise SpecError(f"endpoint scheme must be one of: {', '.join(schemes)}")
    if not parts.hostname:
        raise SpecError("endpoint needs a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise SpecError("endpoint must not carry credentials (use the target's token or secret)")
    if parts.fragment:
        raise SpecError("endpoint must not carry a fragment")
    if port == 0:
        raise SpecError("endpoint port must be 1-65535")
    if schemes[0] == "nats" and (parts.path not in ("", "/") or parts.query):
        raise SpecError("a NATS endpoint is nats://HOST:PORT or tls://HOST:PORT")
    return text


def validate(doc: Any, region: str, account: str, owner: str,
             clearance: Any) -> dict[str, Any]:
    """A target row from an admin's PutNotificationTarget document; SpecError (400) says
    which field is wrong, AccessDenied (403) a ceiling above the caller's ``clearance``
    (None: system high). Nothing is stored here."""
    if not isinstance(doc, dict):
        raise SpecError("a target must be a JSON object")
    unknown = set(doc) - _FIELDS - {"account"}
    if unknown:
        raise SpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
    name, kind = doc.get("name"), doc.get("type")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError("name must be 1-64 of A-Z a-z 0-9 _ -")
    if kind not in KINDS:
        raise SpecError(f"type must be one of: {', '.join(KINDS)}")
    config: dict[str, Any] = {}
    for knob, (lo, hi, default) in LIMITS.items():
        value = doc.get(knob, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise SpecError(f"{knob} must be a number from {lo} to {hi}")
        config[knob] = int(value) if knob == "max_attempts" else float(value)
    if kind == "webhook":
        if "subject" in doc or "token" in doc:
            raise SpecError("subject and token are NATS fields; a webhook is signed with "
                            "the secret returned at creation")
        config["endpoint"] = _url(doc.get("endpoint"), ("https", "http"))
        secret = secrets.token_hex(32)
    else:
        config["endpoint"] = _url(doc.get("endpoint"), ("nats", "tls"))
        subject = doc.get("subject")
        if not isinstance(subject, str) or len(subject) > 255 or not SUBJECT.fullmatch(subject):
            raise SpecError("subject must be a NATS subject without wildcards (e.g. vallum.events)")
        config["subject"] = subject
        token = doc.get("token")
        if token is not None and (not isinstance(token, str) or not token or len(token) > 4096
                                  or any(c.isspace() for c in token)):
            raise SpecError("token must be a non-empty string without spaces")
        secret = token or ""
    ceiling = levels.label(doc.get("ceiling"), "ceiling")
    if clearance is not None and not clearance.dominates(ceiling):
        raise SpecError(f"ceiling {ceiling.banner()} is above your clearance", "AccessDenied", 403)
    return {"arn": arn_of(region, account, name), "account": account, "name": name,
            "kind": kind, "config": json.dumps(config, sort_keys=True), "secret": secret,
            "ceiling": ceiling.banner(), "owner": owner, "withheld": 0, "failed": 0,
            "created": time.time()}


def seal(ring: Any, arn: str, secret: str) -> bytes | None:
    """The stored form of a target's secret: sealed under the keyring when there is one,
    bound to the target's ARN (a row copied to another target does not open)."""
    if not secret:
        return None
    if ring is None:
        return secret.encode()
    return envelope.encrypt_small(ring.current, secret.encode(), b"event-target:" + arn.encode())


def unseal(ring: Any, arn: str, stored: bytes | None) -> str:
    if not stored:
        return ""
    if not envelope.is_small(bytes(stored)):
        return bytes(stored).decode()
    if ring is None:
        raise SpecError(f"{arn}: secret is sealed but encryption is off", "InternalError", 500)
    key = ring.get(envelope.small_key_id(bytes(stored)))
    return envelope.decrypt_small(key, bytes(stored), b"event-target:" + arn.encode()).decode()


def public(row: Any) -> dict[str, Any]:
    """What ListNotificationTargets shows: never the secret or token."""
    config = json.loads(row["config"])
    return {"arn": row["arn"], "name": row["name"], "type": row["kind"],
            "ceiling": row["ceiling"], "owner": row["owner"], "withheld": row["withheld"],
            "failed": row["failed"],
            "created": row["created"], **config}


def parse_arn(text: str) -> tuple[str, str, str] | None:
    """(region, account, name) of a target ARN; None when it is not one."""
    m = ARN.fullmatch(text or "")
    return (m.group(1), m.group(2), m.group(3)) if m else None


def route_rows(bucket: str, owner: str, wanted: list[dict[str, Any]],
               known: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a bucket's QueueConfigurations; ``known``: ARN -> target row of the bucket
    owner's account. Another account's target answers as an unknown one (InvalidArgument)."""
    rows = []
    for w in wanted:
        if w["target"] not in known or known[w["target"]]["account"] != owner:
            raise SpecError(f"{w['target']} is not a notification target of the bucket "
                            "owner's account", "InvalidArgument")
        if any(e not in KNOWN_PATTERNS for e in w["events"]):
            raise SpecError(f"events must be among: {', '.join(KNOWN_PATTERNS)}", "InvalidArgument")
        rows.append({"id": "q-" + uuid.uuid4().hex[:16], "bucket": bucket, "account": owner,
                     "target": w["target"], "config_id": w.get("id") or "",
                     "prefix": w["prefix"], "suffix": w["suffix"],
                     "events": json.dumps(w["events"])})
    return rows


def fan_out(conn: Any, seqs: list[int],
            owners: dict[str, str | None]) -> tuple[int, dict[str, int]]:
    """Inside the transaction that settles outbox events ``seqs``: one delivery per
    (still pending event, matching route) whose target may hear of it. ``owners``: bucket
    -> its owner account now (None: gone). Returns (deliveries, withheld per target)."""
    if not seqs:
        return 0, {}
    marks = ",".join("?" * len(seqs))
    events = conn.execute(f"SELECT seq, bucket, event, label FROM compute_outbox WHERE done=0 "  # noqa: S608 - placeholders only
                          f"AND seq IN ({marks}) ORDER BY seq", list(seqs)).fetchall()
    routes: dict[str, list[Any]] = {}
    made, withheld = 0, dict[str, int]()
    now = time.time()
    for _seq, bucket, event, label in events:
        if bucket not in routes:
            routes[bucket] = conn.execute(
                "SELECT r.target, r.account, r.config_id, r.prefix, r.suffix, r.events, "
                "t.ceiling FROM event_routes r JOIN event_targets t ON t.arn=r.target "
                "WHERE r.bucket=? ORDER BY r.id", (bucket,)).fetchall()
        record = json.loads(event)
        key = unquote_plus(record["s3"]["object"]["key"])
        for target, account, config_id, prefix, suffix, pats, ceiling in routes[bucket]:
            if not (key.startswith(prefix) and key.endswith(suffix)
                    and event_matches(json.loads(pats), record["eventName"])):
                continue
            if owners.get(bucket) != account:          # IAM: only the bucket owner's targets
                continue
            if label is None or not levels.label(ceiling).dominates(levels.label(label)):
                withheld[target] = withheld.get(target, 0) + 1     # MAC: count only
                continue
            rec = json.loads(event)
            rec["s3"]["configurationId"] = config_id
            rec["s3"]["object"]["vallumLabel"] = label
            body = json.dumps({"EventName": "s3:" + record["eventName"],
                               "Key": f"{bucket}/{key}", "Records": [rec]})
            conn.execute("INSERT INTO event_deliveries (target, bucket, key, label, body, "
                         "attempts, next_try, created) VALUES (?,?,?,?,?,0,?,?)",
                         (target, bucket, key, label, body, now, now))
            made += 1
    for target, n in withheld.items():
        conn.execute("UPDATE event_targets SET withheld=withheld+? WHERE arn=?", (n, target))
    return made, withheld

