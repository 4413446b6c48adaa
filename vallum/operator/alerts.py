"""Alerts: what a detector found, how sure it is, and why, in a duty officer's words."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("exfiltration", "enumeration", "credential_stuffing", "privilege_probing",
         "unusual_access", "label_climbing")
ANOMALY = "behaviour_anomaly"      # the unsupervised model's own alert kind


@dataclass
class Alert:
    ts: float
    kind: str
    entity: str                    # access key id, or source address for credential stuffing
    entity_type: str               # "principal" | "address"
    score: float                   # >= 1.0 means the detector's threshold was crossed
    reason: str                    # one sentence for the duty officer
    account: str = ""
    source: str = ""
    features: dict[str, Any] = field(default_factory=dict)
    anomaly: float = 0.0           # the unsupervised model's score of the same minute, 0..1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
