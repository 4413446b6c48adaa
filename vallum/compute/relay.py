"""Inside a network-enabled sandbox: make 127.0.0.1:PORT reach the gateway, then run the task.

Why a relay: the task's network namespace stays private (no route anywhere); the
only way out is the Unix socket bound in at /run/vallum-gateway.sock, which the
server connects to its own S3 endpoint. So "network" means exactly "loopback to
this gateway". Stdlib only: it runs with the task's interpreter.

    python relay.py PORT -- argv...
"""

import os
import socket
import subprocess
import sys
import threading

SOCK = "/run/vallum-gateway.sock"


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(listener: socket.socket) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(SOCK)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


def main() -> int:
    port = int(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1:]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    try:
        code = subprocess.call(argv, env=os.environ)
        return 128 - code if code < 0 else code     # a signal's death as the shell says it
    except FileNotFoundError:
        print(f"vallum: command not found: {argv[0]}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
