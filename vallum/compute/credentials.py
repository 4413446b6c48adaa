"""Temporary credentials for a task: STS sessions scoped to the task's inputs and output.

Why an interface: the runner only needs "credentials for this task"; where they
come from (the IAM module's STS today, another issuer tomorrow) stays behind
``CredentialMinter``. Tasks get them as AWS_* variables, and the runner uses the
same ones to stage inputs and upload outputs, so a task never acts with more
than its owner could, and no long-term secret leaves the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from vallum.compute.spec import JobSpec, parse_uri


@dataclass(frozen=True)
class TaskCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expires: float

    def env(self) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id,
               "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def secrets(self) -> list[str]:
        return [s for s in (self.secret_access_key, self.session_token) if s]


class CredentialMinter(Protocol):
    def mint(self, principal: dict[str, Any], spec: JobSpec, duration: int) -> TaskCredentials: ...


def session_policy(spec: JobSpec) -> dict[str, Any]:
    """Read the inputs (and the code objects), list their prefixes, write the output prefix."""
    reads, lists = [], []
    uris = [*spec.inputs, *(u for u in (spec.array, spec.script, spec.code_uri) if u)]
    for raw in uris:
        uri = parse_uri(raw, "input")
        reads.append(f"arn:aws:s3:::{uri.bucket}/{uri.key}{'*' if uri.is_prefix else ''}")
        if uri.is_prefix:
            lists.append((uri.bucket, uri.key))
    statements: list[dict[str, Any]] = []
    if reads:
        statements.append({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": reads})
    for bucket, prefix in lists:
        statements.append({"Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": [f"arn:aws:s3:::{bucket}"],
                           "Condition": {"StringLike": {"s3:prefix": [prefix + "*"]}}})
    if spec.output:
        out = parse_uri(spec.output, "output")
        statements.append({"Effect": "Allow", "Action": ["s3:PutObject"],
                           "Resource": [f"arn:aws:s3:::{out.bucket}/{out.key}*"]})
    if not statements:
        statements.append({"Effect": "Deny", "Action": "*", "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


class STSMinter:
    """Sessions from the IAM module's STS (vallum.iam.sts): self-contained encrypted tokens.

    Whoever owns the job (root, IAM user, role), its session carries the session policy
    above, so it may do only the intersection of that and its owner's rights (the IAM
    module narrows user and root sessions by their session policy as it does role
    sessions), and the job's fixed MAC session level.
    """

    def __init__(self, iam: Any) -> None:
        self.iam = iam

    def mint(self, principal: dict[str, Any], spec: JobSpec, duration: int) -> TaskCredentials:
        from vallum.iam import sts

        duration = max(sts.MIN_DURATION, min(int(duration), sts.MAX_DURATION))
        policy = json.dumps(session_policy(spec))
        level = principal.get("level") or spec.level
        if principal.get("role"):
            session = sts.new_session(account=principal["account"], duration=duration,
                                      role=principal["role"],
                                      session_name=principal.get("session_name") or "vallum-job",
                                      policy=policy, session_level=level)
        elif principal.get("root"):
            session = sts.new_session(account=principal["account"], duration=duration,
                                      source_key=self.iam.identities.root.access_key,
                                      session_name="vallum-job", policy=policy,
                                      session_level=level)
        else:
            session = sts.new_session(account=principal["account"], duration=duration,
                                      user=principal.get("user"),
                                      source_key=principal.get("access_key"), policy=policy,
                                      session_level=level)
        token = sts.encode(self.iam.master_key, session)
        return TaskCredentials(session.access_key_id, session.secret, token, session.expires)


class StaticMinter:
    """Fixed credentials (tests, and gateways without IAM)."""

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.creds = TaskCredentials(access_key, secret_key, None, float("inf"))

    def mint(self, principal: dict[str, Any], spec: JobSpec, duration: int) -> TaskCredentials:
        return self.creds


def principal_doc(principal: Any, level: str | None = None,
                  out_label: str | None = None) -> dict[str, Any]:
    """What to remember of the submitter to mint its tasks' credentials later: who, the
    job's fixed session level, and the label its outputs get (server-decided, never
    taken from the spec)."""
    return {"arn": principal.arn, "account": principal.account, "access_key": principal.access_key,
            "user": principal.user, "role": principal.role, "session_name": principal.session_name,
            "root": bool(principal.is_root), "level": level, "out_label": out_label}
