"""Plain records the metadata store keeps: buckets, object versions, uploads, parts.

Timestamps are float seconds since the epoch (UTC). ETags are stored without
quotes: a hex MD5 for single PUTs, ``<hex>-<n>`` for multipart objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vallum.s3.names import NULL_VERSION  # noqa: F401 - stores and handlers import it from here


@dataclass
class BucketRecord:
    name: str
    created: float
    region: str = "us-east-1"
    owner: str = ""                      # account id of the owner
    versioning: str = ""                 # "" (never enabled) | "Enabled" | "Suspended"
    object_lock: bool = False
    # Sub-resource documents (cors, policy, lifecycle, tagging, encryption, ...),
    # stored as the text the client sent, keyed by sub-resource name.
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class PartRecord:
    part_number: int
    size: int
    etag: str                            # hex MD5 of the part, unquoted
    blob_id: str
    last_modified: float
    checksums: dict[str, str] = field(default_factory=dict)   # "CRC32" -> base64


@dataclass
class ObjectRecord:
    """One version of an object (or a delete marker)."""

    bucket: str
    key: str
    version_id: str = NULL_VERSION
    size: int = 0
    etag: str = ""
    last_modified: float = 0.0
    # content-type, content-encoding, content-disposition, content-language,
    # cache-control, expires: the stored HTTP headers, lower-case names.
    system_meta: dict[str, str] = field(default_factory=dict)
    user_meta: dict[str, str] = field(default_factory=dict)    # x-amz-meta-* without prefix
    # Algorithm ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME") -> base64 value,
    # plus "type" -> "FULL_OBJECT" | "COMPOSITE".
    checksums: dict[str, str] = field(default_factory=dict)
    blob_id: str | None = None           # body in the blob store ...
    inline: bytes | None = None          # ... or small body kept in the metadata row ...
    parts: list[PartRecord] | None = None  # ... or a multipart manifest of part blobs
    delete_marker: bool = False
    is_latest: bool = True
    storage_class: str = "STANDARD"
    owner: str = ""
    # Everything later features add (tags, retention, legal hold, label, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    def blob_ids(self) -> list[str]:
        """Every blob this version's body lives in."""
        if self.parts:
            return [p.blob_id for p in self.parts]
        return [self.blob_id] if self.blob_id else []


@dataclass
class UploadRecord:
    """An in-progress multipart upload."""

    upload_id: str
    bucket: str
    key: str
    initiated: float
    system_meta: dict[str, str] = field(default_factory=dict)
    user_meta: dict[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    storage_class: str = "STANDARD"
    owner: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ListPage:
    """One page of a listing: entries and common prefixes in merged key order."""

    entries: list[Any]
    common_prefixes: list[str]
    is_truncated: bool
    # The last key or common prefix returned; the marker for the next page.
    next_marker: str | None = None
    next_version_marker: str | None = None


@dataclass
class Usage:
    """What a bucket (or an account's buckets) holds: every stored version counts,
    delete markers do not; ``pending`` is the bytes of multipart parts not yet completed."""

    bytes: int = 0
    objects: int = 0
    pending: int = 0
    # banner ("" none) -> (bytes, objects, pending) at that label (an upload's parts at the
    # upload's label); only labels with something stored or pending appear.
    by_label: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def count(self, label: str, size: int, objects: int, pending: int) -> None:
        self.bytes += size
        self.objects += objects
        self.pending += pending
        b, o, p = self.by_label.get(label, (0, 0, 0))
        if (b + size, o + objects, p + pending) == (0, 0, 0):
            self.by_label.pop(label, None)
        else:
            self.by_label[label] = (b + size, o + objects, p + pending)

    def add(self, other: Usage) -> None:
        for label, (size, objects, pending) in other.by_label.items():
            self.count(label, size, objects, pending)


@dataclass
class Quota:
    """Storage limits of a bucket or an account; None is no limit."""

    max_bytes: int | None = None
    max_objects: int | None = None
