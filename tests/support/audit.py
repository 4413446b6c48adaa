"""Audit test helpers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.server import server_log


def printed_fingerprint(data_dir: Path) -> str:
    """The audit key fingerprint `vallum serve` printed at first start (what an operator pins)."""
    text = server_log(Path(data_dir)).read_text()
    return re.search(r"Audit fingerprint:\s+([0-9a-f]{64})", text).group(1)


def audit_records(data_dir: Path) -> dict[str, dict]:
    """The server's audit records by request id."""
    log = Path(data_dir) / "audit" / "audit.log"
    recs = [json.loads(x) for x in log.read_bytes().rstrip(b"\0").splitlines() if x.strip()]
    return {r["request_id"]: r for r in recs if r.get("request_id")}
