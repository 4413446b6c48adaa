"""Vallum's own client-certificate check (iam/certauth.py) and the mapping rules
(iam/certmap.py), on the test PKI: each bad certificate is refused with
InvalidClientCertificate, including those OpenSSL already refuses at the handshake."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.pki import PKI
from vallum.iam import certauth, certmap

DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def _authority(tmp_path: Path, pki: PKI, *crls: bytes) -> certauth.Authority:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pki.bundle())
    crl_dir = tmp_path / "crl"
    crl_dir.mkdir(exist_ok=True)
    for i, crl in enumerate(crls):
        (crl_dir / f"{i}.crl").write_bytes(crl)
    return certauth.Authority(bundle, crl_dir)


def _verify(auth: certauth.Authority, issued, now: float | None = None):
    return auth.verify(issued.cert.public_bytes(DER), time.time() if now is None else now)


def test_good_certificate_and_what_rules_see(tmp_path, pki):
    auth = _authority(tmp_path, pki)
    c = _verify(auth, pki.client("Doe John", ou="SECRET", email="jd@ops.test", upn="1234567890@mil"))
    assert c.subject == "CN=Doe John,OU=SECRET,O=Vallum Test"
    assert c.issuer == "CN=Vallum Test Issuing CA,O=Vallum Test"
    assert c.emails() == ["jd@ops.test"] and c.upns() == ["1234567890@mil"]
    assert c.common_name == "Doe John" and len(c.fingerprint) == 64
    assert c.identity() == f"cert:{c.subject}#{c.serial}"
    assert set(c.condition_keys()) == {"vallum:certificatesubject", "vallum:certificateissuer",
                                       "vallum:certificateserial", "vallum:certificatefingerprint"}


@pytest.mark.parametrize("bad, says", [
    ("expired", "expired"), ("not_yet", "not valid before"), ("no_eku", "client authentication"),
    ("no_ds", "digitalSignature"), ("forged", "trusted"), ("unknown_ca", "trusted"),
    ("revoked", "revoked"), ("garbage", "parsed")])
def test_bad_certificates_are_refused(tmp_path, pki, bad, says):
    revoked = pki.client("alice")
    auth = _authority(tmp_path, pki, pki.crl(revoked.cert.serial_number))
    cases = {"expired": lambda: pki.client("alice", days=-1, start_days=-5),
             "not_yet": lambda: pki.client("alice", start_days=2, days=5),
             "no_eku": lambda: pki.client("alice", eku=False),
             "no_ds": lambda: pki.client("alice", digital_signature=False),
             "forged": lambda: pki.client("alice", self_signed=True),
             "unknown_ca": lambda: pki.client("alice", issuer=pki.other),
             "revoked": lambda: revoked}
    with pytest.raises(certauth.CertificateError) as exc:
        if bad == "garbage":
            auth.verify(b"\x30\x03\x02\x01\x00", time.time())
        else:
            _verify(auth, cases[bad]())
    assert exc.value.code == "InvalidClientCertificate" and exc.value.status == 400
    assert says in exc.value.message, exc.value.message
    if bad != "garbage":
        assert exc.value.claimed.startswith("CN=alice,O=Vallum Test#")


def test_revoked_intermediate_revokes_its_clients(tmp_path, pki):
    auth = _authority(tmp_path, pki, pki.crl(pki.intermediate.cert.serial_number, issuer=pki.root))
    with pytest.raises(certauth.CertificateError) as exc:
        _verify(auth, pki.client("alice"))
    assert "issuing CA" in exc.value.message


def test_a_crl_not_signed_by_the_bundle_is_ignored(tmp_path, pki):
    victim = pki.client("alice")
    forged_crl = pki.crl(victim.cert.serial_number, issuer=pki.other)   # same name, other key
    auth = _authority(tmp_path, pki, forged_crl)
    assert _verify(auth, victim).common_name == "alice"


def test_crls_are_reread_and_an_unreadable_one_keeps_the_old(tmp_path, pki):
    victim = pki.client("alice")
    auth = _authority(tmp_path, pki)
    assert _verify(auth, victim)
    (tmp_path / "crl" / "new.crl").write_bytes(pki.crl(victim.cert.serial_number))
    with pytest.raises(certauth.CertificateError):
        _verify(auth, victim)
    (tmp_path / "crl" / "broken.crl").write_bytes(b"-----BEGIN X509 CRL-----\nnot a crl\n")
    with pytest.raises(certauth.CertificateError):          # fail closed: still revoked
        _verify(auth, victim)


def test_connection_verdict_is_cached_per_connection(tmp_path, pki):
    auth = _authority(tmp_path, pki)
    tls = {"client_cert": pki.client("alice").cert.public_bytes(DER)}
    now = time.time()
    first = certauth.of_connection(tls, auth, now)
    assert isinstance(first, certauth.ClientCertificate)
    assert certauth.of_connection(tls, auth, now + 1) is first
    assert certauth.of_connection(tls, auth, now + certauth.RECHECK + 1) is not first
    assert certauth.of_connection(None, auth, now) is None
    assert certauth.of_connection(tls, None, now) is None


def test_bundle_without_a_root_is_refused(tmp_path, pki):
    bundle = tmp_path / "only-intermediate.pem"
    bundle.write_bytes(pki.intermediate.pem)
    with pytest.raises(ValueError):
        certauth.check_settings(bundle, None)
    with pytest.raises(ValueError):
        certauth.check_settings(None, tmp_path)          # CRLs without a bundle


# ---------------------------------------------------------------- mapping rules

A = "123456789012"


def _rules(tmp_path: Path, text: str) -> certmap.Rules:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return certmap.Rules(path)


def test_first_matching_rule_wins_and_all_selectors_must_match(tmp_path, pki):
    auth = _authority(tmp_path, pki)
    rules = _rules(tmp_path, f"""
[[rule]]
cn = "alice"
email = "*@ops.test"
account = "{A}"
role = "ops"
[[rule]]
subject = "CN=alice,*"
account = "{A}"
role = "fallback"
bind = false
""")
    both = _verify(auth, pki.client("alice", email="alice@ops.test"))
    assert rules.match(both).role == "ops" and rules.match(both).bind
    other_mail = _verify(auth, pki.client("alice", email="alice@elsewhere.test"))
    assert rules.match(other_mail).role == "fallback" and not rules.match(other_mail).bind
    assert rules.match(_verify(auth, pki.client("bob"))) is None


def test_numeric_identifier_in_upn(tmp_path, pki):
    auth = _authority(tmp_path, pki)
    rules = _rules(tmp_path, f'[[rule]]\nupn = "[0-9][0-9]*@mil"\naccount = "{A}"\nrole = "r"\n')
    assert rules.match(_verify(auth, pki.client("x", upn="1234567890@mil"))).role == "r"
    assert rules.match(_verify(auth, pki.client("x", upn="jdoe@mil"))) is None


@pytest.mark.parametrize("text, says", [
    ('[[rule]]\naccount = "123456789012"\nrole = "r"\n', "at least one"),
    ('[[rule]]\ncn = "a"\naccount = "12"\nrole = "r"\n', "account"),
    ('[[rule]]\ncn = "a"\naccount = "123456789012"\nrole = "r/x"\n', "role"),
    ('[[rule]]\ncn = "a"\naccount = "123456789012"\nrole = "r"\nmax_clearance = "NOPE"\n', "max_clearance"),
    ('[[rule]]\ncn = "a"\naccount = "123456789012"\nrole = "r"\nclearance_attribute = "L"\n', "clearance_attribute"),
    ('[[rule]]\ncn = "a"\naccount = "123456789012"\nrole = "r"\nbind = "no"\n', "bind"),
    ('[[rule]]\ncn = "a"\naccount = "123456789012"\nrole = "r"\nsubjct = "x"\n', "unknown"),
    ('roles = []\n', "unknown"),
    ('[[rule]]\ncn = "a"\naccount = "123456789012"\n', "exactly one of role and user"),
    ('[[rule]]\ncn = "a"\naccount = "123456789012"\nrole = "r"\nuser = "u"\n', "exactly one"),
])
def test_invalid_rules_are_refused(tmp_path, text, says):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as exc:
        certmap.load(path)
    assert says in str(exc.value)
    assert certmap.Rules(path).current() == []            # the gateway maps nothing


def test_a_broken_edit_maps_nothing_until_fixed(tmp_path, pki):
    auth = _authority(tmp_path, pki)
    rules = _rules(tmp_path, f'[[rule]]\ncn = "alice"\naccount = "{A}"\nrole = "r"\n')
    alice = _verify(auth, pki.client("alice"))
    assert rules.match(alice) is not None
    path = tmp_path / "rules.toml"
    path.write_text("[[rule]\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert rules.match(alice) is None


@pytest.mark.parametrize("ou, cap, expect", [
    (None, None, "UNCLASSIFIED"), (None, "SECRET", "UNCLASSIFIED"),
    ("UNCLASSIFIED", None, "UNCLASSIFIED"), ("CONFIDENTIAL", "SECRET", "CONFIDENTIAL"), ("SECRET", "SECRET", "SECRET"),
    ("TOP SECRET", "SECRET", ValueError), ("CONFIDENTIAL", None, ValueError),
    ("SECRET//SI", "SECRET", ValueError)])
def test_clearance_is_capped_by_the_rule(tmp_path, pki, ou, cap, expect):
    auth = _authority(tmp_path, pki)
    cap_line = f'max_clearance = "{cap}"\n' if cap else ""
    rules = _rules(tmp_path, f'[[rule]]\ncn = "a"\naccount = "{A}"\nrole = "r"\n'
                             f'clearance_attribute = "OU"\n{cap_line}')
    cert = _verify(auth, pki.client("a", ou=ou))
    rule = rules.match(cert)
    if expect is ValueError:
        with pytest.raises(ValueError):
            certmap.clearance_of(rule, cert)
    else:
        got = certmap.clearance_of(rule, cert)
        assert got == expect


def test_der_string_decoding():
    assert certauth._der_string(b"\x0c\x03abc") == "abc"
    assert certauth._der_string(b"\x0c\x81\x03abc") == "abc"
    assert certauth._der_string(b"\x0c\x04abc") is None          # length lies
    assert certauth._der_string(b"\x04\x03abc") is None          # not a string type
    assert certauth._der_string(b"\x0c\x02\xff\xfe") is None     # not UTF-8


def test_expiry_message_names_the_time(tmp_path, pki):
    auth = _authority(tmp_path, pki)
    old = pki.client("alice", days=-1, start_days=-5)
    when = old.cert.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(certauth.CertificateError) as exc:
        auth.verify(old.cert.public_bytes(DER), when.timestamp())
    assert f"{old.cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}" in exc.value.message
