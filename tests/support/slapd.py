"""A real OpenLDAP server for the tests: Debian's ``slapd`` with a ``slapd.conf`` in a temp
directory, listening on free 127.0.0.1 ports (ldap:// with StartTLS, and ldaps://) with a
test CA made here with ``cryptography``, loaded (``slapadd``) with the LDIF of ``DIRECTORY``.

The directory holds what the LDAP identity tests need: users with a clearance in
``employeeType``, groups nested through ``groupOfNames`` member chains (and a cycle),
a user locked by the ppolicy overlay (``pwdAccountLockedTime``), and an OU where users
may write their own groups (to try spoofing a group). slapd is configured to ACCEPT an
unauthenticated bind (a DN with an empty password, ``allow bind_anon_dn``), so a test
shows that Vallum refuses it itself. Simple binds need TLS (``security simple_bind``),
so a bind that skipped StartTLS fails at slapd too.

``make test`` installs the package when it is missing (scripts/install-slapd.sh). The
caller stops the server with ``stop`` (the ``Slapd`` is a context manager).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.server import free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
BASE = "dc=vallum,dc=test"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "slapd-admin-test-only"      # the rootdn: test set-up and directory changes
PEOPLE, GROUPS, SELF = f"ou=people,{BASE}", f"ou=groups,{BASE}", f"ou=selfservice,{BASE}"
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3",
             "dave": "dave-pw-4", "erin": "erin-pw-5", "mallory": "mallory-pw-6",
             "svc-vallum": "svc-lookup-pw-7"}


def user_dn(name: str) -> str:
    return f"uid={name},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def ssha(password: str) -> str:
    """An RFC 2307 ``{SSHA}`` hash, as slapd stores passwords (never the clear text)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _person(name: str, clearance: str | None = None, locked: bool = False) -> str:
    lines = [f"dn: {user_dn(name)}", "objectClass: inetOrgPerson", f"uid: {name}",
             f"cn: {name}", f"sn: {name}", f"userPassword: {ssha(PASSWORDS[name])}"]
    if clearance:
        lines.append(f"employeeType: {clearance}")
    if locked:                 # ppolicy: locked by an administrator, until unlocked
        lines.append("pwdAccountLockedTime: 000001010000Z")
    if name == "mallory":      # a claim in an attribute the user may write: not a group
        lines.append(f"description: {group_dn('intel-staff')}")
    return "\n".join(lines)


def _group(dn: str, *members: str) -> str:
    return "\n".join([f"dn: {dn}", "objectClass: groupOfNames", f"cn: {dn.split(',')[0][3:]}",
                      *(f"member: {m}" for m in members)])


def directory_ldif() -> str:
    """Users, nested groups, a locked user and a self-service OU (see the module doc)."""
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: vallum\no: Vallum test",
        *(f"dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}"
          for ou in ("people", "groups", "policies", "selfservice")),
        f"dn: cn=default,ou=policies,{BASE}\nobjectClass: person\nobjectClass: pwdPolicy\n"
        "cn: default\nsn: default\npwdAttribute: userPassword\npwdLockout: TRUE",
        _person("alice", "SECRET"), _person("bob", "TOP SECRET"), _person("carol"),
        _person("dave", "SECRET", locked=True), _person("erin", "CONFIDENTIAL"),
        _person("mallory", "SECRET"), _person("svc-vallum"),
        # intel-staff <- analysts <- {alice, bob, dave, erin}: they are in intel-staff only
        # through the nesting; loop-a <-> loop-b is a cycle that must end the walk.
        _group(group_dn("intel-staff"), group_dn("analysts")),
        _group(group_dn("analysts"), user_dn("alice"), user_dn("bob"), user_dn("dave"),
               user_dn("erin")),
        _group(group_dn("devs"), user_dn("carol"), user_dn("erin")),
        _group(group_dn("loop-a"), group_dn("loop-b")),
        _group(group_dn("loop-b"), group_dn("loop-a"), user_dn("carol")),
        # mallory's own "intel-staff", in the OU users may write: same cn, another DN.
        _group(f"cn=intel-staff,{SELF}", user_dn("mallory")),
    ]
    return "\n\n".join(entries) + "\n"


def _conf(root: Path) -> str:
    return f"""
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
TLSCACertificateFile {root}/ca.pem
TLSCertificateFile {root}/server.pem
TLSCertificateKeyFile {root}/server.key
allow bind_anon_dn
security simple_bind=128

database mdb
maxsize 33554432
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ssha(ADMIN_PASSWORD)}
directory {root}/db
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE}"
access to attrs=userPassword by self write by anonymous auth by * none
access to dn.subtree="{SELF}" by users write by * none
access to * by users read by * none
"""


def make_certs(root: Path, host: str = "127.0.0.1") -> None:
    """A test CA (``ca.pem``) and a server certificate for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vallum slapd test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (root / "server.key").write_bytes(pem)
    (root / "server.key").chmod(0o600)


@dataclass
class Slapd:
    root: Path
    port: int                  # ldap:// (StartTLS)
    tls_port: int              # ldaps://
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> str:
        return str(self.root / "ca.pem")

    def admin(self):
        """An ldap3 connection bound as the rootdn over StartTLS (test set-up only)."""
        import ssl

        import ldap3
        tls = ldap3.Tls(ca_certs_file=self.ca_file, validate=ssl.CERT_REQUIRED)
        conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=self.port, tls=tls),
                                user=ADMIN_DN, password=ADMIN_PASSWORD, receive_timeout=10)
        conn.open()
        conn.start_tls()
        if not conn.bind():
            raise RuntimeError(f"slapd admin bind failed: {conn.result}")
        return conn

    def modify(self, dn: str, changes: dict) -> None:
        """Apply ldap3 ``changes`` to ``dn`` as the rootdn (a directory change under test)."""
        conn = self.admin()
        try:
            if not conn.modify(dn, changes):
                raise RuntimeError(f"slapd modify {dn} failed: {conn.result}")
        finally:
            conn.unbind()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Slapd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(root: Path, cert_ip: str = "127.0.0.1") -> Slapd:
    """Configure, load and start a slapd in ``root`` (created); the caller stops it. Its
    certificate names ``cert_ip`` and localhost (another address: a name mismatch)."""
    if not os.access(SLAPD, os.X_OK):
        raise RuntimeError("slapd not found: run scripts/install-slapd.sh (make test does) "
                           "or apt-get install slapd ldap-utils")
    root.mkdir(parents=True, exist_ok=True)
    (root / "db").mkdir()
    make_certs(root, cert_ip)
    conf = root / "slapd.conf"
    conf.write_text(_conf(root))
    conf.chmod(0o600)
    (root / "data.ldif").write_text(directory_ldif())
    loaded = subprocess.run([SLAPADD, "-q", "-f", str(conf), "-l", str(root / "data.ldif")],
                            capture_output=True, text=True, timeout=60)
    if loaded.returncode != 0:
        raise RuntimeError(f"slapadd failed: {loaded.stderr}")
    for _ in range(5):
        port, tls_port = free_port(), free_port()
        log = open(root / "slapd.log", "ab")      # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen([SLAPD, "-d", "256", "-f", str(conf), "-h",
                                 f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        server = Slapd(root, port, tls_port, proc)
        if _wait(server):
            return server
        server.proc.kill()
        server.proc.wait()
    text = (root / "slapd.log").read_text(errors="replace")
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"slapd did not start:\n{text[-4000:]}")


def _wait(server: Slapd, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        try:
            for port in (server.port, server.tls_port):
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            return True
        except OSError:
            time.sleep(0.05)
    return False
