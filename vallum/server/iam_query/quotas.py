"""AWS IAM's policy size quotas, counted as AWS counts them (characters, whitespace excluded).

Why: Terraform and scripts written against AWS expect the same refusals (LimitExceeded)
for the same documents; the policy parser's own cap (policy.MAX_POLICY_BYTES) is wider.
"""

from __future__ import annotations

from vallum.iam.directory import LimitExceeded

MANAGED = 6144
TRUST = 2048
INLINE = {"user": 2048, "group": 5120, "role": 10240}   # all inline policies of one entity


def size(document: str) -> int:
    return sum(1 for ch in document if not ch.isspace())


def managed(document: str) -> None:
    if size(document) > MANAGED:
        raise LimitExceeded(f"Cannot exceed quota for PolicySize: {MANAGED}")


def trust(document: str) -> None:
    if size(document) > TRUST:
        raise LimitExceeded(f"Cannot exceed quota for ACLSizePerRole: {TRUST}")


def inline(kind: str, target: str, document: str, others: list[str]) -> None:
    """``others``: the entity's other inline documents (the one being replaced left out)."""
    if size(document) + sum(size(o) for o in others) > INLINE[kind]:
        raise LimitExceeded(f"Maximum policy size of {INLINE[kind]} bytes exceeded for "
                            f"{kind} {target}")
