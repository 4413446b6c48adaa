"""The operator follows the person behind federated sessions (issue 20): every session minted
for one OIDC subject is one entity to the detector, so a containment of that person refuses
all of their temporary keys, a new one included, and leaves other people's sessions alone."""

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


@pytest.fixture(scope="module")
def contained(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("op-person") / "data", env={"VALLUM_OPERATOR": "contain"})
    try:
        yield srv
    finally:
        stop_server(srv)


def _session(srv, role: str, idp: Provider, sub: str):
    sts = boto3.client("sts", endpoint_url=srv.endpoint, region_name=srv.region,
                       config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    c = sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName=f"{sub}-{uid('s')[-6:]}",
                                          WebIdentityToken=idp.token(sub=sub))["Credentials"]
    return s3_for(srv, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def _refused(call) -> bool:
    try:
        call()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied", exc
        return True
    return False


def test_containing_a_person_refuses_all_of_their_sessions(contained):
    srv = contained
    tenant = Tenant(srv, AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region))
    idp = Provider()
    arn = idp.register(tenant.admin)
    roles = {}
    for sub in ("alice", "bob"):
        name = uid("web")
        tenant.admin.call("CreateRole", role=name, trust_policy=trust(arn, idp.name, sub))
        tenant.admin.call("PutInlinePolicy", kind="role", target=name, name="p",
                          document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
        roles[sub] = f"arn:aws:iam::{tenant.id}:role/{name}"
    first, second = _session(srv, roles["alice"], idp, "alice"), _session(srv, roles["alice"], idp, "alice")
    bob = _session(srv, roles["bob"], idp, "bob")
    for s3 in (first, second, bob):
        s3.list_buckets()
    person = f"{tenant.id}:oidc:{idp.url}#alice"            # account, then the source identity
    journal.append(journal.directory(srv.data_dir) / journal.ACTIONS, {
        "ts": time.time(), "action": "suspend", "entity": person, "entity_type": "principal",
        "reason": "test: a person contained", "account": tenant.id, "kind": "test",
        "by": "operator", "pid": -1})
    deadline = time.monotonic() + 5
    while not _refused(first.list_buckets):
        assert time.monotonic() < deadline, "the person's suspension was not applied"
        time.sleep(0.1)
    assert _refused(second.list_buckets)                   # another of their sessions
    assert _refused(_session(srv, roles["alice"], idp, "alice").list_buckets)   # and a new one
    bob.list_buckets()                                      # another person: untouched
