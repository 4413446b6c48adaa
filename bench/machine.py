"""The machine's own limits, measured in the same run as the servers.

A server's MiB/s only means something next to what the disk and the loopback
interface can do at that moment on that box; both are measured here with the
simplest possible code so they are upper bounds for every target.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from bench.stats import MIB, mib_per_s

CHUNK = MIB


def disk_write_fsync(directory: Path, size: int) -> float:
    """MiB/s writing `size` bytes in 1 MiB chunks to a new file in `directory`, then fsync.

    The timer stops only after fsync returns, which is what a durable PUT pays.
    """
    block = os.urandom(CHUNK)
    path = Path(directory) / "disk-probe.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start = time.perf_counter()
        written = 0
        while written < size:
            n = min(CHUNK, size - written)
            written += os.write(fd, block[:n] if n < CHUNK else block)
        os.fsync(fd)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return mib_per_s(size, elapsed)


def loopback_tcp(size: int) -> float:
    """MiB/s pushing `size` bytes through one TCP connection over 127.0.0.1.

    Sender and receiver are threads of this process; both spend their time in
    send/recv syscalls, which release the GIL, so the figure is the kernel's.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = [0]

    def receive() -> None:
        conn, _ = listener.accept()
        with conn:
            buf = memoryview(bytearray(CHUNK))
            while True:
                n = conn.recv_into(buf)
                if not n:
                    return
                received[0] += n

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    block = os.urandom(CHUNK)
    try:
        with socket.create_connection(listener.getsockname()) as out:
            start = time.perf_counter()
            sent = 0
            while sent < size:
                n = min(CHUNK, size - sent)
                out.sendall(block[:n] if n < CHUNK else block)
                sent += n
            out.shutdown(socket.SHUT_WR)
            reader.join(timeout=120)
            elapsed = time.perf_counter() - start
    finally:
        listener.close()
    if received[0] != size:
        raise RuntimeError(f"loopback probe lost data: sent {size}, received {received[0]}")
    return mib_per_s(size, elapsed)


def describe() -> dict[str, object]:
    """CPU count and model, so results from different boxes are not compared blindly."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model}
