"""`vallum bundle build|verify`: an offline install bundle for an air-gapped site.

A bundle directory holds ``wheels/`` (every wheel for this platform and Python, pinned by
the lock file), ``requirements.txt`` (each pin with its SHA-256, for pip --require-hashes),
``sbom.cdx.json`` (CycloneDX 1.5: every component with its purl and hash), ``install.sh``,
``SHA256SUMS`` (every other file) and ``SHA256SUMS.sig`` (Ed25519 over SHA256SUMS, raw,
so that ``openssl pkeyutl -verify -rawin`` checks it on a machine with no Python packages).
"""

from __future__ import annotations

import base64
import email.parser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from vallum.security.crypto import primitives as crypto

WHEELS, REQUIREMENTS, SBOM, INSTALL = "wheels", "requirements.txt", "sbom.cdx.json", "install.sh"
SUMS, SIG = "SHA256SUMS", "SHA256SUMS.sig"
# DER SubjectPublicKeyInfo of an Ed25519 key, before the 32 raw bytes (RFC 8410).
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


class BundleError(Exception):
    """The bundle cannot be built or does not verify; the message says which file and why."""


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    file: str
    sha256: str


def public_pem(raw: bytes) -> str:
    body = base64.encodebytes(_ED25519_SPKI + raw).decode().strip()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def public_from_pem(text: str) -> bytes:
    lines = [ln for ln in text.strip().splitlines() if not ln.startswith("-----")]
    try:
        der = base64.b64decode("".join(lines), validate=True)
    except ValueError:
        der = b""
    if len(der) != len(_ED25519_SPKI) + 32 or not der.startswith(_ED25519_SPKI):
        raise BundleError("the public key is not an Ed25519 public key in PEM")
    return der[len(_ED25519_SPKI):]


def signing_key(path: Path) -> tuple[bytes, bool]:
    """(the raw Ed25519 private key at ``path``, whether it was created now: 0600, O_EXCL;
    its public half is written to ``path``.pub.pem)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raw = path.read_bytes()
        if len(raw) != 32:
            raise BundleError(f"{path}: not a raw 32-byte Ed25519 signing key") from None
        return raw, False
    raw = crypto.ed25519_new_private()
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    Path(f"{path}.pub.pem").write_text(public_pem(crypto.ed25519_public(raw)))
    return raw, True


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BundleError(f"pip {args[0]} failed:\n{done.stderr.strip()[-2000:]}")


def _wheel_of(path: Path) -> Wheel:
    parts = path.name[:-len(".whl")].split("-")
    if len(parts) < 5:
        raise BundleError(f"{path.name}: not a wheel file name")
    return Wheel(parts[0].replace("_", "-").lower(), parts[1], path.name, _sha256(path))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _metadata(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as z:
        name = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
        if name is None:
            return {}
        msg = email.parser.Parser().parsestr(z.read(name).decode("utf-8", "replace"), headersonly=True)
    return {k: str(msg.get(k, "")) for k in ("Name", "Version", "License", "License-Expression", "Summary")}


def sbom(wheels: list[Wheel], folder: Path, app_version: str) -> dict:
    """A CycloneDX 1.5 document of the wheels (what the bundle installs)."""
    components = []
    for w in wheels:
        meta = _metadata(folder / w.file)
        purl = f"pkg:pypi/{w.name}@{w.version}"
        comp: dict = {"type": "library", "bom-ref": purl, "name": w.name, "version": w.version,
                      "purl": purl, "hashes": [{"alg": "SHA-256", "content": w.sha256}]}
        lic = meta.get("License-Expression") or meta.get("License", "")
        if lic and len(lic) < 200:
            comp["licenses"] = [{"license": {"name": lic}}]
        if meta.get("Summary"):
            comp["description"] = meta["Summary"]
        components.append(comp)
    return {"bomFormat": "CycloneDX", "specVersion": "1.5",
            "serialNumber": f"urn:uuid:{uuid.uuid4()}", "version": 1,
            "metadata": {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "component": {"type": "application", "bom-ref": "vallum-bundle",
                                       "name": "vallum", "version": app_version}},
            "components": components}


# The server's optional engines an air-gapped site may turn on later without a new bundle:
# PostgreSQL metadata (--meta) and blobs on an upstream S3 store (--blobs s3://).
SERVER_EXTRAS = ("postgres", "s3blobs")


def build(out: Path, lock: Path, key_path: Path, *, project: Path | None, app_version: str,
          extras: tuple[str, ...] = SERVER_EXTRAS) -> list[Wheel]:
    """Build the bundle in ``out`` (a new directory): wheels for this platform pinned by
    ``lock`` (with ``project``: its wheel, the dependencies it needs and those of
    ``extras``, constrained by the lock; without: exactly the lock's requirements), hashes,
    SBOM, installer, signature."""
    if out.exists():
        raise BundleError(f"{out} exists; give a new directory")
    if not lock.is_file():
        raise BundleError(f"no lock file at {lock}")
    key, _ = signing_key(key_path)
    wheels = out / WHEELS
    wheels.mkdir(parents=True)
    if project is not None:
        _pip("wheel", "--no-deps", "--wheel-dir", str(wheels), str(project))
        built = sorted(wheels.glob("*.whl"))
        wanted = [f"{p}[{','.join(extras)}]" if extras else str(p) for p in built]
        _pip("download", "--only-binary=:all:", "--dest", str(wheels), "--constraint", str(lock), *wanted)
    else:
        _pip("download", "--only-binary=:all:", "--dest", str(wheels), "--requirement", str(lock))
    found = [_wheel_of(p) for p in sorted(wheels.glob("*.whl"))]
    (out / REQUIREMENTS).write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in found))
    (out / SBOM).write_text(json.dumps(sbom(found, wheels, app_version), indent=1) + "\n")
    shutil.copyfile(str(resources.files("vallum.ops").joinpath(INSTALL)), out / INSTALL)
    os.chmod(out / INSTALL, 0o700)     # run as `sh install.sh`
    sums = "".join(f"{_sha256(out / rel)}  {rel}\n" for rel in _files(out))
    (out / SUMS).write_text(sums)
    (out / SIG).write_bytes(crypto.ed25519_sign(key, sums.encode()))
    return found


def _files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and p.name not in (SUMS, SIG))


def verify(out: Path, public: bytes) -> list[str]:
    """Problems with the bundle under the pinned key (empty: authentic and complete)."""
    try:
        sums = (out / SUMS).read_bytes()
        sig = (out / SIG).read_bytes()
    except OSError as exc:
        return [f"unreadable: {exc}"]
    if not crypto.ed25519_verify(public, sig, sums):
        return [f"{SUMS}: the signature does not verify under the pinned key"]
    listed = {}
    for line in sums.decode().splitlines():
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    problems = []
    for rel in sorted(set(listed) | set(_files(out))):
        if rel not in listed:
            problems.append(f"{rel}: not covered by the signature")
        elif not (out / rel).is_file():
            problems.append(f"{rel}: missing")
        elif _sha256(out / rel) != listed[rel]:
            problems.append(f"{rel}: SHA-256 differs from the signed list")
    return problems
