"""Object-lock request headers reach policies under AWS's condition-key names."""


from vallum.http import Headers
from vallum.iam import gate
from vallum.iam.actions import SERVICES


def test_object_lock_headers_become_aws_condition_keys():
    headers = Headers([("x-amz-object-lock-mode", "GOVERNANCE"),
                       ("x-amz-object-lock-retain-until-date", "2030-01-01T00:00:00Z"),
                       ("x-amz-object-lock-legal-hold", "ON")])
    assert dict(gate._LOCK_KEYS)["x-amz-object-lock-mode"] == "s3:object-lock-mode"
    mapped = {key: headers.get(name) for name, key in gate._LOCK_KEYS if name in headers}
    assert mapped == {"s3:object-lock-mode": "GOVERNANCE",
                      "s3:object-lock-retain-until-date": "2030-01-01T00:00:00Z",
                      "s3:object-lock-legal-hold": "ON"}


def test_operator_alerts_permission_can_be_named():
    assert "GetOperatorAlerts" in SERVICES["iam"]


def test_condition_keys_from_one_pass_over_the_headers():
    from types import SimpleNamespace
    headers = Headers([("host", "h"), ("user-agent", "boto3"), ("x-amz-acl", "private"),
                       ("x-amz-grant-read", "id=1"), ("x-amz-grant-read", "id=2"),
                       ("x-amz-object-lock-legal-hold", "ON"), ("x-amz-date", "20260101T000000Z"),
                       ("x-amz-tagging", "Team=red&env=prod")])
    request = SimpleNamespace(headers=headers, source_ip="10.1.2.3", secure=True, auth=None,
                              query={"prefix": "home/", "versionId": "v1"},
                              services=SimpleNamespace(config=SimpleNamespace(region="us-east-1")))
    keys = gate.condition_keys(request, 1767225600.0)
    assert keys == {
        "aws:sourceip": "10.1.2.3", "aws:securetransport": "true",
        "aws:currenttime": "2026-01-01T00:00:00Z", "aws:epochtime": "1767225600",
        "aws:requestedregion": "us-east-1", "aws:useragent": "boto3",
        "s3:x-amz-acl": "private", "s3:x-amz-grant-read": "id=1,id=2",
        "s3:object-lock-legal-hold": "ON", "s3:prefix": "home/", "s3:versionid": "v1",
        "s3:requestobjecttag/team": "red", "s3:requestobjecttag/env": "prod",
        "s3:requestobjecttagkeys": ["Team", "env"]}
