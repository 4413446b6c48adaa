"""A change signal shared by every process on one host: an 8-byte word in a mapped file.

Why: gateway workers must notice a change (an IAM key disabled, a lockout, a bucket's
configuration) on their next request, but asking the database on every request costs a
query and a lock on the event loop. A writer stores a new value in the word after its change is committed; a reader
compares the word with the value it last saw, which is a load from shared memory (no
system call). Readers still poll the database now and then (the callers' job), so a
writer that died between its commit and its signal, or a gateway on another host
(where the mapping is not shared), is late by at most that poll interval.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

_WORD = struct.Struct("<Q")


class ChangeSignal:
    """``value()`` is cheap; ``bump()`` announces a change to every process mapping ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _WORD.size:
                os.ftruncate(fd, _WORD.size)       # zero-filled; racing creators agree
            self._map = mmap.mmap(fd, _WORD.size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)                            # the mapping keeps the file alive

    def value(self) -> int:
        return _WORD.unpack_from(self._map, 0)[0]

    def bump(self) -> int:
        """Store a value no reader has seen: larger than the current one and than the clock
        (so two writers racing still leave a changed word; readers only test inequality)."""
        new = max(self.value() + 1, time.time_ns()) & 0xFFFF_FFFF_FFFF_FFFF
        _WORD.pack_into(self._map, 0, new)
        return new

    def close(self) -> None:
        try:
            self._map.close()
        except (BufferError, ValueError):
            pass
