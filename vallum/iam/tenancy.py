"""The metadata store as one account sees it: ListBuckets lists only its own buckets.

A thin view (everything else passes through) so that bucket handlers written for a
single owner serve many accounts without knowing about them.
"""

from __future__ import annotations

from typing import Any


class TenantMeta:
    __slots__ = ("_meta", "_owner")

    def __init__(self, meta: Any, owner: str) -> None:
        self._meta = meta
        self._owner = owner

    async def list_buckets(self, owner: str | None = None) -> list[Any]:
        return await self._meta.list_buckets(owner or self._owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meta, name)
