"""The IAM store contract and its in-memory twin.

Entities are plain dicts (``kind`` names a table in schema.ENTITIES; a row is its key
columns plus the doc fields). Access keys are rows of their own (``KeyRow``) because
the request path reads them. Writes go through ``apply`` so that a change touching
several rows (delete a user with its keys and memberships) is atomic and bumps the
generation counter exactly once. Methods are synchronous: every read is one indexed
lookup, cheaper than a thread hand-off (see sqlstore.py).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any

from vallum.iam.schema import ENTITIES


@dataclass(frozen=True)
class KeyRow:
    access_key_id: str
    account: str
    user_name: str
    status: str            # "Active" | "Inactive"
    secret: bytes          # wrapped under the master key
    created: float
    last_used: float | None = None


@dataclass(frozen=True)
class Op:
    """One write: ("put", kind, row) / ("delete", kind, key-dict) / ("put_key", KeyRow)
    / ("delete_key", access_key_id) / ("key_status", (access_key_id, status))."""

    verb: str
    kind: str = ""
    value: Any = None


def key_of(kind: str, row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in ENTITIES[kind][1])


class IAMStore(ABC):
    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def generation(self) -> int:
        """Bumped by every apply(); read per request to invalidate caches."""

    @abstractmethod
    def get(self, kind: str, /, **key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def scan(self, kind: str, /, **where: str) -> list[dict[str, Any]]:
        """Rows whose key columns equal ``where`` (a key prefix or any subset), sorted by key."""

    @abstractmethod
    def get_key(self, access_key_id: str) -> KeyRow | None: ...

    @abstractmethod
    def keys_of(self, account: str, user_name: str | None = None) -> list[KeyRow]: ...

    @abstractmethod
    def apply(self, ops: list[Op]) -> int:
        """Apply every op atomically, bump and return the new generation.
        A put of an existing row replaces it; a delete of a missing row is a no-op."""

    @abstractmethod
    def touch_key(self, access_key_id: str, when: float) -> None:
        """Record last use (no generation bump: it changes no decision)."""


class MemoryIAMStore(IAMStore):
    """Dict-backed twin for unit tests; same semantics as the SQL store."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {k: {} for k in ENTITIES}
        self._keys: dict[str, KeyRow] = {}
        self._gen = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def generation(self) -> int:
        return self._gen

    def get(self, kind: str, /, **key: str) -> dict[str, Any] | None:
        row = self._rows[kind].get(key_of(kind, key))
        return dict(row) if row is not None else None

    def scan(self, kind: str, /, **where: str) -> list[dict[str, Any]]:
        rows = [r for r in self._rows[kind].values() if all(str(r[k]) == v for k, v in where.items())]
        return [dict(r) for r in sorted(rows, key=lambda r: key_of(kind, r))]

    def get_key(self, access_key_id: str) -> KeyRow | None:
        return self._keys.get(access_key_id)

    def keys_of(self, account: str, user_name: str | None = None) -> list[KeyRow]:
        return sorted((k for k in self._keys.values() if k.account == account
                       and (user_name is None or k.user_name == user_name)),
                      key=lambda k: k.created)

    def apply(self, ops: list[Op]) -> int:
        with self._lock:
            rows = {k: dict(v) for k, v in self._rows.items()}
            keys = dict(self._keys)
            for op in ops:
                if op.verb == "put":
                    rows[op.kind][key_of(op.kind, op.value)] = dict(op.value)
                elif op.verb == "delete":
                    rows[op.kind].pop(key_of(op.kind, op.value), None)
                elif op.verb == "put_key":
                    keys[op.value.access_key_id] = op.value
                elif op.verb == "delete_key":
                    keys.pop(op.value, None)
                elif op.verb == "key_status":
                    akid, status = op.value
                    if akid in keys:
                        keys[akid] = replace(keys[akid], status=status)
                else:
                    raise ValueError(f"unknown op {op.verb}")
            self._rows, self._keys = rows, keys
            self._gen += 1
            return self._gen

    def touch_key(self, access_key_id: str, when: float) -> None:
        with self._lock:
            if access_key_id in self._keys:
                self._keys[access_key_id] = replace(self._keys[access_key_id], last_used=when)
