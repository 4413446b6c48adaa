"""The long-lived services one gateway process shares between requests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vallum.iam.root import RootCredentials
from vallum.meta.base import MetaStore
from vallum.server.config import Config
from vallum.storage.base import BlobStore


@dataclass
class Services:
    config: Config
    meta: MetaStore
    blobs: BlobStore
    root: RootCredentials

    @property
    def owner_id(self) -> str:
        """Canonical user id of the root account (64 hex chars, like AWS's)."""
        return hashlib.sha256(b"vallum-root:" + self.root.access_key.encode()).hexdigest()

    def lookup_secret(self, access_key: str) -> str | None:
        if access_key == self.root.access_key:
            return self.root.secret_key
        return None

    async def discard_blobs(self, blob_ids: list[str]) -> None:
        """Delete blobs no longer referenced (after the metadata change committed)."""
        if blob_ids:
            await self.blobs.delete(blob_ids)
