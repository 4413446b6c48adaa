"""Admin, STS and compute calls observed like S3 calls: the hook reads the attribution
their handlers give the audit record (Request.audit), and the detectors see key-minting
bursts, AssumeRole probing role after role, and failed sign-ins at the admin door."""

import json
from types import SimpleNamespace

from vallum.http import Response
from vallum.operator import gateway
from vallum.operator.alerts import Alert

ADMIN = "AKIASTOLENADMIN00001"
SOURCE = "10.44.0.9"


def scope(key: str, source: str = SOURCE) -> dict:
    auth = f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"
    return {"headers": [(b"host", b"127.0.0.1"), (b"authorization", auth.encode())],
            "query_string": b"", "client": (source, 40000)}


def call(api: str, **audit) -> SimpleNamespace:
    """What the hook reads of a front-door Request of the admin, STS or compute API."""
    return SimpleNamespace(api=api, audit=audit)


def answer(status: int) -> Response:
    return Response(status, {}, b"{}")


def hook(tmp_path, mode: str = "contain") -> gateway.Hook:
    return gateway.Hook(tmp_path, None, mode, root_key="ROOTKEY", sinks_from_env=False)


def test_a_burst_of_key_creation_is_credential_minting_and_throttled(tmp_path):
    h = hook(tmp_path)
    for i in range(12):
        h.observe(scope(ADMIN), call("admin", principal=ADMIN, account="111",
                  action="vallum:CreateAccessKey", target=f"arn:aws:iam::111:user/u{i}",
                  decision="allow"), "admin", answer(200), "")
    ev = h._api_event(scope(ADMIN), {"principal": ADMIN, "account": "111", "decision": "allow",
                                     "action": "vallum:CreateAccessKey"}, 200, "", 0)
    assert (ev.operation, ev.principal, ev.account, ev.error) == ("CreateAccessKey", ADMIN, "111", "")
    assert "credential_minting" in [a.kind for a in _alerts(tmp_path)]
    assert ADMIN in h.policy.throttled
    h.close()


def test_the_platform_root_onboarding_users_is_alerted_on_never_contained(tmp_path):
    h = hook(tmp_path)
    for i in range(12):
        h.observe(scope("ROOTKEY"), call("admin", principal="ROOTKEY", account="",
                  action="vallum:CreateUser", target=f"u{i}", decision="allow"), "admin",
                  answer(200), "")
    h.flush()
    assert "credential_minting" in [a.kind for a in _alerts(tmp_path)]
    assert not (h.policy.throttled or h.policy.suspended)
    h.close()


def test_assume_role_probing_role_after_role_is_privilege_probing(tmp_path):
    """Slow: 36 refusals over 6 roles in 36 minutes, one action name."""
    h = hook(tmp_path, "observe")
    for i in range(36):
        ev = h._api_event(scope(ADMIN), {"principal": ADMIN, "account": "111", "action": "sts:AssumeRole",
                                         "target": f"arn:aws:iam::111:role/r{i % 6}", "decision": "deny",
                                         "rule": "sts: not allowed"}, 403, "", 0)
        h._pending.append(ev._replace(ts=1_800_000_000.0 + 60 * i))
    h.flush()
    assert "privilege_probing" in [a.kind for a in _alerts(tmp_path)]
    h.close()


def test_one_role_refused_again_and_again_is_not_probing(tmp_path):
    """A misconfigured job retrying the one role it was meant to have is not a prober."""
    h = hook(tmp_path, "observe")
    for i in range(36):
        ev = h._api_event(scope(ADMIN), {"principal": ADMIN, "account": "111", "action": "sts:AssumeRole",
                                         "target": "arn:aws:iam::111:role/etl", "decision": "deny"}, 403, "", 0)
        h._pending.append(ev._replace(ts=1_800_000_000.0 + 60 * i))
    h.flush()
    assert "privilege_probing" not in [a.kind for a in _alerts(tmp_path)]
    h.close()


def test_failed_sign_ins_at_the_admin_door_count_as_failed_sign_ins(tmp_path):
    h = hook(tmp_path, "observe")
    for i in range(30):
        key = f"AKIAGUESS{i:011d}"
        # Refused at authentication: no Request exists, the error code says why.
        h.observe(scope(key), None, "admin", answer(403), "InvalidAccessKeyId")
    ev = h._api_event(scope("AKIAGUESS1"), {"action": "vallum:ListUsers", "decision": "deny",
                                            "rule": "authentication: InvalidAccessKeyId"}, 403, "", 0)
    assert (ev.principal, ev.error, ev.source) == ("AKIAGUESS1", "InvalidAccessKeyId", SOURCE)
    assert "credential_stuffing" in [a.kind for a in _alerts(tmp_path)]
    h.close()


def test_calls_without_attribution_are_not_invented(tmp_path):
    h = hook(tmp_path, "observe")
    h.observe(scope(ADMIN), None, "reserved", Response(200, {}, b"ok"), "")
    h.observe(scope(ADMIN), None, "admin", Response(404, {}, b"{}"), "")
    assert ADMIN not in h.detector.signals.principals
    h.close()


def _alerts(tmp_path) -> list[Alert]:
    path = tmp_path / "operator" / "alerts.jsonl"
    if not path.exists():
        return []
    return [Alert(**json.loads(line)) for line in path.read_text().splitlines()]
