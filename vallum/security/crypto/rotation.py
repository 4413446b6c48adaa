"""Object master-key rotation: a new current key, every data key re-wrapped under it, every
encrypted inline body re-wrapped too; then keys nothing is wrapped under may be retired.

Blobs are never rewritten (their data keys live in the key table, security/crypto/keytable.py);
inline bodies (kept in metadata rows, security/crypto/inline.py) carry their wrapped data key in
the row, so those rows are updated in place, compare-and-set on the old bytes so a
concurrent write of the same row is never overwritten. Both passes are batched and can be
interrupted and re-run. A key is retired only when no key-table row and no inline row is
wrapped under it: nothing can be orphaned.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from vallum.security.crypto import envelope
from vallum.security.crypto.keytable import (
    ENV_MASTER,
    KEYRING_FILE,
    KEYTABLE_FILE,
    Keyring,
    KeyTable,
    _write_keyring,
    add_master_key,
    load_keyring,
)
from vallum.security.crypto.primitives import CryptoError

META_FILE = "meta.sqlite3"
BATCH = 500


@dataclass
class RotationReport:
    new_key: str
    data_keys: int = 0              # key-table rows re-wrapped
    inline_bodies: int = 0          # inline rows re-wrapped
    retired: list[str] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)   # old key -> what is still under it


def _meta(data_dir: Path) -> sqlite3.Connection | None:
    path = Path(data_dir) / META_FILE
    if not path.exists():
        return None
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def rewrap_inline(data_dir: Path, ring: Keyring, batch: int = BATCH) -> int:
    """Re-wrap every encrypted inline body not under the ring's current key."""
    conn = _meta(data_dir)
    if conn is None:
        return 0
    done, last = 0, 0
    try:
        while True:
            rows = conn.execute("SELECT seq, inline FROM versions WHERE inline IS NOT NULL AND seq > ? "
                                "ORDER BY seq LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return done
            last = rows[-1][0]
            updates = []
            for seq, stored in rows:
                stored = bytes(stored)
                if not envelope.is_small(stored):
                    continue            # written before inline encryption: nothing to re-wrap
                kid = envelope.small_key_id(stored)
                if kid == ring.current_id:
                    continue
                fresh = envelope.rewrap_small(ring.get(kid), ring.current, stored)
                updates.append((fresh, seq, stored))
            if updates:
                conn.execute("BEGIN IMMEDIATE")
                cur = conn.executemany("UPDATE versions SET inline = ? WHERE seq = ? AND inline = ?", updates)
                conn.execute("COMMIT")
                done += cur.rowcount
    finally:
        conn.close()


def inline_under(data_dir: Path) -> dict[str, int]:
    """Master key id -> how many inline bodies are wrapped under it."""
    conn = _meta(data_dir)
    counts: dict[str, int] = {}
    if conn is None:
        return counts
    try:
        for (stored,) in conn.execute("SELECT inline FROM versions WHERE inline IS NOT NULL"):
            stored = bytes(stored)
            if envelope.is_small(stored):
                kid = envelope.small_key_id(stored)
                counts[kid] = counts.get(kid, 0) + 1
    finally:
        conn.close()
    return counts


def _check_local() -> None:
    if os.environ.get(ENV_MASTER):
        raise CryptoError(f"{ENV_MASTER} supplies the current key: rotate it in the external KMS")


def rotate(data_dir: Path) -> RotationReport:
    """Add a new current master key and re-wrap every data key and inline body under it."""
    _check_local()
    ring = add_master_key(Path(data_dir))
    report = RotationReport(ring.current_id)
    report.data_keys, report.inline_bodies = rewrap_all(data_dir, ring)
    return report


def rewrap_all(data_dir: Path, ring: Keyring) -> tuple[int, int]:
    table = KeyTable(Path(data_dir) / KEYTABLE_FILE)
    table.open()
    try:
        keys = table.rewrap(ring)
    finally:
        table.close()
    return keys, rewrap_inline(data_dir, ring)


def retire(data_dir: Path, report: RotationReport | None = None) -> RotationReport:
    """Drop every non-current master key that nothing is wrapped under any more.

    Anything written under an old key after the rotation (a gateway still running with the
    old ring) is re-wrapped first, so a retire right after the gateways restarted succeeds."""
    _check_local()
    data_dir = Path(data_dir)
    ring = load_keyring(data_dir)
    report = report or RotationReport(ring.current_id)
    keys, bodies = rewrap_all(data_dir, ring)
    report.data_keys += keys
    report.inline_bodies += bodies
    table = KeyTable(data_dir / KEYTABLE_FILE)
    table.open()
    try:
        under = {kid: table.count_under(kid) for kid in ring.keys}
    finally:
        table.close()
    for kid, n in inline_under(data_dir).items():
        under[kid] = under.get(kid, 0) + n
    keep = {}
    for kid, key in ring.keys.items():
        if kid == ring.current_id or under.get(kid, 0):
            keep[kid] = key
            if kid != ring.current_id:
                report.kept[kid] = under[kid]
        else:
            report.retired.append(kid)
    if report.retired:
        _write_keyring(data_dir / KEYRING_FILE, Keyring(ring.current_id, keep))
    return report
