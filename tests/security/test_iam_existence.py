"""Admin and STS answers do not tell a caller whether something it may not see exists:
DowngradeLabel on another tenant's (or a higher-labelled) object, AssumeRole of another
tenant's role; and a role deleted and re-created under the same name does not revive the
sessions of the old one. Real server, boto3 and the admin API.
"""

from __future__ import annotations

import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support import fixtures as functional
from tests.support.iam import Tenant, doc, s3_for
from vallum.cli.admin import AdminClient, AdminError
from vallum.iam import sts as sts_tokens
from vallum.iam.root import RootCredentials
from vallum.iam.service import open_sqlite

server, root = functional.server, functional.root

TS = "TOP SECRET"
S = "SECRET"
ALLOW_ALL = {"Effect": "Allow", "Action": ["s3:*", "vallum:DowngradeLabel", "sts:AssumeRole"],
             "Resource": "*"}


def _sts(server, key: str, secret: str, token: str | None = None):
    return boto3.client("sts", endpoint_url=server.endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        region_name=server.region, config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def tenants(server, root):
    a, b = Tenant(server, root), Tenant(server, root)
    a.bucket = "ex-" + uuid.uuid4().hex[:12]
    a.s3.create_bucket(Bucket=a.bucket)
    a.s3.put_object(Bucket=a.bucket, Key="exists.txt", Body=b"x")
    a.admin.call("CreateRole", role="secret-role", trust_policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{a.id}:root"},
         "Action": "sts:AssumeRole"}))
    return a, b


def _admin_error(client: AdminClient, action: str, **args) -> tuple[int, str, str]:
    with pytest.raises(AdminError) as exc:
        client.call(action, **args)
    return exc.value.status, exc.value.code, exc.value.message


def test_downgrade_by_another_tenant_is_the_same_for_missing_and_existing(tenants):
    a, b = tenants
    b.admin.call("CreateUser", user="prober")
    b.admin.call("PutInlinePolicy", kind="user", target="prober", name="p", document=doc(ALLOW_ALL))
    key = b.admin.call("CreateAccessKey", user="prober")
    prober = AdminClient(b.server.endpoint, key["access_key_id"], key["secret_access_key"],
                         b.server.region)
    for client in (prober, b.admin):
        there = _admin_error(client, "DowngradeLabel", bucket=a.bucket, key="exists.txt",
                             label="UNCLASSIFIED")
        absent = _admin_error(client, "DowngradeLabel", bucket=a.bucket, key="absent.txt",
                              label="UNCLASSIFIED")
        assert there == absent and there[1] == "AccessDenied"


def test_downgrade_of_a_hidden_object_is_answered_as_missing(tenants, root):
    a, _ = tenants
    a.admin.call("CreateUser", user="officer")
    a.admin.call("PutInlinePolicy", kind="user", target="officer", name="p", document=doc(ALLOW_ALL))
    root.call("SetClearance", account=a.id, user="officer", clearance=S)
    a.admin.call("CreateUser", user="top")
    a.admin.call("PutInlinePolicy", kind="user", target="top", name="p", document=doc(ALLOW_ALL))
    root.call("SetClearance", account=a.id, user="top", clearance=TS)
    key = root.call("CreateAccessKey", account=a.id, user="top")
    top = s3_for(a.server, key["access_key_id"], key["secret_access_key"])

    def labelled(params, **_):
        params["headers"]["x-vallum-classification"] = TS
    top.meta.events.register_first("before-call.s3.PutObject", labelled)
    top.put_object(Bucket=a.bucket, Key="hidden.txt", Body=b"ts")
    key = root.call("CreateAccessKey", account=a.id, user="officer")
    officer = AdminClient(a.server.endpoint, key["access_key_id"], key["secret_access_key"],
                          a.server.region)
    hidden = _admin_error(officer, "DowngradeLabel", bucket=a.bucket, key="hidden.txt", label=S)
    absent = _admin_error(officer, "DowngradeLabel", bucket=a.bucket, key="hidden.tx_", label=S)
    assert hidden[:2] == absent[:2] == (404, "NoSuchKey")
    assert hidden[2].replace("hidden.txt", "K") == absent[2].replace("hidden.tx_", "K")


def _assume(client, arn: str, **extra) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        client.assume_role(RoleArn=arn, RoleSessionName="probe", **extra)
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def test_assume_role_of_another_tenant_is_the_same_for_missing_and_existing(tenants):
    a, b = tenants
    sts = _sts(b.server, *b.admin_key)
    there = _assume(sts, f"arn:aws:iam::{a.id}:role/secret-role")
    absent = _assume(sts, f"arn:aws:iam::{a.id}:role/absent-role")
    assert there[0] == absent[0] == "AccessDenied"
    assert there[1].replace("secret-role", "R") == absent[1].replace("absent-role", "R")
    # A malformed session policy is reported before (and regardless of) the role.
    bad = {"Policy": '{"Version": "2012-10-17"}'}
    assert _assume(sts, f"arn:aws:iam::{a.id}:role/secret-role", **bad)[0] == \
        _assume(sts, f"arn:aws:iam::{a.id}:role/absent-role", **bad)[0] == "MalformedPolicyDocument"


def test_a_recreated_role_does_not_revive_old_sessions(tenants):
    a, _ = tenants
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{a.id}:root"},
                 "Action": "sts:AssumeRole"})
    a.admin.call("CreateRole", role="phoenix", trust_policy=trust)
    a.admin.call("PutInlinePolicy", kind="role", target="phoenix", name="p",
                 document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    arn = f"arn:aws:iam::{a.id}:role/phoenix"
    creds = _sts(a.server, *a.admin_key).assume_role(RoleArn=arn, RoleSessionName="old")["Credentials"]
    old = s3_for(a.server, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    old.list_objects_v2(Bucket=a.bucket)
    a.admin.call("DeleteRole", role="phoenix")
    a.admin.call("CreateRole", role="phoenix", trust_policy=trust)
    a.admin.call("PutInlinePolicy", kind="role", target="phoenix", name="p",
                 document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    with pytest.raises(ClientError) as exc:
        old.list_objects_v2(Bucket=a.bucket)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    creds = _sts(a.server, *a.admin_key).assume_role(RoleArn=arn, RoleSessionName="new")["Credentials"]
    s3_for(a.server, creds["AccessKeyId"], creds["SecretAccessKey"],
           creds["SessionToken"]).list_objects_v2(Bucket=a.bucket)


def test_a_recreated_role_does_not_revive_sessions_without_a_role_id(tenants, server):
    """Sessions minted elsewhere (compute tasks) may not carry the role id: the role's
    creation time still ends them."""
    a, _ = tenants
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{a.id}:root"},
                 "Action": "sts:AssumeRole"})
    a.admin.call("CreateRole", role="phoenix2", trust_policy=trust)
    a.admin.call("PutInlinePolicy", kind="role", target="phoenix2", name="p",
                 document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    data = server.data_dir
    iam = open_sqlite(data, data / "meta.sqlite3", RootCredentials(server.access_key,
                                                                    server.secret_key), "x")
    try:
        session = sts_tokens.new_session(account=a.id, duration=900, role="phoenix2",
                                         session_name="task")
        token = sts_tokens.encode(iam.master_key, session)
    finally:
        iam.close()
    old = s3_for(a.server, session.access_key_id, session.secret, token)
    old.list_objects_v2(Bucket=a.bucket)
    time.sleep(0.01)
    a.admin.call("DeleteRole", role="phoenix2")
    a.admin.call("CreateRole", role="phoenix2", trust_policy=trust)
    a.admin.call("PutInlinePolicy", kind="role", target="phoenix2", name="p",
                 document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    with pytest.raises(ClientError) as exc:
        old.list_objects_v2(Bucket=a.bucket)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
