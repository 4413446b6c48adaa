"""`vallum admin ldap ...`: the LDAP / Active Directory directories users log in with
(STS AssumeRoleWithLDAPIdentity; docs/iam.md). Platform root only."""

from __future__ import annotations

import json

import typer

from vallum.cli.admin import OutputOpt, _document, _run, _usage

app = typer.Typer(help="LDAP / Active Directory logins (STS AssumeRoleWithLDAPIdentity); "
                  "root only.", no_args_is_help=True)


@app.command("put")
def put(ctx: typer.Context, name: str,
        config: str = typer.Option(..., "--config", "-c", help="JSON object, @file or -"),
        output: str = OutputOpt) -> None:
    """Register a directory, or replace the one of that name (checked whole)."""
    try:
        fields = json.loads(_document(config))
    except (OSError, ValueError) as exc:
        _usage(f"--config: {exc}")
        raise AssertionError from None     # _usage exits
    if not isinstance(fields, dict):
        _usage("--config must be a JSON object")
    _run(ctx, "PutLDAPDirectory", output, **{**fields, "name": name})


@app.command("get")
def get(ctx: typer.Context, name: str, output: str = OutputOpt) -> None:
    _run(ctx, "GetLDAPDirectory", output or "json", name=name)


@app.command("list")
def list_(ctx: typer.Context, output: str = OutputOpt) -> None:
    _run(ctx, "ListLDAPDirectories", output)


@app.command("delete")
def delete(ctx: typer.Context, name: str, output: str = OutputOpt) -> None:
    _run(ctx, "DeleteLDAPDirectory", output, name=name)
