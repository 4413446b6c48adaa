"""A test PKI made with ``cryptography``: a root, an intermediate, client certificates
(good ones and deliberately bad ones) and a CRL. Only issues; the validation under test
is Vallum's (and OpenSSL's at the handshake)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")      # Microsoft UPN otherName
NOW = dt.datetime.now(dt.timezone.utc)


def name(cn: str, ou: str | None = None, org: str = "Vallum Test") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if ou is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _upn(value: str) -> x509.OtherName:
    raw = value.encode()
    return x509.OtherName(UPN_OID, b"\x0c" + bytes([len(raw)]) + raw)   # DER UTF8String


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _ca(subject: x509.Name, key, issuer: Issued | None, path_len: int | None) -> Issued:
    signer = issuer.key if issuer else key
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer.cert.subject if issuer else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        cert = cert.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
    return Issued(cert.sign(signer, hashes.SHA256()), key)


@dataclass
class PKI:
    """root -> intermediate -> clients; ``other`` is an unrelated root (unknown CA)."""

    root: Issued = field(init=False)
    intermediate: Issued = field(init=False)
    other: Issued = field(init=False)
    revoked: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = _ca(name("Vallum Test Root CA"), _key(), None, 1)
        self.intermediate = _ca(name("Vallum Test Issuing CA"), _key(), self.root, 0)
        self.other = _ca(name("Vallum Test Root CA"), _key(), None, 1)   # same name, other key

    def client(self, cn: str, *, ou: str | None = None, email: str | None = None,
               upn: str | None = None, eku: bool = True, digital_signature: bool = True,
               days: float = 10, start_days: float = -1, issuer: Issued | None = None,
               self_signed: bool = False) -> Issued:
        key = _key()
        signer = issuer or self.intermediate
        sans: list[x509.GeneralName] = []
        if email:
            sans.append(x509.RFC822Name(email))
        if upn:
            sans.append(_upn(upn))
        subject = name(cn, ou)
        b = (x509.CertificateBuilder().subject_name(subject)
             .issuer_name(subject if self_signed else signer.cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW + dt.timedelta(days=start_days))
             .not_valid_after(NOW + dt.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature, False, not digital_signature, False,
                                          False, False, False, False, False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if eku else
                                                   ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                            critical=False))
        if not self_signed:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer.key.public_key()), critical=False)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Issued(b.sign(key if self_signed else signer.key, hashes.SHA256()), key)

    def crl(self, *serials: int, issuer: Issued | None = None) -> bytes:
        signer = issuer or self.intermediate
        b = (x509.CertificateRevocationListBuilder().issuer_name(signer.cert.subject)
             .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=7)))
        for serial in serials:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                          .revocation_date(NOW - dt.timedelta(minutes=5)).build())
        return b.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def bundle(self) -> bytes:
        """The CA bundle a server trusts for client certificates: root and intermediate."""
        return self.root.pem + self.intermediate.pem


def write_client(out: Path, stem: str, issued: Issued) -> tuple[str, str]:
    """(cert path, key path) for requests' ``cert=`` and ssl.load_cert_chain; key 0600."""
    cert, key = out / f"{stem}.pem", out / f"{stem}.key"
    cert.write_bytes(issued.pem)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(issued.key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return str(cert), str(key)
