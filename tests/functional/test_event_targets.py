"""Bucket notifications to external targets through the real server: a signed webhook
(http.server on 127.0.0.1) and a real nats-server, registered by an account admin and
named by a bucket's QueueConfiguration; at least once across a target that is down,
dead letters, another tenant's target refused, MAC withholding, malformed input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, admin_cli
from tests.support.labels import Cleared
from tests.support.nats import NatsServer
from tests.support.server import server_log
from tests.support.webhook import Receiver, signed_ok
from vallum.cli.admin import AdminClient, AdminError

FAST = {"backoff_s": 0.1, "timeout_s": 5}


def queue_config(arn: str, **extra) -> dict:
    return {"QueueConfigurations": [{"Id": "q1", "QueueArn": arn,
                                     "Events": ["s3:ObjectCreated:*"], **extra}]}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def acct(server, root):
    return Tenant(server, root)


def target(acct, receiver, **knobs) -> tuple[str, str]:
    """A webhook target of ``acct`` aimed at ``receiver``: (arn, secret)."""
    out = acct.admin.call("PutNotificationTarget", name="wh-" + uuid.uuid4().hex[:8],
                          type="webhook", endpoint=receiver.url, **{**FAST, **knobs})
    return out["arn"], out["secret"]


def new_bucket(s3) -> str:
    name = "evt-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


def test_webhook_gets_a_signed_aws_shaped_record(server, acct, receiver):
    arn, secret = target(acct, receiver)
    assert arn.startswith("arn:vallum:sqs:") and f":{acct.id}:" in arn
    bucket = new_bucket(acct.s3)
    acct.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=queue_config(arn))
    got = acct.s3.get_bucket_notification_configuration(Bucket=bucket)
    assert got["QueueConfigurations"][0]["QueueArn"] == arn
    put = acct.s3.put_object(Bucket=bucket, Key="in/a b.txt", Body=b"hello")
    (rec,) = receiver.wait(1)
    headers, body = receiver.posts[0]
    assert signed_ok(secret, body, headers["x-vallum-signature"])
    assert not signed_ok("not-the-secret", body, headers["x-vallum-signature"])
    assert not signed_ok(secret, body + b" ", headers["x-vallum-signature"])   # body edited
    assert rec["eventName"] == "ObjectCreated:Put" and rec["eventSource"] == "aws:s3"
    assert rec["s3"]["bucket"]["name"] == bucket and rec["s3"]["configurationId"] == "q1"
    assert rec["s3"]["object"]["key"] == "in/a+b.txt" and rec["s3"]["object"]["size"] == 5
    assert rec["s3"]["object"]["eTag"] == put["ETag"].strip('"')
    assert rec["eventTime"].endswith("Z")
    # The secret is shown once: never listed, never logged.
    listed = acct.admin.call("ListNotificationTargets")["targets"]
    assert [t for t in listed if t["arn"] == arn] and secret not in json.dumps(listed)
    assert secret not in server_log(server.data_dir).read_text(errors="replace")


def test_target_down_then_up_loses_nothing(acct, receiver):
    arn, _ = target(acct, receiver, max_attempts=20)
    bucket = new_bucket(acct.s3)
    acct.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=queue_config(arn))
    receiver.status = 500
    keys = [f"k{i}" for i in range(5)]
    for k in keys:
        acct.s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    deadline = time.monotonic() + 20
    while receiver.failed < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.failed >= 3 and receiver.records() == []
    receiver.status = 200
    recs = receiver.wait(5)
    assert sorted(r["s3"]["object"]["key"] for r in recs) == keys
    assert acct.admin.call("ListEventDeadLetters", target=arn)["dead_letters"] == []


def test_dead_letter_after_max_attempts(server, acct, receiver):
    arn, _ = target(acct, receiver, max_attempts=2, backoff_s=0.05)
    bucket = new_bucket(acct.s3)
    acct.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=queue_config(arn))
    receiver.status = 500
    acct.s3.put_object(Bucket=bucket, Key="lost", Body=b"x")
    deadline = time.monotonic() + 20
    letters: list = []
    while not letters and time.monotonic() < deadline:
        letters = acct.admin.call("ListEventDeadLetters", target=arn)["dead_letters"]
        time.sleep(0.1)
    (dl,) = letters
    assert (dl["bucket"], dl["key"], dl["attempts"], dl["error"]) == (bucket, "lost", 2, "HTTP 500")
    assert receiver.failed == 2 and failures(acct, arn, 2) == 2
    out = admin_cli(server, "events", "dead-letters", "--target", arn, key=acct.admin_key)
    assert out.returncode == 0 and json.loads(out.stdout)["dead_letters"][0]["key"] == "lost"
    # Another account's admin sees none of them.
    other = Tenant(server, AdminClient(server.endpoint, server.access_key, server.secret_key,
                                       server.region))
    assert other.admin.call("ListEventDeadLetters", target=arn)["dead_letters"] == []


def test_another_tenant_cannot_name_your_target(server, root, acct, receiver):
    arn, _ = target(acct, receiver)
    other = Tenant(server, root)
    bucket = new_bucket(other.s3)
    with pytest.raises(ClientError) as exc:
        other.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=queue_config(arn))
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"
    assert "QueueConfigurations" not in other.s3.get_bucket_notification_configuration(Bucket=bucket)
    other.s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    # Nor delete or list it: targets live in the caller's own account.
    with pytest.raises(AdminError) as err:
        other.admin.call("DeleteNotificationTarget", name=arn.rsplit(":", 1)[1])
    assert err.value.code == "NoSuchTarget"
    assert arn not in json.dumps(other.admin.call("ListNotificationTargets"))
    with pytest.raises(AdminError) as err:
        other.admin.call("ListNotificationTargets", account=acct.id)
    assert err.value.code == "AccessDenied"
    # A user of the owning account without the permission cannot register one either.
    key = acct.user("plain-" + uuid.uuid4().hex[:6],
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    plain = AdminClient(server.endpoint, *key, server.region)
    with pytest.raises(AdminError) as err:
        plain.call("PutNotificationTarget", name="x", type="webhook", endpoint=receiver.url)
    assert err.value.code == "AccessDenied"
    time.sleep(1.0)
    assert receiver.records() == []


def test_secret_object_never_reaches_an_unclassified_target(server, receiver):
    lab = Cleared(server)
    allow = ({"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
             {"Effect": "Allow", "Action": "vallum:*", "Resource": "*"})
    lab.user("ops", "SECRET", *allow)
    ops = AdminClient(server.endpoint, *lab.key("ops"), server.region)
    with pytest.raises(AdminError) as err:           # capped by the registrant's clearance
        ops.call("PutNotificationTarget", name="ts", type="webhook", endpoint=receiver.url,
                 ceiling="TOP SECRET")
    assert err.value.code == "AccessDenied"
    low_rx, high_rx = receiver, Receiver()
    try:
        low = ops.call("PutNotificationTarget", name="low", type="webhook",
                       endpoint=low_rx.url, ceiling="UNCLASSIFIED", **FAST)["arn"]
        high = ops.call("PutNotificationTarget", name="high", type="webhook",
                        endpoint=high_rx.url, ceiling="SECRET", **FAST)["arn"]
        bucket = lab.bucket("UNCLASSIFIED", "SECRET")
        lab.s3(lab.admin_key).put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
                {"QueueArn": low, "Events": ["s3:ObjectCreated:*"]},
                {"QueueArn": high, "Events": ["s3:ObjectCreated:*"]}]})
        lab.s3(lab.key("ops", "SECRET")).put_object(Bucket=bucket, Key="secret/plan", Body=b"s")
        lab.s3(lab.key("ops", "UNCLASSIFIED")).put_object(Bucket=bucket, Key="open", Body=b"u")
        high_recs = high_rx.wait(2)
        assert {(r["s3"]["object"]["key"], r["s3"]["object"]["vallumLabel"])
                for r in high_recs} == {("secret/plan", "SECRET"), ("open", "UNCLASSIFIED")}
        time.sleep(1.0)
        low_recs = low_rx.records()
        assert [r["s3"]["object"]["key"] for r in low_recs] == ["open"]
        assert b"secret/plan" not in b"".join(body for _, body in low_rx.posts)
        listed = {t["name"]: t for t in ops.call("ListNotificationTargets")["targets"]}
        assert listed["low"]["withheld"] == 1 and listed["high"]["withheld"] == 0
        assert ops.call("ListEventDeadLetters", target=low)["dead_letters"] == []
    finally:
        high_rx.close()


BAD_TARGETS = [
    ({"type": "webhook", "endpoint": "https://user:pw@example.test/h"}, "must not carry credentials"),
    ({"type": "webhook", "endpoint": "ftp://example.test/h"}, "scheme must be one of"),
    ({"type": "webhook", "endpoint": "https:///nohost"}, "needs a host"),
    ({"type": "webhook", "endpoint": "http://h/\nX: y"}, "control characters"),
    ({"type": "smtp", "endpoint": "https://example.test/"}, "type must be one of"),
    ({"type": "webhook", "endpoint": "https://example.test/", "max_attempts": 0}, "max_attempts"),
    ({"type": "webhook", "endpoint": "https://example.test/", "backoff_s": "1"}, "backoff_s"),
    ({"type": "webhook", "endpoint": "https://example.test/", "subject": "a"}, "NATS fields"),
    ({"type": "webhook", "endpoint": "https://example.test/", "colour": 1}, "unknown field"),
    ({"type": "webhook", "endpoint": "https://example.test/", "ceiling": "PUBLIC-ISH"}, "ceiling"),
    ({"type": "nats", "endpoint": "nats://127.0.0.1:4222", "subject": "a.*"}, "without wildcards"),
    ({"type": "nats", "endpoint": "nats://127.0.0.1:4222"}, "subject must be"),
    ({"type": "nats", "endpoint": "https://127.0.0.1:4222", "subject": "a"}, "scheme must be one of"),
    ({"type": "nats", "endpoint": "nats://127.0.0.1:4222", "subject": "a", "token": "a b"}, "token"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_TARGETS)
def test_malformed_targets_are_refused_precisely(acct, fields, message):
    before = acct.admin.call("ListNotificationTargets")
    with pytest.raises(AdminError) as err:
        acct.admin.call("PutNotificationTarget", name="bad-" + uuid.uuid4().hex[:6], **fields)
    assert (err.value.status, err.value.code) == (400, "InvalidSpec")
    assert message in err.value.message
    assert acct.admin.call("ListNotificationTargets") == before


def test_malformed_queue_configurations_change_nothing(acct, receiver):
    arn, _ = target(acct, receiver)
    bucket = new_bucket(acct.s3)
    acct.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=queue_config(arn))
    for bad in (queue_config("arn:aws:sqs:us-east-1:123456789012:q"),
                queue_config(arn.rsplit(":", 1)[0] + ":nosuch"),
                queue_config(arn, Filter={"Key": {"FilterRules": [{"Name": "size", "Value": "1"}]}}),
                {"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:Nothing:*"]}]}):
        with pytest.raises(ClientError) as exc:
            acct.s3.put_bucket_notification_configuration(Bucket=bucket,
                                                          NotificationConfiguration=bad)
        assert exc.value.response["Error"]["Code"] == "InvalidArgument"
        got = acct.s3.get_bucket_notification_configuration(Bucket=bucket)
        assert [q["QueueArn"] for q in got["QueueConfigurations"]] == [arn]
    # A target in use cannot be deleted under the bucket's feet.
    with pytest.raises(AdminError) as err:
        acct.admin.call("DeleteNotificationTarget", name=arn.rsplit(":", 1)[1])
    assert err.value.code == "TargetInUse"
    acct.s3.put_object(Bucket=bucket, Key="still", Body=b"x")
    assert [r["s3"]["object"]["key"] for r in receiver.wait(1)] == ["still"]


def test_nats_target_at_least_once_across_a_broker_restart(server, acct, tmp_path):
    token = uuid.uuid4().hex
    broker = NatsServer(tmp_path, token)
    broker.start()
    try:
        token_file = tmp_path / "nats.token"
        token_file.write_text(token)
        token_file.chmod(0o644)
        name, subject = "nats-" + uuid.uuid4().hex[:6], "vallum.events." + uuid.uuid4().hex[:6]
        args = ("events", "target", "put", name, "--type", "nats", "--endpoint", broker.url,
                "--subject", subject, "--token-file", str(token_file), "--backoff", "0.1",
                "--max-attempts", "30", "-o", "json")
        refused = admin_cli(server, *args, key=acct.admin_key)
        assert refused.returncode == 2 and "chmod 600" in refused.stderr
        token_file.chmod(0o600)
        out = admin_cli(server, *args, key=acct.admin_key)
        assert out.returncode == 0, out.stderr
        arn = json.loads(out.stdout)["arn"]
        assert token not in out.stdout and "secret" not in json.loads(out.stdout)
        bucket = new_bucket(acct.s3)
        acct.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=queue_config(arn))

        stream = "EVT" + uuid.uuid4().hex[:6].upper()
        broker.add_stream(stream, subject)
        acct.s3.put_object(Bucket=bucket, Key="first", Body=b"1")
        assert [key_of(b) for b in broker.messages(stream, 1)] == ["first"]

        broker.stop()                        # down: the deliveries wait and retry
        for k in ("second", "third"):
            acct.s3.put_object(Bucket=bucket, Key=k, Body=b"2")
        assert failures(acct, arn, 2) >= 2   # tried while down, and failed
        broker.start()                       # up again on the same port, stream kept
        keys = [key_of(b) for b in broker.messages(stream, 3)]
        assert sorted(set(keys)) == ["first", "second", "third"]   # at least once
        assert token not in server_log(server.data_dir).read_text(errors="replace")
        assert acct.admin.call("ListEventDeadLetters", target=arn)["dead_letters"] == []
    finally:
        broker.stop()
    assert stat.S_IMODE(os.stat(broker.conf).st_mode) == 0o600


def failures(acct, arn: str, n: int, timeout: float = 20.0) -> int:
    """The target's failed attempts once at least ``n`` (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        (t,) = [t for t in acct.admin.call("ListNotificationTargets")["targets"] if t["arn"] == arn]
        if t["failed"] >= n or time.monotonic() > deadline:
            return t["failed"]
        time.sleep(0.05)


def key_of(body: bytes) -> str:
    return json.loads(body)["Records"][0]["s3"]["object"]["key"]


def test_no_secret_in_argv():
    """The CLI has no option that takes a secret: a token comes from a 0600 file."""
    out = subprocess.run([sys.executable, "-m", "vallum", "admin", "events", "target", "put",
                          "--help"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, COLUMNS="200"))
    assert "--token-file" in out.stdout and "--token " not in out.stdout
    assert "--secret" not in out.stdout


def test_webhook_latency(acct, receiver):
    """PUT acknowledged -> webhook POST received, printed (docs/events.md quotes it)."""
    arn, _ = target(acct, receiver)
    bucket = new_bucket(acct.s3)
    acct.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=queue_config(arn))
    acked = {}
    for i in range(20):
        acct.s3.put_object(Bucket=bucket, Key=f"lat/{i}", Body=b"x")
        acked[f"lat/{i}"] = time.time()
        time.sleep(0.05)
    receiver.wait(20)
    with receiver.lock:
        arrivals = {json.loads(body)["Records"][0]["s3"]["object"]["key"]: float(h["x-arrived"])
                    for h, body in receiver.posts}
    lat = sorted(arrivals[k] - t for k, t in acked.items())
    print(f"\nwebhook latency (PUT acknowledged -> POST received): p50 {lat[10] * 1000:.0f} ms, "
          f"max {lat[-1] * 1000:.0f} ms")
    assert len(lat) == 20 and lat[10] < 1.0


def test_a_deleted_and_recreated_bucket_sends_nothing_to_the_old_target(acct, receiver):
    arn, _ = target(acct, receiver)
    bucket = new_bucket(acct.s3)
    acct.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=queue_config(arn))
    acct.s3.delete_bucket(Bucket=bucket)
    acct.s3.create_bucket(Bucket=bucket)
    assert "QueueConfigurations" not in acct.s3.get_bucket_notification_configuration(Bucket=bucket)
    acct.s3.put_object(Bucket=bucket, Key="after", Body=b"x")
    time.sleep(1.5)
    assert receiver.records() == []


def test_a_slow_target_does_not_slow_the_s3_request_path(acct, receiver):
    arn, _ = target(acct, receiver, timeout_s=10)
    bucket = new_bucket(acct.s3)
    acct.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=queue_config(arn))
    receiver.delay = 2.0
    took = []
    for i in range(5):
        t0 = time.monotonic()
        acct.s3.put_object(Bucket=bucket, Key=f"slow/{i}", Body=b"x")
        took.append(time.monotonic() - t0)
    assert max(took) < 1.0, took
    assert len(receiver.wait(5, timeout=40)) == 5     # all delivered, one after another
