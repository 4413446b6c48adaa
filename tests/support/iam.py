"""IAM test helpers shared by the IAM test modules (their fixtures: tests/support/fixtures.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import boto3
from botocore.config import Config

from vallum.cli.admin import AdminClient


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def doc(*statements: dict) -> dict:
    """A policy document of ``statements``."""
    return {"Version": "2012-10-17", "Statement": list(statements)}


def s3_for(server, key: str, secret: str, token: str | None = None, headers=None):
    c = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=key,
                     aws_secret_access_key=secret, aws_session_token=token,
                     region_name=server.region,
                     config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    if headers:
        def add(params, **_):
            params["headers"].update(headers)
        c.meta.events.register_first("before-call.s3", add)
    return c


class Tenant:
    def __init__(self, server, root: AdminClient) -> None:
        out = root.call("CreateAccount", name=uid("acct"))
        self.id = out["account"]["id"]
        key = out["admin_key"]
        self.admin_key = (key["access_key_id"], key["secret_access_key"])
        self.admin = AdminClient(server.endpoint, *self.admin_key, server.region)
        self.s3 = s3_for(server, *self.admin_key)
        self.server = server

    def user(self, name: str, *statements: dict) -> tuple[str, str]:
        """A user with an inline policy of ``statements`` and one key: (key id, secret)."""
        self.admin.call("CreateUser", user=name)
        if statements:
            self.admin.call("PutInlinePolicy", kind="user", target=name, name="p",
                            document=doc(*statements))
        key = self.admin.call("CreateAccessKey", user=name)
        return key["access_key_id"], key["secret_access_key"]


def sts_for(server, key: str, secret: str, token: str | None = None):
    return boto3.client("sts", endpoint_url=server.endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        region_name=server.region, config=Config(retries={"max_attempts": 1}))


def code_of(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def admin_cli(server, *args: str, key=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, VALLUM_ENDPOINT=server.endpoint,
               VALLUM_ROOT_ACCESS_KEY=server.access_key, VALLUM_ROOT_SECRET_KEY=server.secret_key)
    if key:
        env["VALLUM_ACCESS_KEY"], env["VALLUM_SECRET_KEY"] = key
    return subprocess.run([sys.executable, "-m", "vallum", "admin", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def iam_for(server, key: str, secret: str, token: str | None = None):
    """boto3's IAM client on the gateway (the IAM query API, signed for service iam)."""
    return boto3.client("iam", endpoint_url=server.endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        region_name=server.region, config=Config(retries={"max_attempts": 1}))


def iam_raw(server, key: str, secret: str, params: dict[str, str],
            service: str = "iam") -> tuple[int, bytes]:
    """One form POST to ``/`` signed (SigV4) for ``service``: (status, body), for
    answers boto3 would not show byte for byte (unknown actions, error documents)."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = urlencode(params).encode()
    req = AWSRequest("POST", server.endpoint + "/", data=body,
                     headers={"content-type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(key, secret), service, server.region).add_auth(req)
    sent = urllib.request.Request(server.endpoint + "/", data=body, method="POST",
                                  headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(sent, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
