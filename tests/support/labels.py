"""Helpers for the label tests with stock clients: a cleared account, keys bound to
session levels, buckets with label ranges, and the real awscli run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.iam import doc, s3_for
from vallum.cli.admin import AdminClient

TS = "TOP SECRET"
S = "SECRET"
C = "CONFIDENTIAL"
U = "UNCLASSIFIED"
ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
AWS = Path(sys.executable).with_name("aws")


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Cleared:
    """One account whose users the platform root clears, and buckets made by its admin."""

    def __init__(self, server) -> None:
        self.server = server
        self.root = AdminClient(server.endpoint, server.access_key, server.secret_key, server.region)
        out = self.root.call("CreateAccount", name=uid("lbl"))
        self.account = out["account"]["id"]
        key = out["admin_key"]
        self.admin_key = (key["access_key_id"], key["secret_access_key"])
        self.admin = AdminClient(server.endpoint, *self.admin_key, server.region)

    def user(self, name: str, clearance: str | None, *statements: dict) -> str:
        self.admin.call("CreateUser", user=name)
        self.admin.call("PutInlinePolicy", kind="user", target=name, name="p",
                        document=doc(*(statements or (ALLOW_S3,))))
        if clearance:
            self.root.call("SetClearance", account=self.account, user=name, clearance=clearance)
        return name

    def key(self, user: str, level: str | None = None, minter: AdminClient | None = None,
            ) -> tuple[str, str]:
        """A key of ``user`` bound to session ``level`` (None: unbound), minted by the root."""
        args = {"account": self.account} if minter is None else {}
        if level is not None:
            args["session_level"] = level
        out = (minter or self.root).call("CreateAccessKey", user=user, **args)
        return out["access_key_id"], out["secret_access_key"]

    def s3(self, key: tuple[str, str], token: str | None = None):
        return s3_for(self.server, *key, token)

    def bucket(self, floor: str, ceiling: str) -> str:
        """A bucket of the account with label range [floor, ceiling] (made by its admin)."""
        name = uid("rng")
        c = s3_for(self.server, *self.admin_key)

        def add(params, **_):
            params["headers"].update({"x-vallum-label-floor": floor,
                                      "x-vallum-label-ceiling": ceiling})
        c.meta.events.register_first("before-call.s3.CreateBucket", add)
        c.create_bucket(Bucket=name)
        return name

def aws(server, key: tuple[str, str], *args: str, token: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run the real awscli against ``server`` (credentials in the environment, not argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1],
               AWS_DEFAULT_REGION=server.region, AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_PAGER="", AWS_MAX_ATTEMPTS="1")
    if token:
        env["AWS_SESSION_TOKEN"] = token
    out = subprocess.run([str(AWS), "--endpoint-url", server.endpoint, "--output", "json", *args],
                         env=env, capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed: {out.stderr}")
    return out
