"""The AWS IAM query API on the gateway, driven by boto3's IAM client and the real awscli
(``aws iam ... --endpoint-url``) against the real server: a full lifecycle whose keys then
work for S3 under the attached policies, pagination, AWS's error codes, and STS still
answering on the same ``POST /``.
"""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import code_of, doc, iam_for, iam_raw, s3_for, sts_for, uid
from tests.support.labels import aws

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's IAM API")

READ_ONLY = "s3:GetObject", "s3:ListBucket"


def _read_only(bucket: str) -> str:
    return json.dumps(doc({"Effect": "Allow", "Action": list(READ_ONLY),
                           "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}))


def _trust(account: str) -> str:
    return json.dumps(doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                           "Action": "sts:AssumeRole"}))


def _code(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call()
    return code_of(exc), exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def admin_iam(server, tenant):
    return iam_for(server, *tenant.admin_key)


def test_lifecycle_keys_work_for_s3_under_the_attached_policies(server, tenant, admin_iam):
    iam, t = admin_iam, tenant
    bucket = uid("iamq")
    t.s3.create_bucket(Bucket=bucket)
    t.s3.put_object(Bucket=bucket, Key="report", Body=b"numbers")
    user = uid("alice")

    created = iam.create_user(UserName=user, Tags=[{"Key": "team", "Value": "ops"}])["User"]
    assert created["Arn"] == f"arn:aws:iam::{t.id}:user/{user}"
    assert created["UserId"].startswith("AIDA") and created["Path"] == "/"
    got = iam.get_user(UserName=user)["User"]
    assert got["UserId"] == created["UserId"] and got["Tags"] == [{"Key": "team", "Value": "ops"}]
    assert user in [u["UserName"] for u in iam.list_users()["Users"]]

    key = iam.create_access_key(UserName=user)["AccessKey"]
    assert key["Status"] == "Active" and key["AccessKeyId"].startswith("AKIA")
    s3 = s3_for(server, key["AccessKeyId"], key["SecretAccessKey"])
    assert code_of_s3(lambda: s3.get_object(Bucket=bucket, Key="report")) == "AccessDenied"

    arn = iam.create_policy(PolicyName=user + "-ro", PolicyDocument=_read_only(bucket),
                            Description="read the reports")["Policy"]["Arn"]
    assert arn == f"arn:aws:iam::{t.id}:policy/{user}-ro"
    group = uid("readers")
    iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    iam.add_user_to_group(GroupName=group, UserName=user)
    assert s3.get_object(Bucket=bucket, Key="report")["Body"].read() == b"numbers"
    assert code_of_s3(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"")) == "AccessDenied"
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]] == [group]
    assert [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]] == [user]
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert [g["GroupName"] for g in entities["PolicyGroups"]] == [group]
    assert entities["PolicyUsers"] == [] and entities["PolicyRoles"] == []
    assert iam.list_user_tags(UserName=user)["Tags"] == [{"Key": "team", "Value": "ops"}]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert policy["AttachmentCount"] == 1 and policy["DefaultVersionId"] == "v1"
    version = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert version["Document"] == json.loads(_read_only(bucket))

    # An inline user policy adds writes; removing the user from the group takes reads away.
    writes = json.dumps(doc({"Effect": "Allow", "Action": "s3:PutObject",
                             "Resource": f"arn:aws:s3:::{bucket}/*"}))
    iam.put_user_policy(UserName=user, PolicyName="writes", PolicyDocument=writes)
    assert iam.get_user_policy(UserName=user, PolicyName="writes")["PolicyDocument"] == json.loads(writes)
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["writes"]
    s3.put_object(Bucket=bucket, Key="x", Body=b"written")
    iam.remove_user_from_group(GroupName=group, UserName=user)
    assert code_of_s3(lambda: s3.get_object(Bucket=bucket, Key="report")) == "AccessDenied"
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    assert [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]] == [arn]
    assert s3.get_object(Bucket=bucket, Key="report")["Body"].read() == b"numbers"

    # A boundary caps the identity policies: read-only even with the inline write policy.
    iam.put_user_permissions_boundary(UserName=user, PermissionsBoundary=arn)
    assert iam.get_user(UserName=user)["User"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == arn
    assert code_of_s3(lambda: s3.put_object(Bucket=bucket, Key="y", Body=b"")) == "AccessDenied"
    assert _code(lambda: iam.delete_policy(PolicyArn=arn)) == ("DeleteConflict", 409)
    iam.delete_user_permissions_boundary(UserName=user)
    s3.put_object(Bucket=bucket, Key="y", Body=b"")

    # Keys: Inactive stops working at once, Active again works, deleted is gone.
    iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"] == "Inactive"
    assert code_of_s3(lambda: s3.get_object(Bucket=bucket, Key="report")) == "InvalidAccessKeyId"
    iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Active")
    assert s3.get_object(Bucket=bucket, Key="report")["Body"].read() == b"numbers"
    # A user's own key lists its own keys (the implicit user) once allowed to.
    me = iam_for(server, key["AccessKeyId"], key["SecretAccessKey"])
    assert _code(lambda: me.list_access_keys()) == ("AccessDenied", 403)
    iam.put_user_policy(UserName=user, PolicyName="own-keys", PolicyDocument=json.dumps(doc(
        {"Effect": "Allow", "Action": ["iam:ListAccessKeys", "iam:GetUser"],
         "Resource": f"arn:aws:iam::{t.id}:user/${{aws:username}}"})))
    assert [k["AccessKeyId"] for k in me.list_access_keys()["AccessKeyMetadata"]] == [key["AccessKeyId"]]
    assert me.get_user()["User"]["UserName"] == user

    # Deleting: AWS's order (keys, policies, groups first), DeleteConflict before.
    assert _code(lambda: iam.delete_user(UserName=user)) == ("DeleteConflict", 409)
    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    assert code_of_s3(lambda: s3.get_object(Bucket=bucket, Key="report")) == "InvalidAccessKeyId"
    assert _code(lambda: iam.delete_user(UserName=user)) == ("DeleteConflict", 409)
    for name in ("writes", "own-keys"):
        iam.delete_user_policy(UserName=user, PolicyName=name)
    assert _code(lambda: iam.delete_user(UserName=user)) == ("DeleteConflict", 409)
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    iam.delete_user(UserName=user)
    assert _code(lambda: iam.get_user(UserName=user)) == ("NoSuchEntity", 404)
    assert _code(lambda: iam.delete_group(GroupName=group)) == ("DeleteConflict", 409)
    iam.detach_group_policy(GroupName=group, PolicyArn=arn)
    iam.delete_group(GroupName=group)
    iam.delete_policy(PolicyArn=arn)
    assert _code(lambda: iam.get_policy(PolicyArn=arn)) == ("NoSuchEntity", 404)


def code_of_s3(call) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    return code_of(exc)


def test_roles_trust_policy_and_role_policies_through_sts(server, tenant, admin_iam):
    iam, t = admin_iam, tenant
    role = uid("uploader")
    bucket = uid("iamr")
    t.s3.create_bucket(Bucket=bucket)
    nobody = json.dumps(doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:user/nobody"},
                             "Action": "sts:AssumeRole"}))
    created = iam.create_role(RoleName=role, AssumeRolePolicyDocument=nobody,
                              MaxSessionDuration=7200, Description="uploads")["Role"]
    assert created["RoleId"].startswith("AROA") and created["MaxSessionDuration"] == 7200
    assert iam.get_role(RoleName=role)["Role"]["Description"] == "uploads"
    assert iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"] == []
    assert _code(lambda: iam.create_role(RoleName=uid("tagged"), AssumeRolePolicyDocument=nobody,
                                         Tags=[{"Key": "k", "Value": "v"}])) \
        == ("ValidationError", 400)
    iam.put_role_policy(RoleName=role, PolicyName="put", PolicyDocument=json.dumps(doc(
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"})))
    user = uid("assumer")
    key = t.user(user, {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})
    sts = sts_for(server, *key)
    role_arn = f"arn:aws:iam::{t.id}:role/{role}"
    with pytest.raises(ClientError):
        sts.assume_role(RoleArn=role_arn, RoleSessionName="s1")
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=_trust(t.id))
    assert iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"] == json.loads(_trust(t.id))
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="s1")["Credentials"]
    s3 = s3_for(server, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    s3.put_object(Bucket=bucket, Key="up", Body=b"1")
    # A role session is no user: GetUser needs a name, as on AWS.
    session_iam = iam_for(server, creds["AccessKeyId"], creds["SecretAccessKey"],
                          creds["SessionToken"])
    assert _code(lambda: session_iam.get_user()) == ("ValidationError", 400)
    assert _code(lambda: iam.delete_role(RoleName=role)) == ("DeleteConflict", 409)
    iam.delete_role_policy(RoleName=role, PolicyName="put")
    iam.delete_role(RoleName=role)
    assert _code(lambda: iam.get_role(RoleName=role)) == ("NoSuchEntity", 404)
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="up2", Body=b"1")    # the role is gone: so is its session


def test_pagination_as_aws(server, tenant, admin_iam):
    iam = admin_iam
    prefix = uid("page")
    names = sorted(f"{prefix}-{i:02d}" for i in range(7))
    for n in names:
        iam.create_group(GroupName=n)
    seen, marker, pages = [], None, 0
    while True:
        kwargs = {"MaxItems": 3, **({"Marker": marker} if marker else {})}
        out = iam.list_groups(**kwargs)
        pages += 1
        seen += [g["GroupName"] for g in out["Groups"]]
        assert len(out["Groups"]) <= 3
        if not out["IsTruncated"]:
            assert "Marker" not in out
            break
        marker = out["Marker"]
    assert [n for n in seen if n.startswith(prefix)] == names
    assert len(seen) == len(set(seen)) and pages >= 3
    # boto3's paginator follows the same markers
    paged = [g["GroupName"] for p in iam.get_paginator("list_groups").paginate(
        PaginationConfig={"PageSize": 2}) for g in p["Groups"]]
    assert [n for n in paged if n.startswith(prefix)] == names
    details = [g["GroupName"] for p in iam.get_paginator("get_account_authorization_details")
               .paginate(Filter=["Group"], PaginationConfig={"PageSize": 2})
               for g in p["GroupDetailList"]]
    assert [n for n in details if n.startswith(prefix)] == names
    for bad in ("0", "1001", "ten"):     # boto3 checks these itself: sent raw
        status, body = iam_raw(server, *tenant.admin_key, {"Action": "ListGroups",
                                                          "MaxItems": bad})
        assert status == 400 and b"<Code>ValidationError</Code>" in body
    assert _code(lambda: iam.list_groups(Marker="!!not-a-marker!!")) == ("InvalidInput", 400)
    for n in names:
        iam.delete_group(GroupName=n)


def test_every_error_code_as_aws(server, tenant, admin_iam):
    iam, t = admin_iam, tenant
    user = uid("errs")
    assert _code(lambda: iam.get_user(UserName=user)) == ("NoSuchEntity", 404)
    iam.create_user(UserName=user)
    assert _code(lambda: iam.create_user(UserName=user)) == ("EntityAlreadyExists", 409)
    bad = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObjekt","Resource":"*"}]}'
    assert _code(lambda: iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=bad)) \
        == ("MalformedPolicyDocument", 400)
    assert _code(lambda: iam.create_policy(PolicyName=uid("p"), PolicyDocument="{not json")) \
        == ("MalformedPolicyDocument", 400)
    big = json.dumps(doc({"Effect": "Allow", "Action": "s3:GetObject",
                          "Resource": [f"arn:aws:s3:::b/{i:05d}-padding-padding" for i in range(200)]}))
    assert _code(lambda: iam.create_policy(PolicyName=uid("big"), PolicyDocument=big)) \
        == ("LimitExceeded", 409)
    assert _code(lambda: iam.put_user_policy(UserName=user, PolicyName="big", PolicyDocument=big)) \
        == ("LimitExceeded", 409)
    for _ in range(10):
        iam.create_access_key(UserName=user)
    assert _code(lambda: iam.create_access_key(UserName=user)) == ("LimitExceeded", 409)
    assert _code(lambda: iam.delete_user(UserName=user)) == ("DeleteConflict", 409)
    assert _code(lambda: iam.create_user(UserName="bad/name")) == ("ValidationError", 400)
    status, body = iam_raw(server, *t.admin_key, {"Action": "CreateUser", "UserName": "x" * 65})
    assert status == 400 and b"<Code>ValidationError</Code>" in body
    assert _code(lambda: iam.get_policy(PolicyArn="arn:aws:iam::not-an-account:policy/x")) == ("InvalidInput", 400)
    assert _code(lambda: iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")) \
        == ("NoSuchEntity", 404)
    assert _code(lambda: iam.get_policy_version(PolicyArn=f"arn:aws:iam::{t.id}:policy/none",
                                                VersionId="v1")) == ("NoSuchEntity", 404)
    assert _code(lambda: iam.create_user(UserName=uid("p"), Path="/division/")) \
        == ("ValidationError", 400)
    assert _code(lambda: iam.update_access_key(UserName=user, AccessKeyId="AKIAXXXXXXXXXXXXXXXX",
                                               Status="Active")) == ("NoSuchEntity", 404)


def test_root_unknown_actions_and_sts_on_the_same_door(server, tenant):
    # The platform root belongs to no account: refused with a reason, not acted on.
    root_iam = iam_for(server, server.access_key, server.secret_key)
    assert _code(lambda: root_iam.list_users()) == ("AccessDenied", 403)
    status, body = iam_raw(server, *tenant.admin_key, {"Action": "Frobnicate",
                                                      "Version": "2010-05-08"})
    assert status == 400 and b"<Code>InvalidAction</Code>" in body
    assert b"<Type>Sender</Type>" in body and b"<RequestId>" in body
    status, body = iam_raw(server, *tenant.admin_key, {"Action": "ListUsers",
                                                      "Version": "2010-05-08"})
    assert status == 200 and body.startswith(
        b'<ListUsersResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">')
    assert b"<ResponseMetadata><RequestId>" in body
    # Signed for sts, the same form POST is STS's: it does not know IAM actions.
    status, body = iam_raw(server, *tenant.admin_key, {"Action": "ListUsers",
                                                      "Version": "2011-06-15"}, service="sts")
    assert status == 400 and b"InvalidAction" in body and b"sts.amazonaws.com" in body
    sts = sts_for(server, *tenant.admin_key)
    assert sts.get_caller_identity()["Account"] == tenant.id


def test_awscli_drives_the_iam_api(server, tenant):
    key = tenant.admin_key
    user = uid("cli")
    out = json.loads(aws(server, key, "iam", "create-user", "--user-name", user).stdout)
    assert out["User"]["Arn"] == f"arn:aws:iam::{tenant.id}:user/{user}"
    made = json.loads(aws(server, key, "iam", "create-access-key", "--user-name", user).stdout)
    policy = json.loads(aws(server, key, "iam", "create-policy", "--policy-name", user + "-s3",
                            "--policy-document", json.dumps(doc(
                                {"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                                 "Resource": "*"}))).stdout)["Policy"]["Arn"]
    aws(server, key, "iam", "attach-user-policy", "--user-name", user, "--policy-arn", policy)
    listed = json.loads(aws(server, key, "iam", "list-attached-user-policies", "--user-name",
                            user).stdout)
    assert [p["PolicyArn"] for p in listed["AttachedPolicies"]] == [policy]
    new = (made["AccessKey"]["AccessKeyId"], made["AccessKey"]["SecretAccessKey"])
    aws(server, new, "s3api", "list-buckets")                # the new key works for S3
    users = json.loads(aws(server, key, "iam", "list-users", "--max-items", "1").stdout)
    assert len(users["Users"]) == 1 and users.get("NextToken")
    details = json.loads(aws(server, key, "iam", "get-account-authorization-details").stdout)
    assert user in [u["UserName"] for u in details["UserDetailList"]]
    missing = aws(server, key, "iam", "get-user", "--user-name", uid("ghost"), check=False)
    assert missing.returncode != 0 and "NoSuchEntity" in missing.stderr
    aws(server, key, "iam", "detach-user-policy", "--user-name", user, "--policy-arn", policy)
    aws(server, key, "iam", "delete-access-key", "--user-name", user, "--access-key-id",
        new[0])
    aws(server, key, "iam", "delete-user", "--user-name", user)
    aws(server, key, "iam", "delete-policy", "--policy-arn", policy)
    gone = aws(server, key, "iam", "get-user", "--user-name", user, check=False)
    assert "NoSuchEntity" in gone.stderr
