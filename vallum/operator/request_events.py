"""The one per-request event the operator consumes (from the gateway or a replayed trace).

Why a separate record: detectors must run identically on live traffic, on audit
records and on simulated traces, so all three are reduced to this shape first.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Label lattice levels, lowest first (security.labels names them the same way).
LEVELS = ("UNCLASSIFIED", "CUI", "CONFIDENTIAL", "SECRET", "TOP SECRET")

# Error codes that mean "the credentials were wrong", as opposed to "not allowed".
AUTH_FAILURES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                           "IncompleteSignature"})
READ_OPS = frozenset({"GetObject", "HeadObject", "SelectObjectContent"})
LIST_OPS = frozenset({"ListObjects", "ListObjectsV2", "ListObjectVersions", "ListBuckets",
                      "ListMultipartUploads"})
WRITE_OPS = frozenset({"PutObject", "PostObject", "CopyObject", "UploadPart", "CompleteMultipartUpload",
                       "CreateMultipartUpload", "UploadPartCopy"})
DELETE_OPS = frozenset({"DeleteObject", "DeleteObjects", "DeleteBucket"})
# Admin calls that mint credentials or widen what a principal may do (a burst of them is
# a stolen admin key building itself a way back in).
MINT_OPS = frozenset({"CreateAccessKey", "RotateAccessKey", "UpdateAccessKey", "CreateUser",
                      "CreateRole", "CreatePolicy", "AttachPolicy", "PutInlinePolicy",
                      "AddUserToGroup", "SetClearance", "DeleteUserPermissionsBoundary",
                      "DeleteRolePermissionsBoundary"})
# Calls whose target, not only their name, is what a prober varies (role after role).
TARGETED = frozenset({"AssumeRole"})


class RequestEvent(NamedTuple):
    """Why a named tuple: the gateway builds one per request, and a tuple is built in C
    (``tuple.__new__(RequestEvent, values)``, gateway.py) where a class's ``__init__``
    runs Python code per field; its fields read as fast as slots."""

    ts: float                       # seconds since the epoch (simulated or real)
    principal: str                  # access key id as claimed ("" when anonymous)
    account: str = ""               # owning account ("" when unknown, e.g. failed auth)
    source: str = ""                # client address
    operation: str = ""             # router endpoint name, e.g. GetObject
    bucket: str = ""
    key: str = ""
    status: int = 200
    error: str = ""                 # S3 error code, "" on success
    bytes_in: int = 0
    bytes_out: int = 0
    label: int = -1                 # index into LEVELS of the object's label, -1 unknown
    opaque: int = -1                # a written body's first 4 KiB: 1 incompressible (ciphertext-
                                    # like), 0 compressible, -1 not sampled

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RequestEvent:
        return cls(**{k: d[k] for k in cls._fields if k in d})


def label_index(name: str | None) -> int:
    """LEVELS index of a label's level ('SECRET//SI' -> 3); -1 when absent or unknown."""
    if not name:
        return -1
    level = name.split("//", 1)[0].strip().upper()
    return LEVELS.index(level) if level in LEVELS else -1


def from_audit(record: dict[str, Any]) -> RequestEvent:
    """Best-effort mapping of an audit record (security/audit/log.py) to an event, so the
    operator can replay the audit trail."""
    def pick(*names: str, default: Any = "") -> Any:
        for n in names:
            if record.get(n) not in (None, ""):
                return record[n]
        return default
    return RequestEvent(
        ts=float(pick("ts", "time", default=0.0)),
        principal=str(pick("access_key", "principal")), account=str(pick("account")),
        source=str(pick("source_ip", "source")), operation=str(pick("operation", "action")),
        bucket=str(pick("bucket")), key=str(pick("key")), status=int(pick("status", default=200)),
        error=str(pick("error", "error_code")), bytes_in=int(pick("bytes_in", default=0)),
        bytes_out=int(pick("bytes_out", default=0)), label=label_index(pick("label", default=None)))
