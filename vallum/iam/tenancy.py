"""The metadata store as one account sees it, for one request.

ListBuckets lists only the account's buckets, so bucket handlers written for a single
owner serve many accounts without knowing about them. The view lives for one request
only, so it also remembers the bucket record the authorization step read: the
handler's own lookup of the same bucket then costs nothing (any bucket write drops it).
"""

from __future__ import annotations

from typing import Any


class TenantMeta:
    __slots__ = ("_meta", "_owner", "_buckets")

    def __init__(self, meta: Any, owner: str) -> None:
        self._meta = meta
        self._owner = owner
        self._buckets: dict[str, Any] = {}

    async def get_bucket(self, name: str) -> Any:
        if name not in self._buckets:
            self._buckets[name] = await self._meta.get_bucket(name)
        return self._buckets[name]

    async def create_bucket(self, bucket: Any) -> None:
        self._buckets.clear()
        await self._meta.create_bucket(bucket)

    async def update_bucket(self, bucket: Any) -> None:
        self._buckets.clear()
        await self._meta.update_bucket(bucket)

    async def delete_bucket(self, name: str) -> list[str]:
        self._buckets.clear()
        return await self._meta.delete_bucket(name)

    async def list_buckets(self, owner: str | None = None) -> list[Any]:
        return await self._meta.list_buckets(owner or self._owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meta, name)
