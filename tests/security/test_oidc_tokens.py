"""Hostile web identity tokens and trust: every forged, stale, misdirected or over-cleared
token is refused with the STS error AWS gives, and mints nothing.

Real server; tokens from a test provider (tests/support/oidc.py); boto3's unsigned STS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization

from tests.support import fixtures as functional
from tests.support.frontdoor import FrontDoor
from tests.support.iam import doc, s3_for, uid
from tests.support.oidc import Provider, trust
from vallum.cli.admin import AdminClient, AdminError

server = functional.server

TS = "TOP SECRET//SI//NOFORN"
LABEL = "x-vallum-classification"
ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unsigned(header: dict, claims: dict) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


class Account:
    def __init__(self, server, root: AdminClient) -> None:
        out = root.call("CreateAccount", name="oidc-" + uuid.uuid4().hex[:8])
        self.id = out["account"]["id"]
        k = out["admin_key"]
        self.admin = AdminClient(server.endpoint, k["access_key_id"], k["secret_access_key"],
                                 server.region)
        self.s3 = s3_for(server, k["access_key_id"], k["secret_access_key"])

    def role(self, trust_policy: dict, clearance: str | None = None, root=None) -> str:
        name = uid("web")
        self.admin.call("CreateRole", role=name, trust_policy=trust_policy)
        self.admin.call("PutInlinePolicy", kind="role", target=name, name="p",
                        document=doc(ALLOW_S3))
        if clearance:
            root.call("SetClearance", account=self.id, role=name, clearance=clearance)
        return f"arn:aws:iam::{self.id}:role/{name}"


class World:
    """Account A with provider ``idp`` (claim ``clearance`` capped at SECRET), a role
    trusting it for sub=alice (cleared TOP SECRET by the root), a SECRET and a TS object;
    account B, which has no provider."""

    def __init__(self, server) -> None:
        self.server = server
        self.root = AdminClient(server.endpoint, server.access_key, server.secret_key,
                                server.region)
        self.a, self.b = Account(server, self.root), Account(server, self.root)
        self.idp = Provider()
        self.idp_arn = self.idp.register(None, root=self.root, account=self.a.id,
                                         clearance_claim="clearance", max_clearance="SECRET")
        self.role = self.a.role(trust(self.idp_arn, self.idp.name), TS, self.root)
        self.sts = boto3.client("sts", endpoint_url=server.endpoint, region_name=server.region,
                                config=Config(signature_version=UNSIGNED,
                                              retries={"max_attempts": 1}))
        self.bucket = uid("oidc-mac")
        self.root.call("SetClearance", account=self.a.id, user="admin", clearance=TS)
        key = self.root.call("CreateAccessKey", account=self.a.id, user="admin")
        top = s3_for(server, key["access_key_id"], key["secret_access_key"])
        top.create_bucket(Bucket=self.bucket)
        for level, name in ((TS, "ts"), ("SECRET", "s")):
            s3_for(server, key["access_key_id"], key["secret_access_key"], headers={
                LABEL: level, "x-vallum-session-level": level}).put_object(
                    Bucket=self.bucket, Key=name, Body=name.encode())

    def assume(self, token: str, role: str | None = None) -> dict:
        return self.sts.assume_role_with_web_identity(
            RoleArn=role or self.role, RoleSessionName="probe", WebIdentityToken=token)

    def refused(self, token: str, code: str, role: str | None = None) -> None:
        with pytest.raises(ClientError) as exc:
            self.assume(token, role)
        assert exc.value.response["Error"]["Code"] == code, exc.value.response

    def readable(self, creds: dict) -> set[str]:
        s3 = s3_for(self.server, creds["AccessKeyId"], creds["SecretAccessKey"],
                    creds["SessionToken"])
        out = set()
        for key in ("ts", "s"):
            try:
                s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                out.add(key)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied")
        return out


@pytest.fixture(scope="module")
def world(server) -> World:
    return World(server)


def test_a_good_token_works(world):
    assert world.assume(world.idp.token())["SubjectFromWebIdentityToken"] == "alice"


def test_wrong_issuer(world):
    other = Provider()          # a lookalike issuer nobody registered, same keys
    other.rsa, other.kids = world.idp.rsa, world.idp.kids
    world.refused(other.token(), "InvalidIdentityToken")
    world.refused(world.idp.token(iss=world.idp.url + "/"), "InvalidIdentityToken")
    world.refused(world.idp.token(iss=world.idp.url.replace("https", "http")),
                  "InvalidIdentityToken")


def test_wrong_audience(world):
    world.refused(world.idp.token(aud="someone-else"), "InvalidIdentityToken")


def test_expired(world):
    now = int(time.time())
    world.refused(world.idp.token(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
                  "ExpiredTokenException")


def test_not_yet_valid(world):
    now = int(time.time())
    world.refused(world.idp.token(nbf=now + 3600, exp=now + 7200), "InvalidIdentityToken")
    world.refused(world.idp.token(iat=now + 3600, exp=now + 7200), "InvalidIdentityToken")


def test_missing_exp(world):
    world.refused(world.idp.token(exp=None), "InvalidIdentityToken")


def test_alg_none(world):
    claims = world.idp.claims()
    for alg in ("none", "None", "NONE"):
        world.refused(_unsigned({"alg": alg, "typ": "JWT", "kid": world.idp.kids["RS256"]},
                                claims) + ".", "InvalidIdentityToken")


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_hmac_with_the_public_key_as_secret(world, alg):
    """Algorithm confusion: an HMAC over the token keyed with the provider's public key."""
    pem = world.idp.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _unsigned({"alg": alg, "typ": "JWT", "kid": world.idp.kids["RS256"]},
                     world.idp.claims())
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    sig = _b64(hmac.new(pem, head.encode(), digest).digest())
    world.refused(f"{head}.{sig}", "InvalidIdentityToken")


def test_unknown_kid(world):
    world.refused(world.idp.token(kid="not-a-key"), "InvalidIdentityToken")


def test_key_of_the_wrong_type(world):
    """ES256 naming the RSA key's kid: no key of the algorithm's type answers to it."""
    world.refused(world.idp.token(alg="ES256", kid=world.idp.kids["RS256"]),
                  "InvalidIdentityToken")


def test_key_of_another_provider(world):
    forger = Provider()
    forger.kids = world.idp.kids           # same kid, own key, the real issuer's URL
    forger.url = world.idp.url
    world.refused(forger.token(), "InvalidIdentityToken")


def test_tampered_payload(world):
    header, _, sig = world.idp.token(sub="mallory").split(".")
    payload = _b64(json.dumps(world.idp.claims("alice")).encode())   # mallory's signature
    world.refused(f"{header}.{payload}.{sig}", "InvalidIdentityToken")


def test_garbage_and_oversize(world):
    world.refused("not.a.jwt", "InvalidIdentityToken")
    world.refused(world.idp.token(pad="x" * 21000), "ValidationError")


def test_sub_not_in_the_trust_condition(world):
    world.refused(world.idp.token(sub="mallory"), "AccessDenied")


def test_clearance_claim_maps_within_role_and_cap(world):
    assert world.readable(world.assume(world.idp.token(clearance="SECRET"))["Credentials"]) \
        == {"s"}
    assert world.readable(world.assume(world.idp.token())["Credentials"]) == set()


def test_clearance_claim_above_the_cap(world):
    world.refused(world.idp.token(clearance=TS), "IDPRejectedClaim")
    world.refused(world.idp.token(clearance="NOT A LABEL"), "IDPRejectedClaim")


def test_session_never_above_the_role(world):
    """Claim and cap SECRET, role uncleared: the session reads nothing labelled."""
    role = world.a.role(trust(world.idp_arn, world.idp.name))
    creds = world.assume(world.idp.token(clearance="SECRET"), role)["Credentials"]
    assert world.readable(creds) == set()


def test_provider_of_another_account(world):
    """B's role trusting A's provider: B has no such provider, so the token is not B's;
    and B registering the same issuer does not make its tokens A's principal."""
    role_b = world.b.role(trust(world.idp_arn, world.idp.name))
    world.refused(world.idp.token(), "InvalidIdentityToken", role_b)
    world.idp.register(world.b.admin)
    world.refused(world.idp.token(), "AccessDenied", role_b)


def test_the_provider_must_be_federated_not_aws(world):
    """A trust policy naming the account root does not admit web identities."""
    role = world.a.role(doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{world.a.id}:root"},
                             "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"]}))
    world.refused(world.idp.token(), "AccessDenied", role)


def test_only_the_root_maps_clearances_or_reads_files(world):
    p = Provider()
    for extra in ({"jwks": p.jwks(), "clearance_claim": "clearance", "max_clearance": TS},
                  {"jwks_file": "/etc/passwd"}):
        args = dict(url=p.url, client_ids=[p.client_id], **extra)
        with pytest.raises(AdminError) as exc:
            world.a.admin.call("CreateOpenIDConnectProvider", **args)
        assert exc.value.code == "AccessDenied"
    assert p.url not in [x["url"] for x in world.a.admin.call(
        "ListOpenIDConnectProviders")["providers"]]


def test_an_admin_sees_only_its_own_providers(world):
    assert world.idp_arn not in [x["arn"] for x in world.b.admin.call(
        "ListOpenIDConnectProviders")["providers"]]
    with pytest.raises(AdminError) as exc:
        world.b.admin.call("DeleteOpenIDConnectProvider", arn=world.idp_arn, account=world.a.id)
    assert exc.value.code == "AccessDenied"
    assert world.root.call("GetOpenIDConnectProvider", account=world.a.id,
                           arn=world.idp_arn)["arn"] == world.idp_arn


def test_web_identity_calls_are_audited_with_the_external_identity(tmp_path):
    """Allowed and refused, the record names the verified issuer and subject (and, for a
    token that did not verify, no one: its claims are not to be believed)."""
    door = FrontDoor(tmp_path / "data")
    try:
        account, admin = door.account("audited")
        idp = Provider()
        arn = door.admin(admin, "CreateOpenIDConnectProvider", url=idp.url,
                         client_ids=[idp.client_id], jwks=idp.jwks()).json()["arn"]
        door.admin(admin, "CreateRole", role="web", trust_policy=trust(arn, idp.name))
        role = f"arn:aws:iam::{account}:role/web"
        for token, status, principal in (
                (idp.token(), 200, f"oidc:{idp.url}#alice"),
                (idp.token(sub="mallory"), 403, f"oidc:{idp.url}#mallory"),
                (idp.token(kid="forged"), 400, None)):
            reply = door.sts(None, Action="AssumeRoleWithWebIdentity", RoleArn=role,
                             RoleSessionName="s1", WebIdentityToken=token)
            assert reply.status == status, reply.body
            rec = door.audit(reply)
            assert rec["principal"] == principal and rec["target"] == role, rec
            assert rec["action"] == "sts:AssumeRoleWithWebIdentity" and rec["rule"], rec
            assert rec["decision"] == ("allow" if status == 200 else "deny"), rec
    finally:
        door.close()


@pytest.mark.parametrize("bad", ["http-url", "no-client-ids", "bad-client-id", "no-keys",
                                 "hmac-key", "both-key-sources", "relative-file",
                                 "cap-without-claim", "bad-cap"])
def test_malformed_provider_is_refused_and_stores_nothing(world, bad):
    p = Provider()
    args = dict(url=p.url, client_ids=[p.client_id], jwks=p.jwks())
    args.update({
        "http-url": {"url": p.url.replace("https", "http")},
        "no-client-ids": {"client_ids": []},
        "bad-client-id": {"client_ids": ["with space"]},
        "no-keys": {"jwks": {"keys": []}},
        "hmac-key": {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}},
        "both-key-sources": {"jwks_file": "/nonexistent/jwks.json"},
        "relative-file": {"jwks": None, "jwks_file": "jwks.json"},
        "cap-without-claim": {"max_clearance": "SECRET"},
        "bad-cap": {"clearance_claim": "c", "max_clearance": "NOT A LABEL"},
    }[bad])
    args = {k: v for k, v in args.items() if v is not None}
    with pytest.raises(AdminError) as exc:
        world.root.call("CreateOpenIDConnectProvider", account=world.a.id, **args)
    assert exc.value.code == "ValidationError", exc.value
    assert p.url not in [x["url"] for x in world.root.call(
        "ListOpenIDConnectProviders", account=world.a.id)["providers"]]
