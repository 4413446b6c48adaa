"""Object-lock request headers reach policies under AWS's condition-key names."""


from vallum.iam import gate
from vallum.iam.actions import SERVICES
from vallum.server.http import Headers


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
