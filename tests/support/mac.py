"""MAC test helpers: label headers, clients that add them, and a World of users at several
clearances sharing one bucket (tests/functional/test_mac*.py, tests/security)."""

from __future__ import annotations

import uuid

import boto3
from botocore.config import Config

from vallum.cli.admin import AdminClient

LABEL = "x-vallum-classification"
SESSION = "x-vallum-session-level"
TS = "TOP SECRET//SI//NOFORN"
S = "SECRET//NOFORN"
U = "UNCLASSIFIED"
ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
ALLOW_DOWNGRADE = {"Effect": "Allow", "Action": "vallum:DowngradeLabel", "Resource": "*"}


def client(server, key: str, secret: str, headers: dict[str, str] | None = None):
    """An S3 client that adds ``headers`` (e.g. a session level) to every request."""
    c = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=key,
                     aws_secret_access_key=secret, region_name=server.region,
                     config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    if headers:
        def add(params, **_):
            params["headers"].update(headers)
        c.meta.events.register("before-call.s3", add)
    return c


def with_headers(c, headers: dict[str, str]):
    """Context-free helper: register extra headers for the next calls of ``c`` only."""
    def add(params, **_):
        params["headers"].update(headers)
    c.meta.events.register_first("before-call.s3", add)
    return add


def put(c, bucket: str, key: str, body: bytes, label: str | None = None):
    add = with_headers(c, {LABEL: label} if label else {})
    try:
        return c.put_object(Bucket=bucket, Key=key, Body=body)
    finally:
        c.meta.events.unregister("before-call.s3", add)


class World:
    """One account with users at several clearances and one bucket they share."""

    def __init__(self, server) -> None:
        self.server = server
        self.root = AdminClient(server.endpoint, server.access_key, server.secret_key, server.region)
        out = self.root.call("CreateAccount", name="mac-" + uuid.uuid4().hex[:8])
        self.account = out["account"]["id"]
        admin_key = out["admin_key"]
        self.admin = AdminClient(server.endpoint, admin_key["access_key_id"],
                                 admin_key["secret_access_key"], server.region)
        self.keys: dict[str, tuple[str, str]] = {}
        for name, clearance, extra in (("top", TS, ()), ("sec", S, ()), ("unc", None, ()),
                                       ("officer", TS, (ALLOW_DOWNGRADE,))):
            self.admin.call("CreateUser", user=name)
            self.admin.call("PutInlinePolicy", kind="user", target=name, name="p",
                            document={"Version": "2012-10-17", "Statement": [ALLOW_S3, *extra]})
            if clearance:
                self.root.call("SetClearance", account=self.account, user=name, clearance=clearance)
            # A cleared user's key is minted by the root (an uncleared admin may not).
            key = self.root.call("CreateAccessKey", account=self.account, user=name)
            self.keys[name] = (key["access_key_id"], key["secret_access_key"])
        self.top = self.s3("top")
        self.sec = self.s3("sec")
        self.unc = self.s3("unc")
        self.bucket = "mac-" + uuid.uuid4().hex[:12]
        self.top.create_bucket(Bucket=self.bucket)
        self.top.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        # The TS user writes at each level by lowering its session level.
        self.s3("top", U).put_object(Bucket=self.bucket, Key="u.txt", Body=b"public")
        put(self.s3("top", S), self.bucket, "s.txt", b"secret", S)
        put(self.top, self.bucket, "ts/x.txt", b"top secret", TS)
        put(self.top, self.bucket, "ts/y2.txt", b"top secret 2", TS)

    def s3(self, user: str, session: str | None = None):
        return client(self.server, *self.keys[user], {SESSION: session} if session else None)

    def admin_for(self, user: str) -> AdminClient:
        return AdminClient(self.server.endpoint, *self.keys[user], self.server.region)
