"""Client certificates (mutual TLS) end to end: `vallum serve --tls-client-ca/--tls-crl/
--tls-client-map`, STS AssumeRoleWithCertificate in MinIO's form over ``requests`` with a
client certificate, then boto3 (with and without the certificate) using the keys.

The PKI is tests/support/pki.py: root -> intermediate -> clients, a CRL, and bad
certificates. Every refusal is the STS error MinIO/AWS give and is audited with the
certificate's subject and serial.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, SSLError

from tests.support.iam import doc, uid
from tests.support.pki import PKI, write_client
from tests.support.server import dev_certs, start_server, stop_server
from vallum.s3.sigv4 import sign_headers
from vallum.security.audit.log import log_path, query

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="starts its own server")
NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
ACTION = {"Action": "AssumeRoleWithCertificate", "Version": "2011-06-15"}


class Admin:
    """The JSON admin API over HTTPS trusting the dev CA (AdminClient trusts the system's)."""

    def __init__(self, endpoint: str, key: str, secret: str, ca: str) -> None:
        self.endpoint, self.key, self.secret, self.ca = endpoint, key, secret, ca

    def call(self, action: str, **args):
        body = json.dumps(args).encode()
        url = f"{self.endpoint}/-/admin/v1/{action}"
        headers = sign_headers("POST", url, {"content-type": "application/json"},
                               hashlib.sha256(body).hexdigest(), self.key, self.secret,
                               "us-east-1", time.time())
        reply = requests.post(url, data=body, headers=headers, verify=self.ca, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()


def _rules(world, *extra: str) -> None:
    """The root's mapping rules file (re-read by the gateway when it changes)."""
    a = world.account
    text = f"""
[[rule]]
subject = "CN=alice,OU=*,O=Vallum Test"
account = "{a}"
role = "cert-ops"
max_clearance = "SECRET"
clearance_attribute = "OU"

[[rule]]
upn = "[0-9]*@mil"
account = "{a}"
role = "cert-ops"

[[rule]]
email = "*@loose.test"
account = "{a}"
role = "cert-loose"
bind = false

[[rule]]
cn = "mallory"
account = "{a}"
role = "cert-picky"

[[rule]]
cn = "uma"
account = "{a}"
user = "uma"

[[rule]]
cn = "trudy"
account = "{a}"
role = "cert-aws-only"
""" + "\n".join(extra)
    tmp = world.rules.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, world.rules)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("mtls")
    pki = PKI()
    certs = dev_certs(base / "certs")
    (base / "clients").mkdir()
    bundle = base / "client-ca.pem"
    bundle.write_bytes(pki.bundle())
    crl_dir = base / "crl"
    crl_dir.mkdir()
    made = {
        "alice": pki.client("alice", ou="CONFIDENTIAL", email="alice@ops.test"),
        "alice_ts": pki.client("alice", ou="TOP SECRET"),
        "edipi": pki.client("Doe John 1234567890", upn="1234567890@mil"),
        "loose": pki.client("lou", email="lou@loose.test"),
        "mallory": pki.client("mallory"),
        "uma": pki.client("uma"),
        "trudy": pki.client("trudy"),
        "nobody": pki.client("nobody", ou="CONFIDENTIAL"),
        "revoked": pki.client("alice", ou="CONFIDENTIAL"),
        "expired": pki.client("alice", ou="CONFIDENTIAL", days=-1, start_days=-5),
        "no_eku": pki.client("alice", ou="CONFIDENTIAL", eku=False),
        "no_ds": pki.client("alice", ou="CONFIDENTIAL", digital_signature=False),
        "forged": pki.client("alice", ou="CONFIDENTIAL", self_signed=True),
        "unknown_ca": pki.client("alice", ou="CONFIDENTIAL", issuer=pki.other),
    }
    (crl_dir / "issuing.crl").write_bytes(pki.crl(made["revoked"].cert.serial_number))
    paths = {k: write_client(base / "clients", k, v) for k, v in made.items()}
    rules = base / "rules.toml"
    rules.write_text("")
    srv = start_server(base / "data", "--tls-client-ca", str(bundle), "--tls-crl", str(crl_dir),
                       "--tls-client-map", str(rules), tls_certs=certs)
    try:
        ca = str(certs / "ca.pem")
        root = Admin(srv.endpoint, srv.access_key, srv.secret_key, ca)
        out = root.call("CreateAccount", name=uid("certs"))
        account = out["account"]["id"]
        k = out["admin_key"]
        admin = Admin(srv.endpoint, k["access_key_id"], k["secret_access_key"], ca)
        w = SimpleNamespace(server=srv, pki=pki, certs=made, paths=paths, ca=ca, root=root,
                            admin=admin, account=account, rules=rules, base=base,
                            admin_key=(k["access_key_id"], k["secret_access_key"]))
        trust = {"Effect": "Allow", "Principal": {"Federated": "cert"},
                 "Action": "sts:AssumeRoleWithCertificate"}
        for role, statement in (("cert-ops", trust), ("cert-loose", trust),
                                ("cert-picky", {**trust, "Condition": {"StringEquals": {
                                    "vallum:CertificateSubject": "CN=mallory,O=Other"}}})):
            admin.call("CreateRole", role=role, trust_policy=doc(statement))
            admin.call("PutInlinePolicy", kind="role", target=role, name="p",
                       document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
        root.call("SetClearance", account=account, role="cert-ops", clearance="SECRET")
        admin.call("CreateRole", role="cert-aws-only", trust_policy=doc({   # no Federated "cert"
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": ["sts:AssumeRole", "sts:AssumeRoleWithCertificate"]}))
        admin.call("CreateUser", user="uma")
        admin.call("PutInlinePolicy", kind="user", target="uma", name="p", document=doc(
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}))
        _rules(w)
        # Labelled objects, written by the account's admin cleared TOP SECRET.
        root.call("SetClearance", account=account, user="admin", clearance="TOP SECRET")
        top = root.call("CreateAccessKey", account=account, user="admin")
        w.labelled = uid("mtls-mac")
        _s3(w, (top["access_key_id"], top["secret_access_key"])).create_bucket(Bucket=w.labelled)
        for level, key in (("CONFIDENTIAL", "c"), ("SECRET", "s")):
            client = _s3(w, (top["access_key_id"], top["secret_access_key"]))
            client.meta.events.register_first("before-call.s3", lambda params, level=level, **_:
                                              params["headers"].update({
                                                  "x-vallum-classification": level,
                                                  "x-vallum-session-level": level}))
            client.put_object(Bucket=w.labelled, Key=key, Body=key.encode())
        yield w
    finally:
        stop_server(srv)


def _s3(world, key: tuple[str, str], token: str | None = None, cert: str | None = None):
    return boto3.client("s3", endpoint_url=world.server.endpoint, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        aws_session_token=token, verify=world.ca,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      client_cert=world.paths[cert] if cert else None))


def sts_call(world, who: str | None, *, query: bool = False, **params: str) -> requests.Response:
    """MinIO's form: POST over TLS with the client certificate, no signature."""
    cert = world.paths[who] if who else None
    fields = {**ACTION, **params}
    if query:          # curl -X POST "https://host?Action=...": parameters in the query
        return requests.post(world.server.endpoint + "/", params=fields, cert=cert,
                             verify=world.ca, timeout=30)
    return requests.post(world.server.endpoint + "/", data=fields, cert=cert, verify=world.ca,
                         timeout=30)


def error_of(reply: requests.Response) -> tuple[int, str]:
    root = ET.fromstring(reply.content)
    return reply.status_code, root.find(f"{NS}Error/{NS}Code").text


def credentials(reply: requests.Response) -> dict[str, str]:
    assert reply.status_code == 200, reply.text
    c = ET.fromstring(reply.content).find(f"{NS}AssumeRoleWithCertificateResult/{NS}Credentials")
    return {e.tag.removeprefix(NS): e.text for e in c}


def audit_of(world, reply: requests.Response) -> dict:
    rid = ET.fromstring(reply.content).find(f".//{NS}RequestId").text
    found = [r for r in query(log_path(world.server.data_dir)) if r.get("request_id") == rid]
    assert len(found) == 1, rid
    return found[0]


def s3_with(world, c: dict[str, str], who: str | None):
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                 client_cert=world.paths[who] if who else None)
    return boto3.client("s3", endpoint_url=world.server.endpoint, region_name="us-east-1",
                        aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                        aws_session_token=c["SessionToken"], verify=world.ca, config=cfg)


def test_certificate_session_reaches_s3_only_with_its_certificate(world):
    reply = sts_call(world, "alice", DurationSeconds="900")
    c = credentials(reply)
    assert c["AccessKeyId"].startswith("ASIA")
    rec = audit_of(world, reply)
    alice = world.certs["alice"].cert
    identity = f"cert:{alice.subject.rfc4514_string()}#{alice.serial_number:X}"
    assert rec["principal"] == identity and rec["decision"] == "allow"
    assert rec["action"] == "sts:AssumeRoleWithCertificate"
    assert rec["target"] == f"arn:aws:iam::{world.account}:role/cert-ops"
    assert c["AccessKeyId"] in rec["rule"] and "clearance ceiling CONFIDENTIAL" in rec["rule"]
    s3 = s3_with(world, c, "alice")
    name = uid("mtls")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"by certificate")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"by certificate"
    # The same keys without the certificate, or over another valid certificate: refused.
    for other in (None, "edipi"):
        with pytest.raises(ClientError) as exc:
            s3_with(world, c, other).get_object(Bucket=name, Key="k")
        assert exc.value.response["Error"]["Code"] == "AccessDenied"
    # Every request of the session names the certificate; the refused ones name none.
    used = [r for r in query(log_path(world.server.data_dir), principal=c["AccessKeyId"])]
    allowed = [r for r in used if r["decision"] == "allow"]
    assert {r["operation"] for r in allowed} >= {"CreateBucket", "PutObject", "GetObject"}
    assert all(r["client_certificate"] == identity for r in allowed)
    refused = [r for r in used if r["decision"] == "deny"]
    assert len(refused) == 2 and refused[0]["client_certificate"] is None
    assert refused[1]["client_certificate"].startswith("cert:CN=Doe John 1234567890,")
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)


@pytest.mark.parametrize("who, readable", [("alice", {"c"}), ("edipi", set())])
def test_session_clearance_is_the_certificates_within_the_role(world, who, readable):
    """Role cleared SECRET; alice's certificate says CONFIDENTIAL (cap SECRET): she reads
    the CONFIDENTIAL object only. The UPN rule maps no clearance: the lowest level, never
    the role's."""
    c = credentials(sts_call(world, who))
    s3 = s3_with(world, c, who)
    seen = set()
    for key in ("c", "s"):
        try:
            s3.get_object(Bucket=world.labelled, Key=key)["Body"].read()
            seen.add(key)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied")
    assert seen == readable


def test_certificate_mapped_to_a_user_gets_the_users_rights(world):
    reply = sts_call(world, "uma")
    c = credentials(reply)
    assert ET.fromstring(reply.content).find(f".//{NS}AssumedRoleUser") is None
    assert audit_of(world, reply)["target"] == f"arn:aws:iam::{world.account}:user/uma"
    me = boto3.client("sts", endpoint_url=world.server.endpoint, region_name="us-east-1",
                      aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"], verify=world.ca,
                      config=Config(client_cert=world.paths["uma"])).get_caller_identity()
    assert me["Arn"] == f"arn:aws:iam::{world.account}:user/uma"
    s3 = s3_with(world, c, "uma")
    assert "Buckets" in s3.list_buckets()
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=uid("uma"))
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    # A RoleArn is no way around the mapping; a deleted user takes its sessions along.
    role = f"arn:aws:iam::{world.account}:role/cert-ops"
    assert error_of(sts_call(world, "uma", RoleArn=role)) == (403, "AccessDenied")
    world.admin.call("DeleteInlinePolicy", kind="user", target="uma", name="p")
    world.admin.call("DeleteUser", user="uma")
    with pytest.raises(ClientError):
        s3.list_buckets()
    assert error_of(sts_call(world, "uma")) == (403, "AccessDenied")


def test_session_policy_narrows(world):
    policy = json.dumps(doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}))
    c = credentials(sts_call(world, "alice", Policy=policy))
    s3 = s3_with(world, c, "alice")
    assert "Buckets" in s3.list_buckets()
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=uid("narrow"))
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    assert error_of(sts_call(world, "alice", Policy="{not json")) == (400, "MalformedPolicyDocument")


def test_query_form_and_upn_numeric_identifier(world):
    c = credentials(sts_call(world, "edipi", query=True))
    me = boto3.client("sts", endpoint_url=world.server.endpoint, region_name="us-east-1",
                      aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"], verify=world.ca,
                      config=Config(client_cert=world.paths["edipi"])).get_caller_identity()
    assert me["Arn"] == f"arn:aws:sts::{world.account}:assumed-role/cert-ops/Doe-John-1234567890"


def test_unbound_rule_keys_work_without_the_certificate(world):
    c = credentials(sts_call(world, "loose"))
    assert "Buckets" in s3_with(world, c, None).list_buckets()


def test_keys_never_outlive_the_certificate_and_duration_is_bounded(world):
    c = credentials(sts_call(world, "alice", DurationSeconds="3600"))
    expires = dt.datetime.strptime(c["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert expires <= world.certs["alice"].cert.not_valid_after_utc
    assert error_of(sts_call(world, "alice", DurationSeconds="60")) == (400, "ValidationError")


@pytest.mark.parametrize("who, status, code", [
    (None, 400, "MissingParameter"),
    ("revoked", 400, "InvalidClientCertificate"),
    ("expired", 400, "InvalidClientCertificate"),
    ("nobody", 403, "AccessDenied"),             # maps to nothing
    ("alice_ts", 403, "AccessDenied"),           # clearance above the rule's cap
    ("mallory", 403, "AccessDenied"),            # trust condition on the subject refuses
    ("trudy", 403, "AccessDenied"),              # trust names an AWS principal, not "cert"
])
def test_refused_certificates_get_sts_errors_and_are_audited(world, who, status, code):
    reply = sts_call(world, who)
    assert error_of(reply) == (status, code), reply.text
    rec = audit_of(world, reply)
    assert rec["decision"] == "deny" and rec["action"] == "sts:AssumeRoleWithCertificate"
    assert rec["rule"], rec
    if who is not None:
        cert = world.certs[who].cert
        assert rec["principal"] == f"cert:{cert.subject.rfc4514_string()}#{cert.serial_number:X}"


@pytest.mark.parametrize("who", ["forged", "unknown_ca", "no_eku", "no_ds"])
def test_handshake_refuses_what_openssl_can_judge(world, who):
    """A certificate that does not chain to the bundle (a self-signed one with alice's
    subject, or another CA's), or is not for client authentication (no clientAuth EKU, no
    digitalSignature), fails the TLS handshake with OpenSSL's alert (with TLS 1.3 the
    client sees it as the connection closing): no request is read, nothing is minted."""
    before = sum(1 for _ in query(log_path(world.server.data_dir)))
    with pytest.raises(requests.exceptions.ConnectionError):
        sts_call(world, who)
    after = [r for r in query(log_path(world.server.data_dir))][before:]
    assert not any(r.get("action") == "sts:AssumeRoleWithCertificate"
                   and r.get("decision") == "allow" for r in after)


def test_role_arn_must_be_the_mapped_one(world):
    other = f"arn:aws:iam::{world.account}:role/cert-loose"
    assert error_of(sts_call(world, "alice", RoleArn=other)) == (403, "AccessDenied")
    mapped = f"arn:aws:iam::{world.account}:role/cert-ops"
    assert credentials(sts_call(world, "alice", RoleArn=mapped))["AccessKeyId"]


def test_certificate_condition_keys_in_bucket_policy(world):
    """Plain SigV4 keys over a certificate connection: the certificate's subject is a
    condition key, so a bucket can demand one."""
    name = uid("mtlsbp")
    s3 = boto3.client("s3", endpoint_url=world.server.endpoint, region_name="us-east-1",
                      aws_access_key_id=world.admin_key[0], aws_secret_access_key=world.admin_key[1],
                      verify=world.ca, config=Config(s3={"addressing_style": "path"},
                                                     client_cert=world.paths["alice"]))
    s3.create_bucket(Bucket=name)
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(doc({
        "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{name}/*",
        "Condition": {"StringNotLike": {"vallum:CertificateSubject": "CN=alice,*"}}})))
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"x"
    plain = boto3.client("s3", endpoint_url=world.server.endpoint, region_name="us-east-1",
                         aws_access_key_id=world.admin_key[0],
                         aws_secret_access_key=world.admin_key[1], verify=world.ca,
                         config=Config(s3={"addressing_style": "path"}))
    with pytest.raises(ClientError) as exc:
        plain.get_object(Bucket=name, Key="k")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket_policy(Bucket=name)
    s3.delete_bucket(Bucket=name)


def test_crl_directory_is_reread(world):
    """A CRL added while serving revokes at once for a new connection (an open one is
    re-checked within certauth.RECHECK seconds)."""
    victim = world.pki.client("alice", ou="CONFIDENTIAL")
    cert, key = write_client(world.base / "clients", "victim", victim)
    world.paths["victim"] = (cert, key)
    c = credentials(sts_call(world, "victim"))
    assert "Buckets" in s3_with(world, c, "victim").list_buckets()
    (world.base / "crl" / "later.crl").write_bytes(world.pki.crl(victim.cert.serial_number))
    assert error_of(sts_call(world, "victim")) == (400, "InvalidClientCertificate")
    # Keys bound to the certificate die with it (a new connection is checked at once).
    with pytest.raises(ClientError) as exc:
        s3_with(world, c, "victim").list_buckets()
    assert exc.value.response["Error"]["Code"] == "AccessDenied"


def test_plain_http_clients_and_no_certificate_still_sign(world):
    """Client certificates are optional by default: SigV4 without one works as before."""
    s3 = boto3.client("s3", endpoint_url=world.server.endpoint, region_name="us-east-1",
                      aws_access_key_id=world.admin_key[0], aws_secret_access_key=world.admin_key[1],
                      verify=world.ca)
    assert "Buckets" in s3.list_buckets()


def test_required_mode_refuses_a_handshake_without_certificate(tmp_path):
    """Two worker processes: the settings and the TLS context reach each of them."""
    pki = PKI()
    certs = dev_certs(tmp_path / "certs")
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pki.bundle())
    srv = start_server(tmp_path / "data", "--tls-client-ca", str(bundle),
                       "--tls-client-auth", "required", "--workers", "2", tls_certs=certs,
                       client_cert=write_client(tmp_path, "probe", pki.client("probe")))
    try:
        with pytest.raises((SSLError, requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.post(srv.endpoint + "/", data=ACTION, verify=str(certs / "ca.pem"), timeout=10)
        ok = requests.post(srv.endpoint + "/", data=ACTION, verify=str(certs / "ca.pem"),
                           cert=write_client(tmp_path, "c", pki.client("c")), timeout=10)
        assert error_of(ok) == (403, "AccessDenied")        # no rules: maps to nothing
    finally:
        stop_server(srv)


def test_bad_settings_are_refused_at_start(tmp_path):
    certs = dev_certs(tmp_path / "certs")
    for args, says in (
            (["--tls-client-ca", str(tmp_path / "missing.pem"), "--tls-cert",
              str(certs / "server.pem"), "--tls-key", str(certs / "server.key")], "tls-client-ca"),
            (["--tls-client-ca", str(certs / "ca.pem")], "needs --tls-cert"),
            (["--tls-client-auth", "sometimes"], "optional")):
        out = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir",
                              str(tmp_path / "d"), *args], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 2 and says in out.stderr, out.stderr
