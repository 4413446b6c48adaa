"""The disk reserve's arithmetic and its checks (storage/headroom.py)."""

from __future__ import annotations

import pytest

from vallum.storage.headroom import FULL, LOW, OK, Headroom, Reserve, StorageFull, parse_reserve

GiB = 1024**3


@pytest.mark.parametrize("text, fixed, fraction", [
    ("1GiB,2%", GiB, 0.02), ("512MiB", 512 * 1024**2, 0.0), ("5%", 0, 0.05), ("0", 0, 0.0),
    ("10 GB, 1.5 %", 10 * 1000**3, 0.015), ("2048", 2048, 0.0),
], ids=["default", "fixed", "percent", "zero", "spaces", "bytes"])
def test_parse(text, fixed, fraction):
    r = parse_reserve(text)
    assert (r.fixed, r.fraction) == (fixed, fraction)


@pytest.mark.parametrize("text", ["", "lots", "1XB", "-1GiB", "50%", "1GiB;2%", "%"],
                         ids=["empty", "word", "unit", "negative", "half", "separator", "bare"])
def test_parse_refuses(text):
    with pytest.raises(ValueError, match="disk reserve"):
        parse_reserve(text)


def test_the_larger_part_wins():
    r = parse_reserve("1GiB,2%")
    assert r.bytes_for(10 * GiB) == GiB                 # 2% of 10 GiB is less than 1 GiB
    assert r.bytes_for(1000 * GiB) == 20 * GiB


class FakeDisk(Headroom):
    """statvfs replaced by numbers: the state machine alone."""

    def __init__(self, free: int, reserve: int) -> None:
        super().__init__("/", Reserve(reserve, 0.0, str(reserve)))
        self.free = free

    def sample(self) -> tuple[int, int]:
        return self.free, self.reserve_spec.fixed


@pytest.mark.parametrize("free, state", [(300, OK), (200, OK), (199, LOW), (101, LOW), (100, FULL),
                                         (99, FULL)],
                         ids=["plenty", "twice", "under-twice", "a-byte-left", "at-reserve", "under"])
def test_states(free, state):
    assert FakeDisk(free, 100).state() == state


def test_full_exactly_when_not_even_an_empty_write_is_admitted():
    """Full (readiness, the gauge, the alert) means every write is refused, an empty one
    (CreateBucket, tagging) too: free space counts whole blocks and can sit exactly at the
    reserve, where the state and the refusals must still agree."""
    for free in (99, 100, 101, 102):
        disk = FakeDisk(free, 100)
        try:
            disk.admit(0)
            admitted = True
        except StorageFull:
            admitted = False
        assert (disk.state() == FULL) == (not admitted), free


def test_admit_counts_the_declared_length():
    disk = FakeDisk(150, 100)
    disk.admit(49)
    with pytest.raises(StorageFull):
        disk.admit(50)


def test_floor_is_half_the_reserve():
    disk = FakeDisk(50, 100)
    disk.check_floor()
    disk.free = 49
    with pytest.raises(StorageFull):
        disk.check_floor()


def test_real_statvfs(tmp_path):
    free, reserve = Headroom(tmp_path, parse_reserve("1%")).sample()
    assert free > 0 and reserve > 0


async def _write_blob(store, chunks: int) -> None:
    writer = store.writer()
    try:
        for _ in range(chunks):
            await writer.write(b"x" * (1024 * 1024))
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise


def test_a_streaming_write_stops_at_the_floor_and_leaves_nothing(tmp_path):
    """Writes admitted together cannot pass half the reserve: the writer raises StorageFull
    at its next chunk and its temp file goes with the abort."""
    import asyncio

    from vallum.storage.localfs import LocalBlobStore

    disk = FakeDisk(free=10_000, reserve=100)
    store = LocalBlobStore(tmp_path, disk)
    asyncio.run(store.open())
    asyncio.run(_write_blob(store, 3))                 # plenty of room: committed
    disk.free = 49                                     # another writer took the space
    with pytest.raises(StorageFull):
        asyncio.run(_write_blob(store, 3))
    with pytest.raises(StorageFull):
        asyncio.run(store.put(b"small"))
    assert list((tmp_path / "tmp").iterdir()) == []
    committed = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(committed) == 1
