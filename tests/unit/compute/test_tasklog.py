"""Task logs: bounded, redacted, and read without following what a task can swap."""

from __future__ import annotations

import os

from vallum.compute import tasklog


def test_a_long_log_keeps_its_head_and_tail(tmp_path, monkeypatch):
    monkeypatch.setenv("VALLUM_COMPUTE_LOG_MAX_BYTES", str(3 * tasklog.HEAD))
    log = tmp_path / "task.log"
    log.write_bytes(b"h" * tasklog.HEAD + b"m" * 10_000 + b"t" * (2 * tasklog.HEAD))
    data = tasklog.read_bounded(log)
    assert data.startswith(b"h" * tasklog.HEAD) and data.endswith(b"t" * (2 * tasklog.HEAD))
    assert b"[vallum] 10000 bytes left out" in data and b"mm" not in data


def test_secrets_are_redacted_and_the_trailer_added():
    assert tasklog.text(b"key=S3CR3T ok", ["S3CR3T", ""], "\n[vallum] FAILED: x\n") == (
        "key=[REDACTED] ok\n[vallum] FAILED: x\n")


def test_a_swapped_folder_or_file_is_never_followed(tmp_path):
    secret = tmp_path / "host"
    secret.mkdir()
    (secret / "task.log").write_text("host secret")
    work = tmp_path / "work"
    work.mkdir()
    (work / "t1").symlink_to(secret)                    # the task swapped its folder
    assert tasklog.read_bounded(work / "t1" / "task.log") == b""
    assert tasklog.read_bounded(work / "t1" / "task.log", 100, 0) == b""
    (work / "t2").mkdir()
    (work / "t2" / "task.log").symlink_to(secret / "task.log")      # or its log
    assert tasklog.read_bounded(work / "t2" / "task.log") == b""
    (work / "t3").mkdir()
    os.mkfifo(work / "t3" / "task.log")                 # a FIFO would block the gateway
    assert tasklog.read_bounded(work / "t3" / "task.log") == b""
    (work / "t4").mkdir()
    (work / "t4" / "task.log").write_text("mine")
    assert tasklog.read_bounded(work / "t4" / "task.log", 100, 1) == b"ine"
