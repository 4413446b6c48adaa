"""A fresh account whose users and role sessions get inline policies (compute scope tests)."""

from __future__ import annotations

import uuid

import boto3

from vallum.cli.admin import AdminClient

ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
ALLOW_COMPUTE = {"Effect": "Allow", "Action": "vallum:*", "Resource": "*"}


class Account:
    """A fresh account; users get an inline policy and a key."""

    def __init__(self, server) -> None:
        self.server = server
        self.root = AdminClient(server.endpoint, server.access_key, server.secret_key, server.region)
        out = self.root.call("CreateAccount", name="scope-" + uuid.uuid4().hex[:8])
        self.id = out["account"]["id"]
        k = out["admin_key"]
        self.admin_key = (k["access_key_id"], k["secret_access_key"])
        self.admin = AdminClient(server.endpoint, *self.admin_key, server.region)

    def user(self, name: str, *statements: dict, clearance: str | None = None) -> tuple[str, str]:
        self.admin.call("CreateUser", user=name)
        if statements:
            self.admin.call("PutInlinePolicy", kind="user", target=name, name="p",
                            document={"Version": "2012-10-17", "Statement": list(statements)})
        if clearance:
            self.root.call("SetClearance", account=self.id, user=name, clearance=clearance)
        # A cleared user's key is minted by the root (an uncleared admin may not).
        key = (self.root.call("CreateAccessKey", account=self.id, user=name) if clearance
               else self.admin.call("CreateAccessKey", user=name))
        return key["access_key_id"], key["secret_access_key"]

    def role_session(self, name: str, *statements: dict) -> tuple[str, str, str]:
        self.admin.call("CreateRole", role=name, trust_policy={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{self.id}:root"},
                           "Action": "sts:AssumeRole"}]})
        self.admin.call("PutInlinePolicy", kind="role", target=name, name="p",
                        document={"Version": "2012-10-17", "Statement": list(statements)})
        sts = boto3.client("sts", endpoint_url=self.server.endpoint,
                           aws_access_key_id=self.admin_key[0],
                           aws_secret_access_key=self.admin_key[1], region_name=self.server.region)
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{self.id}:role/{name}",
                            RoleSessionName="submitter", DurationSeconds=900)["Credentials"]
        return c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]
