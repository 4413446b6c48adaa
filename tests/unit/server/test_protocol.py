"""The head of a response is held back one write and never lost or reordered."""

from __future__ import annotations

from vallum.server.protocol import _HeadHolder


class RecordingTransport:
    """Records what reaches the socket; stands in for asyncio.Transport in pure-logic tests."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


def test_head_and_first_body_chunk_leave_in_one_write() -> None:
    t = RecordingTransport()
    h = _HeadHolder(t)
    h.write(HEAD)
    assert t.writes == []
    h.write(b"hello")
    assert t.writes == [HEAD + b"hello"]
    h.write(b"more")
    assert t.writes == [HEAD + b"hello", b"more"]


def test_head_alone_goes_out_on_flush_and_on_close() -> None:
    t = RecordingTransport()
    h = _HeadHolder(t)
    h.write(HEAD)
    h.flush()
    assert t.writes == [HEAD]
    h.write(b"x")                      # after a flush nothing is held any more
    assert t.writes == [HEAD, b"x"]
    t2 = RecordingTransport()
    h2 = _HeadHolder(t2)
    h2.write(HEAD)
    h2.close()
    assert t2.writes == [HEAD] and t2.closed


def test_interim_100_continue_is_not_held() -> None:
    t = RecordingTransport()
    h = _HeadHolder(t)
    h.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert t.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    h.write(HEAD)
    h.write(b"")
    assert t.writes[-1] == HEAD


def test_other_attributes_reach_the_transport() -> None:
    t = RecordingTransport()
    h = _HeadHolder(t)
    assert h.is_closing() is False
    h.close()
    assert h.is_closing() is True
