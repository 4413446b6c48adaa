"""The CA bundle a network-enabled task trusts to reach its gateway over HTTPS.

Why a file of its own: a task reaches the gateway through 127.0.0.1 (the relay), and
its own clients (boto3, requests, the stdlib) verify TLS with OpenSSL defaults -- no
partial chains, host name checked. So the task needs a real trust anchor:

* the certificates of the gateway's ``--tls-cert`` file (only CERTIFICATE blocks: a
  combined PEM may also hold the private key, which must never reach a task);
* the CA beside it when the certificate came from ``vallum certs dev`` (``ca.pem``);
* otherwise the system's CA bundle, so a certificate from a public or site CA whose
  root the host already trusts still verifies (the leaf alone is not an anchor for
  OpenSSL without partial-chain mode).

The certificate must name 127.0.0.1 (``vallum certs dev`` does by default): that is
the address the task connects to.
"""

from __future__ import annotations

import os
import re
import ssl
from functools import lru_cache
from pathlib import Path

# Public certificates only; everything else in a PEM file (keys, parameters) is dropped.
_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----")
SIBLING_CA = "ca.pem"              # what `vallum certs dev` writes beside server.pem
TASK_FILE = ".vallum-gateway-ca.pem"  # in the task's work folder (its HOME)

def certificates(pem: bytes) -> list[bytes]:
    """The CERTIFICATE blocks of a PEM text, in order, each ending with a newline."""
    return [m.group(0).replace(b"\r\n", b"\n") + b"\n" for m in _CERT.finditer(pem)]


def _system_cas() -> bytes:
    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.openssl_cafile):
        if path and os.path.isfile(path):
            return b"".join(certificates(Path(path).read_bytes()))
    return b""


def bundle_for(cert_file: str | os.PathLike[str]) -> bytes:
    """The PEM bundle a task gets for a gateway serving ``cert_file`` (see the module doc).

    Cached by path, size and mtimes: every network task of a gateway asks for the same one."""
    path = Path(cert_file)
    st = path.stat()
    ca = path.with_name(SIBLING_CA)
    ca_mtime = ca.stat().st_mtime_ns if ca.is_file() else 0
    return _build(str(path), st.st_size, st.st_mtime_ns, ca_mtime)


@lru_cache(maxsize=16)
def _build(cert_file: str, _size: int, _mtime: int, ca_mtime: int) -> bytes:
    """The bundle itself; the size and mtimes only make a changed file a new cache key."""
    path = Path(cert_file)
    chain = certificates(path.read_bytes())
    if not chain:
        raise ValueError(f"{path} holds no PEM certificate")
    parts = list(chain)
    ca = path.with_name(SIBLING_CA)
    if ca_mtime and ca.resolve() != path.resolve():
        parts += [c for c in certificates(ca.read_bytes()) if c not in parts]
    else:
        parts.append(_system_cas())
    return b"".join(parts)


def write_task_bundle(folder: Path, data: bytes) -> Path:
    """Write ``data`` as ``folder/TASK_FILE``, 0644 (public certificates; the sandbox uid
    may differ from ours), refusing to follow a link or reuse a file already there."""
    target = folder / TASK_FILE
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(target, 0o644)
    return target


def task_env(bundle_path: str, *, only_gateway: bool) -> dict[str, str]:
    """Variables that make the task's clients trust the gateway.

    AWS_CA_BUNDLE always (boto3, the AWS CLI, vallum's own client). REQUESTS_CA_BUNDLE and
    SSL_CERT_FILE replace *all* trust of those clients, so they are set only when the
    gateway is the only host the task can reach (the bwrap sandbox)."""
    env = {"AWS_CA_BUNDLE": bundle_path}
    if only_gateway:
        env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = bundle_path
    return env
