"""The long-lived services one gateway process shares between requests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any

from vallum.iam.root import RootCredentials
from vallum.iam.tenancy import TenantMeta
from vallum.meta.base import MetaStore
from vallum.server.config import Config
from vallum.storage.base import BlobStore


@dataclass
class Services:
    config: Config
    meta: MetaStore
    blobs: BlobStore
    root: RootCredentials
    iam: Any = None                  # vallum.iam.service.IAM
    compute: Any = None              # vallum.compute.service.ComputeService
    audit: Any = None                # vallum.security.audit.log.AuditLog (None: audit off)
    headroom: Any = None             # vallum.storage.headroom.Headroom (the disk reserve)
    caller: Any = None               # per-request view only: the authenticated IAM Principal
    tenant: str | None = None        # per-request view only: the caller's account id

    def for_caller(self, principal: Any) -> Services:
        """The services as an IAM principal sees them: its account owns the buckets it
        creates, and bucket listings show only its account's buckets."""
        if principal.access_key is None or principal.access_key == self.root.access_key:
            return self
        if principal.is_root:        # a root session (temporary key): still the root
            return self._view(caller=principal)
        return self._view(caller=principal, tenant=principal.account,
                          meta=TenantMeta(self.meta, principal.account))

    def _view(self, **changes: Any) -> Services:
        """``dataclasses.replace`` (fields only, no extra attributes) without its
        per-call field validation: this runs on every IAM-signed request."""
        view = object.__new__(Services)
        own = self.__dict__
        view.__dict__.update({name: own[name] for name in _FIELDS}, **changes)
        return view

    @property
    def owner_id(self) -> str:
        """Owner id of the caller's account; for the platform root, its canonical user id
        (64 hex chars, like AWS's)."""
        if self.tenant:
            return self.tenant
        return hashlib.sha256(b"vallum-root:" + self.root.access_key.encode()).hexdigest()

    def lookup_secret(self, access_key: str) -> str | None:
        if access_key == self.root.access_key:
            return self.root.secret_key
        return None

    async def discard_blobs(self, blob_ids: list[str]) -> None:
        """Delete blobs no longer referenced (after the metadata change committed)."""
        if blob_ids:
            await self.blobs.delete(blob_ids)


_FIELDS = tuple(f.name for f in fields(Services))
