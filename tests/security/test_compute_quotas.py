"""Every compute resource knob is capped by a platform limit and an account quota.

Tenants could ask for 65536 processes (above the host's pid limit), and nothing bounded
how many tasks one account ran at once. A refusal names the knob, the value asked, the
bound and whose bound it is.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support import fixtures as functional
from tests.support.accounts import ALLOW_COMPUTE, ALLOW_S3, Account
from tests.support.compute import client_of
from tests.support.iam import s3_for
from vallum.client import Client, VallumError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs the compute service and the admin API")

server = functional.server


@pytest.fixture(scope="module")
def tenant(server):
    acct = Account(server)
    key = acct.user("q" + uuid.uuid4().hex[:6], ALLOW_S3, ALLOW_COMPUTE)
    bucket = "quota-" + uuid.uuid4().hex[:10]
    s3_for(server, *key).create_bucket(Bucket=bucket)
    return acct, Client(server.endpoint, *key, region=server.region), bucket


def _refusal(call, *args) -> tuple[int, str, str]:
    with pytest.raises(VallumError) as exc:
        call(*args)
    return exc.value.status, exc.value.code, exc.value.message


def test_platform_limits_cap_every_knob(server, tenant):
    _, api, bucket = tenant
    job = {"runtime": "command", "command": ["true"], "output": f"s3://{bucket}/o/"}
    cases = {
        "max_procs": (65536, "resources.max_procs 65536 is over the platform limit of 256"),
        "max_files": (1 << 20, "resources.max_files 1048576 is over the platform limit of 4096"),
        "max_file_mb": (1 << 20, "resources.max_file_mb 1048576 is over the platform limit "
                                 "of 10240"),
        "memory_mb": (1 << 20, "resources.memory_mb 1048576 is over the platform limit of 8192"),
        "cpu_time_s": (1e8, "resources.cpu_time_s 100000000 is over the platform limit of "
                            "5529600"),
    }
    for knob, (value, message) in cases.items():
        assert _refusal(api.submit, {**job, "resources": {knob: value}}) == (
            403, "QuotaExceeded", message)
    assert _refusal(api.create_function, "f" + uuid.uuid4().hex[:6],
                    {"handler": "main.handler", "code": "", "resources": {"max_procs": 4096}}
                    ) == (403, "QuotaExceeded",
                          "resources.max_procs 4096 is over the platform limit of 256")


def test_account_quota_lowers_the_limits_and_only_the_root_sets_it(server, tenant):
    acct, api, bucket = tenant
    root = client_of(server)
    admin = Client(server.endpoint, *acct.admin_key, region=server.region)
    assert _refusal(admin.call, "PUT", f"/-/jobs/v1/quotas/{acct.id}", {"max_procs": 9999})[:2] \
        == (403, "AccessDenied")
    got = root.call("PUT", f"/-/jobs/v1/quotas/{acct.id}",
                    {"max_procs": 16, "wall_time_s": 30, "concurrency": 1})
    assert got["effective"]["max_procs"] == 16 and got["platform"]["max_procs"] == 256
    assert api.call("GET", f"/-/jobs/v1/quotas/{acct.id}")["effective"]["concurrency"] == 1
    job = {"runtime": "command", "command": ["true"], "output": f"s3://{bucket}/o/"}
    assert _refusal(api.submit, {**job, "resources": {"max_procs": 64}}) == (
        403, "QuotaExceeded", f"resources.max_procs 64 is over the quota of account {acct.id} "
                              "of 16")
    assert _refusal(api.submit, {**job, "resources": {"wall_time_s": 60}})[2] == (
        f"resources.wall_time_s 60 is over the quota of account {acct.id} of 30")
    assert _refusal(api.create_function, "f" + uuid.uuid4().hex[:6],
                    {"handler": "main.handler", "code": "", "timeout_s": 31})[2] == (
        f"timeout_s 31 is over the quota of account {acct.id} of 30")
    # Concurrency 1: the account's two jobs never run at the same time.
    sleeper = {"runtime": "python", "code": "import time; time.sleep(1)",
               "output": f"s3://{bucket}/o/"}
    a, b = api.submit(sleeper), api.submit(sleeper)
    for j in (a, b):
        assert api.wait(j["id"], timeout=60)["state"] == "SUCCEEDED"
    ta, tb = api.tasks(a["id"])[0], api.tasks(b["id"])[0]
    assert tb["started"] >= ta["finished"] or ta["started"] >= tb["finished"], (ta, tb)
    assert _refusal(root.call, "PUT", f"/-/jobs/v1/quotas/{acct.id}", {"max_procs": 0})[:2] == (
        400, "InvalidSpec")
    root.call("PUT", f"/-/jobs/v1/quotas/{acct.id}", {})
