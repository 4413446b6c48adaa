"""Audit test helpers."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.server import server_log


def printed_fingerprint(data_dir: Path) -> str:
    """The audit key fingerprint `vallum serve` printed at first start (what an operator pins)."""
    text = server_log(Path(data_dir)).read_text()
    return re.search(r"Audit fingerprint:\s+([0-9a-f]{64})", text).group(1)
