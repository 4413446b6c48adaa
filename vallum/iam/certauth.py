"""Client certificates (mutual TLS): Vallum's own check of the certificate a connection
presented, offline.

Why a second check after OpenSSL's handshake: the handshake is told to ignore validity
dates (so an expired certificate reaches STS and gets an STS answer) and knows nothing of
revocation; and the rules that turn a certificate into an identity must only ever see a
certificate that passed every check here. A certificate is accepted when it chains to a
root of the configured bundle (its other certificates serve as intermediates) under
``cryptography``'s verifier (signatures, validity at ``now``, CA constraints, the
clientAuth extended key usage), its key usage allows digitalSignature, and no CRL of
the configured file or directory revokes it or a CA above it. CRLs are re-read when a
file changes (mtime/size); a CRL whose signature does not verify against its issuer is
ignored and logged, and an issuer's CRL past its nextUpdate still counts (an attacker
who stops CRL updates must not un-revoke anyone).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

log = logging.getLogger("vallum.certauth")
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")     # Microsoft UPN (smart cards, AD)
MAX_CHAIN_DEPTH = 8
# scope["extensions"][TLS_EXTENSION]: one dict per TLS connection (server/protocol.py) with
# the client certificate's DER ("client_cert") and, once judged, its "verdict".
TLS_EXTENSION = "vallum.tls"


class CertificateError(Exception):
    """A certificate refused; ``code``/``status`` are the STS error MinIO answers with."""

    def __init__(self, message: str, code: str = "InvalidClientCertificate",
                 status: int = 400, claimed: str = "unparsed certificate") -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.claimed = claimed       # subject#serial as the certificate states it (audit)


@dataclass(frozen=True)
class ClientCertificate:
    """What the mapping rules and the audit see of a verified certificate."""

    subject: str                 # RFC 4514, e.g. "CN=alice,OU=SECRET,O=Example"
    issuer: str
    serial: str                  # hex, upper case, as CRLs and CA tools print it
    fingerprint: str             # SHA-256 of the DER, hex lower case
    not_after: float
    cert: x509.Certificate

    @property
    def common_name(self) -> str:
        return attribute(self.cert, "CN") or ""

    def emails(self) -> list[str]:
        return [str(v) for v in self._sans(x509.RFC822Name)]

    def upns(self) -> list[str]:
        out = []
        for other in self._sans(x509.OtherName):
            if other.type_id == UPN_OID:
                text = _der_string(other.value)
                if text is not None:
                    out.append(text)
        return out

    def _sans(self, kind: type) -> list:
        try:
            san = self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return []
        return list(san.get_values_for_type(kind))

    def identity(self) -> str:
        """The external identity as audit records name it."""
        return f"cert:{self.subject}#{self.serial}"

    def condition_keys(self) -> dict[str, str]:
        return {"vallum:certificatesubject": self.subject, "vallum:certificateissuer": self.issuer,
                "vallum:certificateserial": self.serial,
                "vallum:certificatefingerprint": self.fingerprint}


_ATTRS = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
          "O": NameOID.ORGANIZATION_NAME, "TITLE": NameOID.TITLE,
          "SERIALNUMBER": NameOID.SERIAL_NUMBER, "UID": NameOID.USER_ID}


def attribute(cert: x509.Certificate, name: str) -> str | None:
    """The subject's single value of ``name`` (CN, OU, O, title, serialNumber, UID);
    None when absent or given more than once (ambiguous: never guess)."""
    values = cert.subject.get_attributes_for_oid(_ATTRS[name.upper()])
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else None


def _der_string(raw: bytes) -> str | None:
    """A DER UTF8String/IA5String/PrintableString (short or long form length), else None."""
    if len(raw) < 2 or raw[0] not in (0x0C, 0x16, 0x13):
        return None
    n, body = raw[1], raw[2:]
    if n & 0x80:
        width = n & 0x7F
        if width == 0 or width > 2 or len(body) < width:
            return None
        n, body = int.from_bytes(body[:width], "big"), body[width:]
    if n != len(body):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _is_root(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class Authority:
    """The client-certificate trust of one gateway: a CA bundle and optional CRLs."""

    def __init__(self, bundle: Path, crl: Path | None = None) -> None:
        certs = x509.load_pem_x509_certificates(bundle.read_bytes())
        self.roots = [c for c in certs if _is_root(c)]
        self.intermediates = [c for c in certs if not _is_root(c)]
        if not self.roots:
            raise ValueError(f"{bundle} holds no self-signed root certificate")
        self.crl_path = crl
        self._crl_stamp: tuple = ()
        self._revoked: dict[tuple[bytes, int], str] = {}    # (issuer DER name, serial) -> file
        self._lock = threading.Lock()
        self._reload_crls()
        ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)   # a subject DN suffices
        self._builder = (PolicyBuilder().store(Store(self.roots)).max_chain_depth(MAX_CHAIN_DEPTH)
                         .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                             ee_policy=ee))

    # ------------------------------------------------------------ CRLs
    def _crl_files(self) -> list[Path]:
        if self.crl_path is None:
            return []
        if self.crl_path.is_dir():
            return sorted(p for p in self.crl_path.iterdir() if p.is_file())
        return [self.crl_path]

    def _reload_crls(self) -> None:
        """Re-read the CRLs when a file was added, removed or changed. A CRL file that
        cannot be read keeps the previous revocations (fail closed)."""
        try:
            files = self._crl_files()
            stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        except OSError as exc:
            log.warning("cannot list CRLs at %s: %s (keeping the previous ones)", self.crl_path, exc)
            return
        if stamp == self._crl_stamp:
            return
        issuers = {c.subject: c for c in self.roots + self.intermediates}
        revoked: dict[tuple[bytes, int], str] = {}
        for path in files:
            try:
                data = path.read_bytes()
                crls = ([x509.load_pem_x509_crl(data)] if b"-----BEGIN" in data
                        else [x509.load_der_x509_crl(data)])
            except (OSError, ValueError) as exc:
                log.warning("CRL %s unreadable: %s (keeping the previous revocations)", path, exc)
                return
            for crl in crls:
                issuer = issuers.get(crl.issuer)
                if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    log.warning("CRL %s is not signed by a CA of the bundle: ignored", path)
                    continue
                for entry in crl:
                    revoked[(crl.issuer.public_bytes(), entry.serial_number)] = path.name
        self._revoked, self._crl_stamp = revoked, stamp
        log.info("client-certificate CRLs loaded: %d revoked serial(s)", len(revoked))

    def revoked_by(self, cert: x509.Certificate) -> str | None:
        return self._revoked.get((cert.issuer.public_bytes(), cert.serial_number))

    # ------------------------------------------------------------ verification
    def verify(self, der: bytes, now: float) -> ClientCertificate:
        """The certificate, verified; CertificateError saying why not."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateError("The client certificate cannot be parsed") from None
        claimed = f"{cert.subject.rfc4514_string()}#{cert.serial_number:X}"
        when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
        try:
            verifier = self._builder.time(when).build_client_verifier()
            chain = verifier.verify(cert, self.intermediates).chain
        except VerificationError as exc:
            raise CertificateError(f"The client certificate is not valid: {_reason(exc, cert, when)}",
                                   claimed=claimed) from None
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.digital_signature:
            raise CertificateError("The client certificate's key usage does not allow "
                                   "digitalSignature (client authentication)", claimed=claimed)
        with self._lock:
            self._reload_crls()
        for link in chain[:-1]:          # the root is trusted by configuration, not by CRL
            where = self.revoked_by(link)
            if where is not None:
                what = "client certificate" if link is cert else f"issuing CA {link.subject.rfc4514_string()}"
                raise CertificateError(f"The {what} is revoked (serial {link.serial_number:X}, {where})",
                                       claimed=claimed)
        return ClientCertificate(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                                 f"{cert.serial_number:X}", fingerprint(der),
                                 cert.not_valid_after_utc.timestamp(), cert)


def _reason(exc: VerificationError, cert: x509.Certificate, when: dt.datetime) -> str:
    """A short reason, naming the cases a client can act on."""
    if when > cert.not_valid_after_utc:
        return f"it expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    if when < cert.not_valid_before_utc:
        return f"it is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
    text = str(exc)
    if "EKU" in text:
        return "it is not issued for client authentication (extended key usage)"
    return "it does not chain to a trusted certificate authority"


RECHECK = 30.0      # seconds a connection's verdict is reused (CRL changes apply within it)


def of_connection(tls: dict[str, Any] | None, auth: Authority | None,
                  now: float) -> ClientCertificate | CertificateError | None:
    """The verdict on the certificate a connection presented (None: none, or client
    certificates are off). ``tls`` is the connection's own dict (the protocol puts the
    same one in every request's scope), so a keep-alive connection is verified once per
    RECHECK seconds, not per request."""
    if tls is None or auth is None or not tls.get("client_cert"):
        return None
    cached = tls.get("verdict")
    if cached is not None and now - cached[1] < RECHECK:
        return cached[0]
    try:
        verdict: ClientCertificate | CertificateError = auth.verify(tls["client_cert"], now)
    except CertificateError as exc:
        verdict = exc
    tls["verdict"] = (verdict, now)
    return verdict


_authorities: dict[tuple[str, str | None], Authority] = {}


def authority(bundle: Path | None, crl: Path | None) -> Authority | None:
    """This process's Authority for the configured paths (None: client certificates off)."""
    if bundle is None:
        return None
    key = (str(bundle), str(crl) if crl else None)
    found = _authorities.get(key)
    if found is None:
        found = _authorities[key] = Authority(bundle, crl)
    return found


def check_settings(bundle: Path | None, crl: Path | None) -> None:
    """Refuse a configuration that cannot work, at start (ValueError)."""
    if bundle is None:
        if crl is not None:
            raise ValueError("--tls-crl needs --tls-client-ca")
        return
    if not bundle.is_file():
        raise ValueError(f"--tls-client-ca {bundle}: not a readable PEM file")
    if crl is not None and not os.path.exists(crl):
        raise ValueError(f"--tls-crl {crl}: no such file or directory")
    Authority(bundle, crl)
