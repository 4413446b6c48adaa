"""OIDC web identity end to end: a provider registered through the admin API, a role
trusting it, boto3's STS ``assume_role_with_web_identity`` (unsigned, as AWS) with a
token signed by a test key, then S3 with the returned credentials."""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.audit import audit_records
from tests.support.iam import code_of, doc, s3_for, uid
from tests.support.oidc import Provider, trust
from vallum.cli.admin import AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")


def unsigned_sts(server):
    return boto3.client("sts", endpoint_url=server.endpoint, region_name=server.region,
                        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def idp(tenant):
    p = Provider()
    p.arn = p.register(tenant.admin)
    return p


def _role(tenant, idp, sub="alice", **conditions) -> str:
    name = uid("web")
    tenant.admin.call("CreateRole", role=name, trust_policy=trust(idp.arn, idp.name, sub,
                                                                  **conditions))
    tenant.admin.call("PutInlinePolicy", kind="role", target=name, name="p",
                      document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    return f"arn:aws:iam::{tenant.id}:role/{name}"


def test_provider_admin_api(tenant, idp):
    assert idp.arn == f"arn:aws:iam::{tenant.id}:oidc-provider/{idp.name}"
    got = tenant.admin.call("GetOpenIDConnectProvider", arn=idp.arn)
    assert got["url"] == idp.url and got["client_ids"] == [idp.client_id]
    listed = tenant.admin.call("ListOpenIDConnectProviders")["providers"]
    assert idp.arn in [p["arn"] for p in listed]
    with pytest.raises(AdminError) as exc:
        idp.register(tenant.admin)
    assert exc.value.code == "EntityAlreadyExists"
    other = Provider()
    arn = other.register(tenant.admin)
    tenant.admin.call("DeleteOpenIDConnectProvider", arn=arn)
    with pytest.raises(AdminError) as exc:
        tenant.admin.call("GetOpenIDConnectProvider", arn=arn)
    assert exc.value.code == "NoSuchEntity"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_web_identity_session_reaches_s3(server, tenant, idp, alg):
    role = _role(tenant, idp)
    out = unsigned_sts(server).assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="alice-session", WebIdentityToken=idp.token(alg=alg),
        DurationSeconds=900)
    assert out["SubjectFromWebIdentityToken"] == "alice"
    assert out["Audience"] == idp.client_id
    assert out["Provider"] == idp.name
    assert out["AssumedRoleUser"]["Arn"].endswith(f":assumed-role/{role.rsplit('/', 1)[1]}"
                                                  "/alice-session")
    c = out["Credentials"]
    s3 = s3_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    name = uid("oidc")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"federated")
    got = s3.get_object(Bucket=name, Key="k")
    assert got["Body"].read() == b"federated"
    rec = audit_records(server.data_dir)[got["ResponseMetadata"]["RequestId"]]
    assert rec["source_identity"] == f"oidc:{idp.url}#alice", rec     # the session's requests
    me = boto3.client("sts", endpoint_url=server.endpoint, region_name=server.region,
                      aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"]).get_caller_identity()
    assert me["Arn"] == out["AssumedRoleUser"]["Arn"]


def test_custom_claim_and_amr_conditions(server, tenant, idp):
    role = _role(tenant, idp, equals={f"{idp.name}:unit": "7th-signal"},
                 **{"ForAnyValue:StringEquals": {f"{idp.name}:amr": "hwk"}})
    sts = unsigned_sts(server)
    ok = sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="s1",
                                           WebIdentityToken=idp.token(unit="7th-signal"))
    assert ok["Credentials"]["AccessKeyId"].startswith("ASIA")
    for token in (idp.token(unit="other"), idp.token(unit="7th-signal", amr=["pwd"])):
        with pytest.raises(ClientError) as exc:
            sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="s1",
                                              WebIdentityToken=token)
        assert code_of(exc) == "AccessDenied"


def test_session_policy_narrows(server, tenant, idp):
    role = _role(tenant, idp)
    name = uid("oidcp")
    tenant.s3.create_bucket(Bucket=name)
    out = unsigned_sts(server).assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="narrow", WebIdentityToken=idp.token(),
        Policy=json.dumps(doc({"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"})))
    c = out["Credentials"]
    s3 = s3_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    s3.list_objects_v2(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=name, Key="k", Body=b"x")
    assert code_of(exc) == "AccessDenied"


def test_other_sts_actions_stay_signed(server):
    with pytest.raises(ClientError) as exc:
        unsigned_sts(server).get_caller_identity()
    assert code_of(exc) == "MissingAuthenticationToken"


def test_jwks_file_is_reread_when_it_changes(server, root, tenant, tmp_path):
    """A root-registered provider whose keys live in a file (air-gapped key rotation):
    a rotated file is used at once; the retired key no longer verifies."""
    old, new = Provider(), Provider()
    new.url, new.host, new.name = old.url, old.host, old.name
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(old.jwks()))
    arn = root.call("CreateOpenIDConnectProvider", account=tenant.id, url=old.url,
                    client_ids=[old.client_id], jwks_file=str(path))["arn"]
    role = _role(tenant, SimpleNamespace(arn=arn, name=old.name))
    sts = unsigned_sts(server)

    def assume(token):
        return sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="rot",
                                                 WebIdentityToken=token)
    assume(old.token())
    path.write_text(json.dumps(new.jwks()))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assume(new.token(alg="ES256"))
    with pytest.raises(ClientError) as exc:
        assume(old.token())
    assert code_of(exc) == "InvalidIdentityToken"


def test_duration_is_bounded_by_the_role(server, tenant, idp):
    role = _role(tenant, idp)
    with pytest.raises(ClientError) as exc:
        unsigned_sts(server).assume_role_with_web_identity(
            RoleArn=role, RoleSessionName="long", WebIdentityToken=idp.token(),
            DurationSeconds=7200)
    assert code_of(exc) == "ValidationError"
