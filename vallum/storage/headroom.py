"""Reserved disk headroom: new writes stop before the disk is full, so deletes still work.

A full disk is an outage the S3 API cannot undo unless space is kept back for the
work that frees space: deleting (SQLite needs room for its journal) and auditing
every request. The reserve is the larger of its parts (``"1GiB,2%"``: 1 GiB or 2 %
of the filesystem). Requests that add data are refused when what they declare would
leave less than the reserve free (``admit``); writers already streaming stop at the
*floor*, half the reserve (``check_floor``), which concurrent uploads admitted
together cannot pass. Below twice the reserve the state is ``low``: the operator is
warned before anything is refused.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vallum.storage.base import StorageError

DEFAULT_RESERVE = "1GiB,2%"
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
          "tb": 1000**4, "tib": 1024**4}
_PART_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%|[a-zA-Z]*)\s*")
OK, LOW, FULL = "ok", "low", "full"


class StorageFull(StorageError):
    """Writing would eat into the reserved headroom (or the disk is out of space)."""


@dataclass(frozen=True)
class Reserve:
    """A parsed reserve: fixed bytes and a fraction of the filesystem, the larger wins."""

    fixed: int
    fraction: float
    text: str

    def bytes_for(self, total: int) -> int:
        return max(self.fixed, int(total * self.fraction))


def parse_reserve(text: str) -> Reserve:
    """``"1GiB,2%"``, ``"512MiB"``, ``"5%"`` or ``"0"`` -> Reserve; ValueError if malformed."""
    fixed, fraction = 0, 0.0
    parts = str(text).split(",")
    for part in parts:
        m = _PART_RE.fullmatch(part)
        unit = m.group(2).lower() if m else ""
        if m is None or (unit != "%" and unit not in _UNITS):
            raise ValueError(f"invalid disk reserve {text!r}: expected sizes like 1GiB or 2%, "
                             "comma-separated (the larger applies)")
        value = float(m.group(1))
        if unit == "%":
            if value >= 50:
                raise ValueError(f"invalid disk reserve {text!r}: a percentage must be below 50")
            fraction = max(fraction, value / 100)
        else:
            fixed = max(fixed, int(value * _UNITS[unit]))
    return Reserve(fixed, fraction, str(text))


class Headroom:
    """Free space of the filesystem holding ``path`` against a reserve (statvfs, no cache:
    the call costs microseconds and a stale answer is what lets a disk fill). With
    ``also`` (the disks of a mirror's local copies), the tightest of them all counts:
    a write must fit on every disk it goes to."""

    def __init__(self, path: str | os.PathLike[str], reserve: Reserve,
                 also: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.path = os.fspath(path)
        self.paths = [self.path, *(os.fspath(p) for p in also)]
        self.reserve_spec = reserve

    def sample(self) -> tuple[int, int]:
        """(bytes free to this unprivileged process, reserve in bytes) of the disk with
        the least room above its reserve."""
        best: tuple[int, int] | None = None
        for path in self.paths:
            st = os.statvfs(path)
            free, reserve = st.f_bavail * st.f_frsize, self.reserve_spec.bytes_for(st.f_blocks * st.f_frsize)
            if best is None or free - reserve < best[0] - best[1]:
                best = (free, reserve)
        assert best is not None
        return best

    def state(self) -> str:
        free, reserve = self.sample()
        if free <= reserve:     # full: not even an empty write is admitted
            return FULL
        return LOW if free < 2 * reserve else OK

    def admit(self, length: int) -> None:
        """StorageFull unless ``length`` more bytes leave the reserve free."""
        free, reserve = self.sample()
        if free - max(length, 0) <= reserve:   # must leave more than the reserve
            raise StorageFull(f"{free} bytes free, {max(length, 0)} asked, {reserve} reserved")

    def check_floor(self) -> None:
        """StorageFull when a write in progress has brought free space under half the reserve."""
        free, reserve = self.sample()
        if free < reserve // 2:
            raise StorageFull(f"{free} bytes free, under the floor of {reserve // 2}")


def is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
