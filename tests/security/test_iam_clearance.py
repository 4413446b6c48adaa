"""Clearance cannot be borrowed: no discretionary administrator mints, rotates, re-enables
or assumes a credential whose clearance its own does not dominate (platform root excepted),
and a credential never carries more clearance than whoever minted it.

Real server, boto3 and the admin API; a TOP SECRET object is the prize in every test.
"""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support import fixtures as functional
from tests.support.iam import doc, s3_for
from vallum.cli.admin import AdminClient, AdminError

server = functional.server

TS = "TOP SECRET//SI//NOFORN"
LABEL = "x-vallum-classification"
ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


def _sts(server, key: str, secret: str, token: str | None = None):
    return boto3.client("sts", endpoint_url=server.endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        region_name=server.region, config=Config(retries={"max_attempts": 1}))


class World:
    """One account: an uncleared admin, a TOP SECRET user (key minted by the root), a
    user allowed only iam:CreateAccessKey, a TOP SECRET role, and a TS object."""

    def __init__(self, server) -> None:
        self.server = server
        self.root = AdminClient(server.endpoint, server.access_key, server.secret_key, server.region)
        out = self.root.call("CreateAccount", name="clr-" + uuid.uuid4().hex[:8])
        self.account = out["account"]["id"]
        k = out["admin_key"]
        self.admin_key = (k["access_key_id"], k["secret_access_key"])
        self.admin = AdminClient(server.endpoint, *self.admin_key, server.region)
        for name in ("top", "keymaker", "later"):
            self.admin.call("CreateUser", user=name)
            self.admin.call("PutInlinePolicy", kind="user", target=name, name="p",
                            document=doc(ALLOW_S3, {"Effect": "Allow", "Action": [
                                "iam:CreateAccessKey", "iam:UpdateAccessKey",
                                "sts:AssumeRole", "sts:GetSessionToken"], "Resource": "*"}))
        self.root.call("SetClearance", account=self.account, user="top", clearance=TS)
        key = self.root.call("CreateAccessKey", account=self.account, user="top")
        self.top_key = (key["access_key_id"], key["secret_access_key"])
        key = self.admin.call("CreateAccessKey", user="keymaker")
        self.keymaker = AdminClient(server.endpoint, key["access_key_id"],
                                    key["secret_access_key"], server.region)
        # A role every principal of the account may assume, cleared TOP SECRET.
        self.admin.call("CreateRole", role="ts-role", trust_policy=doc(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{self.account}:root"},
             "Action": "sts:AssumeRole"}))
        self.admin.call("PutInlinePolicy", kind="role", target="ts-role", name="p",
                        document=doc(ALLOW_S3))
        self.root.call("SetClearance", account=self.account, role="ts-role", clearance=TS)
        self.bucket = "clr-" + uuid.uuid4().hex[:12]
        top = s3_for(server, *self.top_key)
        top.create_bucket(Bucket=self.bucket)

        def labelled(params, **_):
            params["headers"][LABEL] = TS
        top.meta.events.register_first("before-call.s3.PutObject", labelled)
        top.put_object(Bucket=self.bucket, Key="ts.txt", Body=b"top secret")

    def reads_ts(self, key: str, secret: str, token: str | None = None) -> bool:
        try:
            body = s3_for(self.server, key, secret, token).get_object(
                Bucket=self.bucket, Key="ts.txt")["Body"].read()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NoSuchKey"
            return False
        return body == b"top secret"

    def role_arn(self, name: str = "ts-role") -> str:
        return f"arn:aws:iam::{self.account}:role/{name}"


@pytest.fixture(scope="module")
def world(server) -> World:
    return World(server)


def _refused(call) -> AdminError:
    with pytest.raises(AdminError) as exc:
        call()
    assert exc.value.status == 403 and exc.value.code == "AccessDenied"
    return exc.value


def test_the_owner_reads_its_ts_object(world):
    assert world.reads_ts(*world.top_key)


@pytest.mark.parametrize("who", ["admin", "keymaker"])
def test_no_key_minted_for_a_cleared_user(world, who):
    client = getattr(world, who)
    before = {k["access_key_id"] for k in world.root.call(
        "ListAccessKeys", account=world.account, user="top")["keys"]}
    _refused(lambda: client.call("CreateAccessKey", user="top"))
    after = {k["access_key_id"] for k in world.root.call(
        "ListAccessKeys", account=world.account, user="top")["keys"]}
    assert after == before


def test_no_rotation_of_a_cleared_users_key(world):
    _refused(lambda: world.admin.call("RotateAccessKey", access_key_id=world.top_key[0]))
    assert world.reads_ts(*world.top_key)         # the old key was not made Inactive either


def test_no_reenabling_of_a_cleared_users_key(world):
    key = world.root.call("CreateAccessKey", account=world.account, user="top")["access_key_id"]
    world.root.call("UpdateAccessKey", account=world.account, access_key_id=key, status="Inactive")
    _refused(lambda: world.admin.call("UpdateAccessKey", access_key_id=key, status="Active"))
    world.admin.call("UpdateAccessKey", access_key_id=key, status="Inactive")   # disabling is fine
    world.root.call("DeleteAccessKey", account=world.account, access_key_id=key)


def test_a_key_minted_before_the_clearance_does_not_gain_it(world):
    """The admin mints a key while the user is uncleared, then the root clears the user:
    the admin's key (and sessions from it) stay at the admin's clearance."""
    kept = world.admin.call("CreateAccessKey", user="later")
    kept = (kept["access_key_id"], kept["secret_access_key"])
    world.root.call("SetClearance", account=world.account, user="later", clearance=TS)
    own = world.root.call("CreateAccessKey", account=world.account, user="later")
    assert world.reads_ts(own["access_key_id"], own["secret_access_key"])
    assert not world.reads_ts(*kept)
    creds = _sts(world.server, *kept).get_session_token()["Credentials"]
    assert not world.reads_ts(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    # Nor can the kept key mint itself a fresh (cleared) key of its user.
    _refused(lambda: AdminClient(world.server.endpoint, *kept, world.server.region).call(
        "CreateAccessKey", user="later"))


def test_a_cleared_user_may_mint_its_own_keys(world):
    me = AdminClient(world.server.endpoint, *world.top_key, world.server.region)
    key = me.call("CreateAccessKey", user="top")
    assert world.reads_ts(key["access_key_id"], key["secret_access_key"])
    world.root.call("DeleteAccessKey", account=world.account, access_key_id=key["access_key_id"])


def _assume_error(client, arn: str) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        client.assume_role(RoleArn=arn, RoleSessionName="borrow")
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def test_no_assuming_a_role_above_ones_clearance(world):
    admin = _sts(world.server, *world.admin_key)
    refused = _assume_error(admin, world.role_arn())
    assert refused[0] == "AccessDenied"
    # ... answered exactly as for a role that does not exist.
    missing = _assume_error(admin, world.role_arn("no-such-role"))
    assert missing == (refused[0], refused[1].replace("ts-role", "no-such-role"))
    creds = _sts(world.server, *world.top_key).assume_role(
        RoleArn=world.role_arn(), RoleSessionName="ok")["Credentials"]
    assert world.reads_ts(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def test_a_role_session_does_not_gain_a_later_clearance(world):
    world.admin.call("CreateRole", role="later-role", trust_policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{world.account}:root"},
         "Action": "sts:AssumeRole"}))
    world.admin.call("PutInlinePolicy", kind="role", target="later-role", name="p",
                     document=doc(ALLOW_S3))
    creds = _sts(world.server, *world.admin_key).assume_role(
        RoleArn=world.role_arn("later-role"), RoleSessionName="early")["Credentials"]
    world.root.call("SetClearance", account=world.account, role="later-role", clearance=TS)
    assert not world.reads_ts(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def test_clearances_stay_root_only(world):
    _refused(lambda: world.admin.call("SetClearance", user="keymaker", clearance=TS))
