"""What a job's own credentials may do, whoever owns it (root, IAM user, role session): read
its inputs and write its output prefix at its fixed session level, nothing else; and the
compute API's own IAM permissions (vallum:SubmitJob, ...).

The task probes the gateway with its AWS_* variables through a tiny stdlib SigV4 signer
(the sandbox's interpreter has no boto3), so every refusal seen is the gateway's.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.support.accounts import ALLOW_COMPUTE, ALLOW_S3, Account
from tests.support.compute import client_of
from tests.support.iam import s3_for
from vallum.client import Client, VallumError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")

S, C, U = "SECRET", "CONFIDENTIAL", "UNCLASSIFIED"

PROBE = r'''
import datetime, hashlib, hmac, http.client, json, os, re, urllib.parse
E = os.environ
ep = urllib.parse.urlsplit(E["AWS_ENDPOINT_URL"])

def call(method, path, body, extra):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    h = {"host": ep.netloc, "x-amz-date": amz,
         "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
         "x-amz-security-token": E["AWS_SESSION_TOKEN"], **{k.lower(): v for k, v in extra.items()}}
    names = sorted(h)
    qpath = urllib.parse.quote(path)
    canon = "\n".join([method, qpath, "", "".join(f"{n}:{h[n]}\n" for n in names),
                       ";".join(names), h["x-amz-content-sha256"]])
    scope = f"{day}/{E['AWS_REGION']}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + E["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (day, E["AWS_REGION"], "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={E['AWS_ACCESS_KEY_ID']}/{scope}, "
                          f"SignedHeaders={';'.join(names)}, Signature={sig}")
    c = http.client.HTTPConnection(ep.hostname, ep.port, timeout=10)
    c.request(method, qpath, body=body or None, headers=h)
    r = c.getresponse()
    data = r.read()
    m = re.search(rb'<Code>([^<]+)</Code>|"code": "([^"]+)"', data)
    return r.status, (m.group(1) or m.group(2)).decode() if m else "-"

print("staged", sorted(os.listdir(E["VALLUM_INPUT"])))
for method, path, extra in json.loads(E["PROBES"]):
    body = b"{}" if method == "POST" else b"probe" if method == "PUT" else b""
    print("probe", method, path, *call(method, path, body, extra))
open(os.path.join(E["VALLUM_OUTPUT"], "result"), "w").write("done")
'''


def probe_job(api: Client, bucket: str, inputs: list[str], probes: list[tuple], **extra):
    """Run PROBE as a network-enabled job; returns (job, {(method, path, i): (status, code)})."""
    job = api.submit({"runtime": "python", "code": PROBE, "network": True,
                      "inputs": [f"s3://{bucket}/{k}" for k in inputs],
                      "output": f"s3://{bucket}/out/",
                      "env": {"PROBES": json.dumps([list(p) for p in probes])}, **extra})
    done = api.wait(job["id"], timeout=60)
    log = api.logs(job["id"])["data"]
    assert done["state"] == "SUCCEEDED", (done, log)
    seen = {}
    for i, line in enumerate(x for x in log.splitlines() if x.startswith("probe ")):
        _, method, path, status, code = line.split(" ")
        seen[i] = (method, path, int(status), code)
    staged = next(x for x in log.splitlines() if x.startswith("staged "))
    return done, seen, staged



@pytest.fixture(scope="module")
def account(server) -> Account:
    return Account(server)


def _owner(kind: str, server, account: Account) -> tuple[Client, object]:
    """(compute client, boto3 s3) acting as a root, IAM-user or role-session owner."""
    if kind == "root":
        return client_of(server), server.client()
    if kind == "user":
        key = account.user("u" + uuid.uuid4().hex[:8], ALLOW_S3, ALLOW_COMPUTE)
        return Client(server.endpoint, *key, region=server.region), s3_for(server, *key)
    key, secret, token = account.role_session("r" + uuid.uuid4().hex[:8], ALLOW_S3, ALLOW_COMPUTE)
    return (Client(server.endpoint, key, secret, session_token=token, region=server.region),
            s3_for(server, key, secret, token))


@pytest.mark.parametrize("owner", ["root", "user", "role"])
def test_job_credentials_allow_only_inputs_and_output_prefix(server, account, owner):
    api, s3 = _owner(owner, server, account)
    bucket = "scope-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/a.txt", Body=b"mine")
    s3.put_object(Bucket=bucket, Key="other/b.txt", Body=b"not an input")
    done, seen, staged = probe_job(api, bucket, ["in/a.txt"], [
        ("GET", f"/{bucket}/in/a.txt", {}),                         # its input
        ("GET", f"/{bucket}/other/b.txt", {}),                      # the owner may; the job not
        ("PUT", f"/{bucket}/out/probe.txt", {}),                    # its output prefix
        ("PUT", f"/{bucket}/other/written.txt", {}),                # outside it
        ("PUT", f"/{bucket}/in/a.txt", {}),                         # overwrite an input
        ("DELETE", f"/{bucket}/in/a.txt", {}),
        ("POST", "/-/jobs/v1/jobs", {}),                            # a job cannot submit jobs
        ("POST", "/-/admin/v1/ListUsers", {}),                      # nor administer
    ])
    assert staged == "staged ['a.txt']"
    got = [(s, c) for (_, _, s, c) in seen.values()]
    assert got[0] == (200, "-") and got[2] == (200, "-"), seen
    for i in (1, 3, 4, 5, 6, 7):
        assert got[i] == (403, "AccessDenied"), seen[i]
    assert s3.get_object(Bucket=bucket, Key="out/result")["Body"].read() == b"done"
    assert s3.get_object(Bucket=bucket, Key="in/a.txt")["Body"].read() == b"mine"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="other/written")


def test_compute_permissions_are_iam_actions(server, account):
    bucket = "perm-" + uuid.uuid4().hex[:12]
    admin = Client(server.endpoint, *account.admin_key, region=server.region)
    s3_for(server, *account.admin_key).create_bucket(Bucket=bucket)
    spec = {"runtime": "command", "command": ["true"], "output": f"s3://{bucket}/o/"}
    job = admin.submit(spec)                        # the account admin: allowed by its policy
    assert admin.wait(job["id"], timeout=30)["state"] == "SUCCEEDED"

    plain = Client(server.endpoint, *account.user("plain" + uuid.uuid4().hex[:6], ALLOW_S3),
                   region=server.region)
    for call in (lambda: plain.submit(spec), lambda: plain.jobs(), lambda: plain.job(job["id"]),
                 lambda: plain.create_function("f", {"handler": "main.h", "code": "def h(e, c): 1"}),
                 lambda: plain.functions(), lambda: plain.invoke("f", 1),
                 lambda: plain.add_trigger({"bucket": bucket, "function": "f"}),
                 lambda: plain.triggers()):
        with pytest.raises(VallumError) as exc:
            call()
        assert (exc.value.status, exc.value.code) == (403, "AccessDenied")
        assert "vallum:" in exc.value.message

    submitter = Client(server.endpoint, *account.user(
        "sub" + uuid.uuid4().hex[:6], ALLOW_S3,
        {"Effect": "Allow", "Action": ["vallum:SubmitJob", "vallum:GetJob"], "Resource": "*"}),
        region=server.region)
    mine = submitter.submit({**spec, "command": ["sleep", "5"]})
    assert submitter.job(mine["id"])["id"] == mine["id"]
    with pytest.raises(VallumError) as exc:
        submitter.cancel(mine["id"])
    assert exc.value.code == "AccessDenied" and "vallum:CancelJob" in exc.value.message
    admin.cancel(mine["id"])


def test_jobs_run_at_a_fixed_session_level(server, account):
    key = account.user("sec" + uuid.uuid4().hex[:6], ALLOW_S3, ALLOW_COMPUTE, clearance=S)
    bucket = "lvl-" + uuid.uuid4().hex[:12]
    s3_for(server, *key).create_bucket(Bucket=bucket)
    for name, label in (("u.txt", U), ("c.txt", C), ("s.txt", S)):
        s3_for(server, *key, headers={"x-vallum-session-level": label,
                                      "x-vallum-classification": label}).put_object(
            Bucket=bucket, Key=f"in/{name}", Body=label.encode())
    # The level comes from the submit request's x-vallum-session-level header.
    api = Client(server.endpoint, *key, region=server.region, session_level=C)
    done, seen, staged = probe_job(api, bucket, ["in/"], [
        ("GET", f"/{bucket}/in/c.txt", {}),                                     # at its level
        ("GET", f"/{bucket}/in/s.txt", {}),                                     # read up
        ("GET", f"/{bucket}/in/s.txt", {"x-vallum-session-level": S}),          # raise the level
        ("PUT", f"/{bucket}/out/c.txt", {"x-vallum-classification": C}),
        ("PUT", f"/{bucket}/out/u.txt", {"x-vallum-classification": U}),        # write down
        ("PUT", f"/{bucket}/out/u2.txt", {"x-vallum-classification": U,         # lower the level
                                          "x-vallum-session-level": U}),
    ])
    assert staged == "staged ['c.txt', 'u.txt']"          # s.txt is absent at CONFIDENTIAL
    got = [(s, c) for (_, _, s, c) in seen.values()]
    assert got == [(200, "-"), (404, "NoSuchKey"), (403, "AccessDenied"), (200, "-"),
                   (403, "AccessDenied"), (403, "AccessDenied")], seen
    # Outputs and the log are labelled at the job's level.
    owner = s3_for(server, *key, headers={"x-vallum-session-level": S})
    head = owner.head_object(Bucket=bucket, Key="out/result")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-vallum-classification"] == C
    # Refused at submit: a level above the clearance, an input above the level.
    spec = {"runtime": "command", "command": ["true"], "output": f"s3://{bucket}/out/"}
    with pytest.raises(VallumError) as exc:
        api.submit({**spec, "level": "TOP SECRET"})
    assert (exc.value.status, exc.value.code) == (403, "AccessDenied")
    with pytest.raises(VallumError) as exc:
        api.submit({**spec, "inputs": [f"s3://{bucket}/in/s.txt"]})
    assert (exc.value.status, exc.value.code) == (404, "NoSuchKey")
    # A spec's level wins over the header; SECRET reads the SECRET input. The job is
    # then a SECRET one: a CONFIDENTIAL session does not see it, a SECRET one does.
    ok = api.submit({**spec, "level": S, "inputs": [f"s3://{bucket}/in/s.txt"]})
    with pytest.raises(VallumError) as exc:
        api.job(ok["id"])
    assert (exc.value.status, exc.value.code) == (404, "NoSuchJob")
    at_s = Client(server.endpoint, *key, region=server.region, session_level=S)
    assert at_s.wait(ok["id"], timeout=30)["state"] == "SUCCEEDED"
