"""Helpers that find and damage a server's blob files (integrity and scrub tests)."""

from __future__ import annotations

from pathlib import Path


def blob_files(srv) -> set[Path]:
    return {p for p in (Path(srv.data_dir) / "blobs").rglob("*") if p.is_file()}


def put(srv, s3, bucket: str, key: str, body: bytes) -> Path:
    """PUT an object; the path of the one blob it added."""
    before = blob_files(srv)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    added = blob_files(srv) - before
    assert len(added) == 1
    return added.pop()


def flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x40
    path.write_bytes(raw)


def truncate(path: Path, by: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - by)
