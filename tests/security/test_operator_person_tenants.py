"""Another tenant cannot borrow a person's identity at the operator: it registers an OIDC
provider with the same issuer URL and mints the same subject, yet a containment of the
first tenant's person does not touch its sessions, and a containment of its own same-named
person does not touch the first tenant's (the operator's entity carries the account)."""

from __future__ import annotations

import os
import time

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, doc, s3_for, uid
from tests.support.oidc import Provider, trust
from tests.support.server import start_server, stop_server
from vallum.cli.admin import AdminClient
from vallum.operator import journal

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")


def _session(srv, tenant: Tenant, idp: Provider, arn: str):
    name = uid("web")
    tenant.admin.call("CreateRole", role=name, trust_policy=trust(arn, idp.name, "alice"))
    tenant.admin.call("PutInlinePolicy", kind="role", target=name, name="p",
                      document=doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}))
    sts = boto3.client("sts", endpoint_url=srv.endpoint, region_name=srv.region,
                       config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    c = sts.assume_role_with_web_identity(RoleArn=f"arn:aws:iam::{tenant.id}:role/{name}",
                                          RoleSessionName="alice-s",
                                          WebIdentityToken=idp.token(sub="alice"))["Credentials"]
    return s3_for(srv, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def _suspend(srv, entity: str) -> None:
    journal.append(journal.directory(srv.data_dir) / journal.ACTIONS, {
        "ts": time.time(), "action": "suspend", "entity": entity, "entity_type": "principal",
        "reason": "test", "account": "", "kind": "test", "by": "operator", "pid": -1})


def _refused_soon(call) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            call()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied", exc
            return
        assert time.monotonic() < deadline, "the suspension was not applied"
        time.sleep(0.1)


def test_a_same_named_person_of_another_tenant_is_another_entity(tmp_path):
    srv = start_server(tmp_path / "data", env={"VALLUM_OPERATOR": "contain"})
    try:
        root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
        a, b = Tenant(srv, root), Tenant(srv, root)
        real = Provider()
        forged = Provider()                   # the attacker's keys, the victim's issuer URL
        forged.host, forged.url, forged.name = real.host, real.url, real.name
        alice_a = _session(srv, a, real, real.register(a.admin))
        alice_b = _session(srv, b, forged, forged.register(b.admin))
        alice_a.list_buckets()
        alice_b.list_buckets()
        _suspend(srv, f"{b.id}:oidc:{real.url}#alice")            # B's person contained
        _refused_soon(alice_b.list_buckets)
        alice_a.list_buckets()                                   # A's alice untouched
        _suspend(srv, f"{a.id}:oidc:{real.url}#alice")
        _refused_soon(alice_a.list_buckets)
    finally:
        stop_server(srv)
