"""The metadata store contract shared by the SQLite, PostgreSQL and in-memory backends.

Every method is a coroutine. Writes are atomic: a method either applies all of
its change or none of it. Methods that drop a body return the blob ids that
are no longer referenced; the caller deletes those blobs *after* the call
returns (blob first on write, metadata first on delete: a row never points to
a missing blob).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from vallum.meta.records import (
    BucketRecord,
    ListPage,
    ObjectRecord,
    PartRecord,
    Quota,
    UploadRecord,
    Usage,
)

# Called inside the write transaction; raising aborts that one write and the
# exception reaches the caller.
# For put_object/complete_upload it sees the current latest version of the key; for
# delete_version the version being deleted.
Precondition = Callable[[ObjectRecord | None], None]


class MetaError(Exception):
    """Base of metadata-store errors (mapped to S3 errors at the protocol boundary)."""


class BucketExists(MetaError):
    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


class BucketMissing(MetaError):
    pass


class BucketNotEmptyError(MetaError):
    pass


class QuotaExceeded(MetaError):
    """A write would take a bucket or account over its storage quota (nothing changed)."""

    def __init__(self, scope: str, what: str) -> None:
        super().__init__(f"{scope}: {what} quota exceeded")
        self.scope = scope
        self.what = what


class UploadMissing(MetaError):
    pass


class MetaStore(ABC):
    # -- lifecycle ---------------------------------------------------------
    @abstractmethod
    async def open(self) -> None:
        """Create the schema if needed and start background writers."""

    @abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release connections."""

    async def reachable(self) -> bool:
        """Whether the store can answer now (the readiness endpoint asks); embedded stores
        always can."""
        return True

    # -- buckets -----------------------------------------------------------
    def buckets_changed(self) -> None:
        """Bucket rows were changed behind the store's back (the compute service rewrites
        notification configs in its own transaction): drop any cached bucket records.
        Stores that cache nothing need do nothing."""
        return None

    @abstractmethod
    async def create_bucket(self, bucket: BucketRecord) -> None:
        """Raise BucketExists(owner) when the name is taken."""

    @abstractmethod
    async def get_bucket(self, name: str) -> BucketRecord | None: ...

    @abstractmethod
    async def list_buckets(self, owner: str | None = None) -> list[BucketRecord]:
        """All buckets (of one owner when given), sorted by name."""

    @abstractmethod
    async def update_bucket(self, bucket: BucketRecord) -> None:
        """Replace versioning, object_lock and config of an existing bucket."""

    @abstractmethod
    async def delete_bucket(self, name: str) -> list[str]:
        """Raise BucketMissing / BucketNotEmptyError (any version or delete marker
        left). In-progress uploads are aborted; their part blob ids are returned."""

    # -- objects -----------------------------------------------------------
    @abstractmethod
    async def put_object(self, record: ObjectRecord, *, precondition: Precondition | None = None) -> list[str]:
        """Store a new version and make it the latest.

        ``record.version_id == "null"``: replaces any existing null version of the
        key (its blobs are returned). Any other id: adds a version. Every other
        version of the key gets ``is_latest = False``.
        """

    @abstractmethod
    async def get_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectRecord | None:
        """The latest version (possibly a delete marker) or the named version."""

    @abstractmethod
    async def delete_version(self, bucket: str, key: str, version_id: str, *,
                             precondition: Precondition | None = None) -> tuple[ObjectRecord | None, list[str]]:
        """Remove one version permanently; the newest remaining becomes latest.
        ``precondition`` sees the version about to be removed (None if absent), so
        retention checks are atomic with the delete. Returns the removed record
        (None if absent) and its blob ids."""

    @abstractmethod
    async def modify_object(self, bucket: str, key: str, version_id: str,
                            change: Callable[[ObjectRecord], None]) -> ObjectRecord | None:
        """Read-modify-write one version's metadata atomically: ``change`` mutates
        the stored record (system_meta, user_meta, extra; other fields are kept)
        inside the write transaction and may raise to refuse. Returns the updated
        record, or None (change not called) if the version does not exist."""

    @abstractmethod
    async def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           start_after: str = "", max_keys: int = 1000) -> ListPage:
        """Latest, non-delete-marker versions with key > start_after, in UTF-8
        binary order; keys containing ``delimiter`` after ``prefix`` roll up into
        common prefixes (a prefix <= start_after is skipped). Entries plus
        prefixes together are at most ``max_keys``. Listed records carry no inline
        body (``inline`` is None) and no HTTP or user metadata (``system_meta`` and
        ``user_meta`` are empty): ``get_object`` reads the whole version."""

    @abstractmethod
    async def list_versions(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                            key_marker: str = "", version_id_marker: str = "",
                            max_keys: int = 1000) -> ListPage:
        """Every version and delete marker, by key ascending then newest first (records
        without inline body and metadata, as in ``list_objects``)."""

    # -- multipart ---------------------------------------------------------
    @abstractmethod
    async def create_upload(self, upload: UploadRecord) -> None: ...

    @abstractmethod
    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...

    @abstractmethod
    async def put_part(self, upload_id: str, part: PartRecord) -> list[str]:
        """Add or replace a part; returns the replaced part's blob ids.
        Raise UploadMissing if the upload is gone (completed or aborted)."""

    @abstractmethod
    async def list_parts(self, upload_id: str, *, part_number_marker: int = 0,
                         max_parts: int = 1000) -> tuple[list[PartRecord], bool]:
        """Parts with number > marker, ascending; and whether more remain."""

    @abstractmethod
    async def list_uploads(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           key_marker: str = "", upload_id_marker: str = "",
                           max_uploads: int = 1000) -> ListPage:
        """In-progress uploads by key then initiation time (entries are UploadRecord);
        ``next_version_marker`` carries the next upload-id marker."""

    @abstractmethod
    async def complete_upload(self, upload_id: str, record: ObjectRecord, *,
                              precondition: Precondition | None = None) -> list[str]:
        """Atomically: put ``record`` (whose ``parts`` are chosen from the upload)
        like put_object, and drop the upload. Returns blob ids no longer used:
        parts of the upload not in the manifest, plus any replaced version's.
        Raise UploadMissing if the upload is gone."""

    @abstractmethod
    async def abort_upload(self, upload_id: str) -> list[str]:
        """Drop the upload and return its part blob ids. Raise UploadMissing."""

    # -- maintenance -------------------------------------------------------
    @abstractmethod
    async def referenced_blobs(self) -> set[str]:
        """Every blob id referenced by an object version or an upload part."""

    # -- usage and quotas --------------------------------------------------
    # put_object, put_part and complete_upload refuse (QuotaExceeded, nothing changed) a
    # write that grows a bucket or its owner's account past a quota, judged in the same
    # transaction as the write, so concurrent writes cannot both slip under it.
    @abstractmethod
    async def bucket_usage(self, bucket: str) -> Usage:
        """What ``bucket`` holds now (zeros for an unknown bucket)."""

    @abstractmethod
    async def account_usage(self, owner: str) -> dict[str, Usage]:
        """Usage of every bucket ``owner`` owns, by bucket name."""

    @abstractmethod
    async def get_quota(self, scope: str) -> Quota | None:
        """The quota of ``bucket:<name>`` or ``account:<id>``, or None."""

    @abstractmethod
    async def set_quota(self, scope: str, quota: Quota | None) -> None:
        """Set (or, with None, remove) a quota. A bucket's quota goes with the bucket."""

    # -- requests and transfer per day, account and bucket (service/usage.py) ------------
    @abstractmethod
    async def add_request_usage(self, rows: list[dict[str, Any]]) -> None:
        """Add counters (``day``, ``account``, ``bucket`` and usage_sql.COUNTERS) to the
        day's rows, in one transaction."""

    @abstractmethod
    async def request_usage(self, accounts: list[str] | None,
                            day: str | None) -> list[tuple[Any, ...]]:
        """(day, account, bucket, *COUNTERS) rows of one day, or totals over every day
        (day ''), of ``accounts`` (None: every account)."""
