"""`vallum admin account|user|group|key|role|policy ...`: the admin API from the shell.

Every call is a SigV4-signed ``POST /-/admin/v1/<Action>`` (see vallum/server/admin.py)
made with the root's or an account admin's keys, from flags or the environment
(VALLUM_ENDPOINT, VALLUM_ROOT_ACCESS_KEY / VALLUM_ROOT_SECRET_KEY, or
VALLUM_ACCESS_KEY / VALLUM_SECRET_KEY). ``--output json`` prints the raw answer;
``table`` (default) prints rows. Secrets are printed once, at creation.
Exit codes: 0 ok, 1 refused by the server or unreachable, 2 usage error.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from vallum.cli.label import bucket_app
from vallum.s3.sigv4 import sign_headers


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class AdminClient:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    timeout: float = 30.0

    def call(self, action: str, /, **args: Any) -> Any:
        body = json.dumps({k: v for k, v in args.items() if v is not None}).encode()
        url = f"{self.endpoint.rstrip('/')}/-/admin/v1/{action}"
        headers = sign_headers("POST", url, {"content-type": "application/json"},
                               hashlib.sha256(body).hexdigest(), self.access_key, self.secret_key,
                               self.region, time.time())
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) endpoint from the operator
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                err = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                err = {"code": str(exc.code), "message": raw.decode("utf-8", "replace")[:200]}
            raise AdminError(exc.code, err.get("code", ""), err.get("message", "")) from None


app = typer.Typer(help="Manage accounts, users, groups, access keys, roles and policies.",
                  no_args_is_help=True)
account_app = typer.Typer(help="Accounts (tenants); root only.", no_args_is_help=True)
user_app = typer.Typer(help="Users of an account.", no_args_is_help=True)
group_app = typer.Typer(help="Groups of users.", no_args_is_help=True)
key_app = typer.Typer(help="Access keys.", no_args_is_help=True)
role_app = typer.Typer(help="Roles (assumed with STS AssumeRole).", no_args_is_help=True)
policy_app = typer.Typer(help="Managed and inline policies; the simulator.", no_args_is_help=True)
label_app = typer.Typer(help="Object classification labels (downgrade).", no_args_is_help=True)
for _name, _sub in (("account", account_app), ("user", user_app), ("group", group_app),
                    ("key", key_app), ("role", role_app), ("policy", policy_app),
                    ("label", label_app), ("bucket", bucket_app)):
    app.add_typer(_sub, name=_name)


@dataclass
class Settings:
    client: AdminClient
    output: str


@app.callback()
def _main(
    ctx: typer.Context,
    endpoint: str = typer.Option(None, "--endpoint", envvar="VALLUM_ENDPOINT",
                                 help="Gateway URL [default http://127.0.0.1:9000]"),
    access_key: str | None = typer.Option(None, "--access-key", help="Signing key id [env VALLUM_ACCESS_KEY or VALLUM_ROOT_ACCESS_KEY]"),
    secret_key: str | None = typer.Option(None, "--secret-key", help="Signing secret [env VALLUM_SECRET_KEY or VALLUM_ROOT_SECRET_KEY]"),
    region: str = typer.Option("us-east-1", "--region", envvar="VALLUM_REGION"),
    output: str = typer.Option("table", "--output", "-o", envvar="VALLUM_ADMIN_OUTPUT",
                               help="json or table"),
) -> None:
    access_key = access_key or os.environ.get("VALLUM_ACCESS_KEY") or os.environ.get("VALLUM_ROOT_ACCESS_KEY")
    secret_key = secret_key or os.environ.get("VALLUM_SECRET_KEY") or os.environ.get("VALLUM_ROOT_SECRET_KEY")
    if output not in ("json", "table"):
        _usage("--output must be json or table")
    ctx.obj = Settings(AdminClient(endpoint or "http://127.0.0.1:9000", access_key or "",
                                   secret_key or "", region), output)


def _usage(message: str) -> None:
    typer.echo(f"vallum admin: {message}", err=True)
    raise typer.Exit(2)


OutputOpt = typer.Option(None, "--output", "-o", help="json or table (overrides the group option)")


def _run(ctx: typer.Context, api_action: str, output: str | None = None, /, **args: Any) -> None:
    settings: Settings = ctx.obj
    if not settings.client.access_key or not settings.client.secret_key:
        _usage("no credentials: pass --access-key/--secret-key or set VALLUM_ROOT_ACCESS_KEY "
               "and VALLUM_ROOT_SECRET_KEY")
    try:
        result = settings.client.call(api_action, **args)
    except AdminError as exc:
        typer.echo(f"vallum admin: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"vallum admin: cannot reach {settings.client.endpoint}: {exc}", err=True)
        raise typer.Exit(1) from None
    _print(result, output or settings.output)


def _print(result: Any, output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(result, indent=2, sort_keys=True, default=str))
        return
    if isinstance(result, dict) and len(result) == 1 and isinstance(next(iter(result.values())), list):
        rows = next(iter(result.values()))
    elif isinstance(result, dict) and result:
        rows = [result]
    else:
        typer.echo("ok")
        return
    if not rows:
        typer.echo("(none)")
        return
    cols = [c for c in rows[0] if not isinstance(rows[0][c], (dict, list))]
    if cols:
        cells = [[_cell(r.get(c)) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)))
        for row in cells:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    for r in rows:        # nested values (e.g. a new key and its secret) follow the table
        for k, v in r.items():
            if isinstance(v, (dict, list)) and v:
                typer.echo(f"{k}: {json.dumps(v, default=str)}")


def _cell(value: Any) -> str:
    if isinstance(value, float) and value > 1e9:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
    return "" if value is None else str(value)


def _document(text: str) -> str:
    """A policy given inline as JSON, as @path, or as - (stdin)."""
    if text == "-":
        return sys.stdin.read()
    if text.startswith("@"):
        return Path(text[1:]).read_text(encoding="utf-8")
    return text


def _target(user: str | None, group: str | None, role: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in (("user", user), ("group", group), ("role", role)) if v]
    if len(given) != 1:
        _usage("name exactly one of --user, --group, --role")
    return given[0]


AccountOpt = typer.Option(None, "--account", "-a", help="Account id or name (root only; an "
                          "account admin acts in its own account)")


# ---------------------------------------------------------------- accounts
@account_app.command("create")
def account_create(ctx: typer.Context, name: str, output: str = OutputOpt) -> None:
    """Create an account with its admin user; prints the admin's key once."""
    _run(ctx, "CreateAccount", output, name=name)


@account_app.command("list")
def account_list(ctx: typer.Context, output: str = OutputOpt) -> None:
    _run(ctx, "ListAccounts", output)


@account_app.command("get")
def account_get(ctx: typer.Context, account: str, output: str = OutputOpt) -> None:
    _run(ctx, "GetAccount", output, account=account)


@account_app.command("delete")
def account_delete(ctx: typer.Context, account: str, output: str = OutputOpt) -> None:
    """Delete an account with all its users, keys, groups, roles and policies."""
    _run(ctx, "DeleteAccount", output, account=account)


# ---------------------------------------------------------------- users
@user_app.command("create")
def user_create(ctx: typer.Context, name: str, account: str = AccountOpt,
                admin: bool = typer.Option(False, "--admin", help="Give the user the inline "
                                           "AccountAdmin policy: every action inside its "
                                           "account (needs iam:CreateUser and iam:PutUserPolicy)"),
                boundary: str = typer.Option("", "--boundary", help="Permissions boundary set with "
                                             "the user: a managed policy's name or ARN"),
                output: str = OutputOpt) -> None:
    _run(ctx, "CreateUser", output, account=account, user=name, admin=admin,
         **({"boundary": boundary} if boundary else {}))


@user_app.command("list")
def user_list(ctx: typer.Context, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "ListUsers", output, account=account)


@user_app.command("get")
def user_get(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "GetUser", output, account=account, user=name)


@user_app.command("set-clearance")
def user_set_clearance(ctx: typer.Context, name: str,
                       clearance: str = typer.Argument(..., help="e.g. 'SECRET//SI//NOFORN'; '' clears"),
                       account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Set a user's clearance (platform root only)."""
    _run(ctx, "SetClearance", output, account=account, user=name, clearance=clearance)


@user_app.command("set-boundary")
def user_set_boundary(ctx: typer.Context, name: str,
                      policy: str = typer.Argument(..., help="Managed policy name or ARN"),
                      account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Set a user's permissions boundary: the most its identity policies can grant."""
    _run(ctx, "PutUserPermissionsBoundary", output, account=account, user=name, policy=policy)


@user_app.command("delete-boundary")
def user_delete_boundary(ctx: typer.Context, name: str, account: str = AccountOpt,
                         output: str = OutputOpt) -> None:
    """Remove a user's permissions boundary."""
    _run(ctx, "DeleteUserPermissionsBoundary", output, account=account, user=name)


@user_app.command("delete")
def user_delete(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Delete a user, its keys, memberships and policies."""
    _run(ctx, "DeleteUser", output, account=account, user=name)


# ---------------------------------------------------------------- groups
@group_app.command("create")
def group_create(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "CreateGroup", output, account=account, group=name)


@group_app.command("list")
def group_list(ctx: typer.Context, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "ListGroups", output, account=account)


@group_app.command("get")
def group_get(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "GetGroup", output, account=account, group=name)


@group_app.command("delete")
def group_delete(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "DeleteGroup", output, account=account, group=name)


@group_app.command("add-user")
def group_add(ctx: typer.Context, group: str, user: str, account: str = AccountOpt,
              output: str = OutputOpt) -> None:
    _run(ctx, "AddUserToGroup", output, account=account, group=group, user=user)


@group_app.command("remove-user")
def group_remove(ctx: typer.Context, group: str, user: str, account: str = AccountOpt,
                 output: str = OutputOpt) -> None:
    _run(ctx, "RemoveUserFromGroup", output, account=account, group=group, user=user)


# ---------------------------------------------------------------- keys
@key_app.command("create")
def key_create(ctx: typer.Context, user: str = typer.Option(..., "--user", "-u"),
               session_level: str = typer.Option(None, "--session-level", help="Bind the key to "
                                                 "this MAC session level (at most the user's "
                                                 "clearance and yours): every request signed "
                                                 "with it runs at that level"),
               account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Create an access key; the secret is shown only now."""
    _run(ctx, "CreateAccessKey", output, account=account, user=user, session_level=session_level)


@key_app.command("list")
def key_list(ctx: typer.Context, user: str = typer.Option(None, "--user", "-u"),
             account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "ListAccessKeys", output, account=account, user=user)


@key_app.command("disable")
def key_disable(ctx: typer.Context, access_key_id: str, account: str = AccountOpt,
                output: str = OutputOpt) -> None:
    """Make a key Inactive: it stops working on the next request, on every gateway."""
    _run(ctx, "UpdateAccessKey", output, account=account, access_key_id=access_key_id,
         status="Inactive")


@key_app.command("enable")
def key_enable(ctx: typer.Context, access_key_id: str, account: str = AccountOpt,
               output: str = OutputOpt) -> None:
    _run(ctx, "UpdateAccessKey", output, account=account, access_key_id=access_key_id,
         status="Active")


@key_app.command("rotate")
def key_rotate(ctx: typer.Context, access_key_id: str, account: str = AccountOpt,
               output: str = OutputOpt) -> None:
    """Create a new key for the same user and make the old one Inactive."""
    _run(ctx, "RotateAccessKey", output, account=account, access_key_id=access_key_id)


@key_app.command("delete")
def key_delete(ctx: typer.Context, access_key_id: str, account: str = AccountOpt,
               output: str = OutputOpt) -> None:
    _run(ctx, "DeleteAccessKey", output, account=account, access_key_id=access_key_id)


# ---------------------------------------------------------------- roles
@role_app.command("create")
def role_create(ctx: typer.Context, name: str,
                trust: str = typer.Option(..., "--trust", help="Trust policy: JSON, @file or -"),
                max_session: int = typer.Option(3600, "--max-session"),
                boundary: str = typer.Option("", "--boundary", help="Permissions boundary set with "
                                             "the role: a managed policy's name or ARN"),
                account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "CreateRole", output, account=account, role=name, trust_policy=_document(trust),
         max_session=max_session, **({"boundary": boundary} if boundary else {}))


@role_app.command("list")
def role_list(ctx: typer.Context, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "ListRoles", output, account=account)


@role_app.command("get")
def role_get(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "GetRole", output, account=account, role=name)


@role_app.command("set-clearance")
def role_set_clearance(ctx: typer.Context, name: str,
                       clearance: str = typer.Argument(..., help="e.g. 'TOP SECRET//NOFORN'"),
                       session_level: str = typer.Option(None, "--session-level",
                                                         help="Default session level of its sessions"),
                       account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Set a role's clearance and default session level (platform root only)."""
    _run(ctx, "SetClearance", output, account=account, role=name, clearance=clearance,
         session_level=session_level)


@role_app.command("set-boundary")
def role_set_boundary(ctx: typer.Context, name: str,
                      policy: str = typer.Argument(..., help="Managed policy name or ARN"),
                      account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Set a role's permissions boundary (its sessions keep it)."""
    _run(ctx, "PutRolePermissionsBoundary", output, account=account, role=name, policy=policy)


@role_app.command("delete-boundary")
def role_delete_boundary(ctx: typer.Context, name: str, account: str = AccountOpt,
                         output: str = OutputOpt) -> None:
    """Remove a role's permissions boundary."""
    _run(ctx, "DeleteRolePermissionsBoundary", output, account=account, role=name)


@role_app.command("delete")
def role_delete(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "DeleteRole", output, account=account, role=name)


# ---------------------------------------------------------------- labels
@label_app.command("downgrade")
def label_downgrade(ctx: typer.Context, bucket: str, key: str, label: str,
                    version_id: str = typer.Option(None, "--version-id"),
                    output: str = OutputOpt) -> None:
    """Lower an object's label (needs vallum:DowngradeLabel; audited)."""
    _run(ctx, "DowngradeLabel", output, bucket=bucket, key=key, label=label, version_id=version_id)


# ---------------------------------------------------------------- policies
@policy_app.command("create")
def policy_create(ctx: typer.Context, name: str,
                  document: str = typer.Option(..., "--document", "-d", help="JSON, @file or -"),
                  account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Create or replace a managed policy (refused with the position of any mistake)."""
    _run(ctx, "CreatePolicy", output, account=account, policy=name, document=_document(document))


@policy_app.command("list")
def policy_list(ctx: typer.Context, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "ListPolicies", output, account=account)


@policy_app.command("get")
def policy_get(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "GetPolicy", output, account=account, policy=name)


@policy_app.command("delete")
def policy_delete(ctx: typer.Context, name: str, account: str = AccountOpt, output: str = OutputOpt) -> None:
    _run(ctx, "DeletePolicy", output, account=account, policy=name)


@policy_app.command("attach")
def policy_attach(ctx: typer.Context, name: str, user: str = typer.Option(None, "--user"),
                  group: str = typer.Option(None, "--group"), role: str = typer.Option(None, "--role"),
                  account: str = AccountOpt, output: str = OutputOpt) -> None:
    kind, target = _target(user, group, role)
    _run(ctx, "AttachPolicy", output, account=account, kind=kind, target=target, policy=name)


@policy_app.command("detach")
def policy_detach(ctx: typer.Context, name: str, user: str = typer.Option(None, "--user"),
                  group: str = typer.Option(None, "--group"), role: str = typer.Option(None, "--role"),
                  account: str = AccountOpt, output: str = OutputOpt) -> None:
    kind, target = _target(user, group, role)
    _run(ctx, "DetachPolicy", output, account=account, kind=kind, target=target, policy=name)


@policy_app.command("put-inline")
def policy_put_inline(ctx: typer.Context, name: str,
                      document: str = typer.Option(..., "--document", "-d", help="JSON, @file or -"),
                      user: str = typer.Option(None, "--user"), group: str = typer.Option(None, "--group"),
                      role: str = typer.Option(None, "--role"), account: str = AccountOpt,
                      output: str = OutputOpt) -> None:
    kind, target = _target(user, group, role)
    _run(ctx, "PutInlinePolicy", output, account=account, kind=kind, target=target, name=name,
         document=_document(document))


@policy_app.command("simulate")
def policy_simulate(ctx: typer.Context, action: str = typer.Option(..., "--action"),
                    resource: str = typer.Option(..., "--resource"),
                    user: str = typer.Option(None, "--user"), role: str = typer.Option(None, "--role"),
                    context: list[str] = typer.Option([], "--context", help="KEY=VALUE condition key"),
                    account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Would this user (or role) be allowed? Prints allow/deny and the deciding statement."""
    if bool(user) == bool(role):
        _usage("name exactly one of --user, --role")
    pairs = {}
    for item in context:
        k, sep, v = item.partition("=")
        if not sep:
            _usage(f"--context takes KEY=VALUE, not {item!r}")
        pairs[k] = v
    _run(ctx, "Simulate", output, account=account, user=user, role=role, action=action,
         resource=resource, context=pairs)
