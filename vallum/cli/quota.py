"""`vallum admin quota ...` and `vallum admin usage`: storage quotas and usage per tenant."""

from __future__ import annotations

import re

import typer

from vallum.cli.admin import AccountOpt, OutputOpt, _run, _usage

app = typer.Typer(help="Storage quotas of accounts (root) and buckets.", no_args_is_help=True)

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
          "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def parse_bytes(text: str | None) -> int | None:
    """'10GiB', '500M', '1024' -> bytes; 'none' or '' -> no limit."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]i?)?b?\s*", text.lower())
    if m is None:
        _usage(f"not a size: {text!r} (e.g. 500GiB, 2T, 1048576, none)")
        raise AssertionError   # _usage exits
    return int(m.group(1)) * _UNITS[m.group(2) or ""]


def _limits(max_bytes: str | None, max_objects: str | None) -> dict:
    objects = None
    if max_objects is not None and max_objects.strip().lower() not in ("", "none"):
        if not max_objects.isdigit():
            _usage(f"not a count: {max_objects!r}")
        objects = int(max_objects)
    return {"max_bytes": parse_bytes(max_bytes), "max_objects": objects}


@app.command("set-account")
def set_account(ctx: typer.Context, account: str,
                max_bytes: str = typer.Option(None, "--max-bytes", help="e.g. 500GiB; none: no limit"),
                max_objects: str = typer.Option(None, "--max-objects", help="a count; none: no limit"),
                output: str = OutputOpt) -> None:
    """Limit what all of an account's buckets may hold together (platform root only)."""
    _run(ctx, "SetAccountQuota", output, account=account,
         **_limits(max_bytes, max_objects))


@app.command("set-bucket")
def set_bucket(ctx: typer.Context, bucket: str,
               max_bytes: str = typer.Option(None, "--max-bytes", help="e.g. 50GiB; none: no limit"),
               max_objects: str = typer.Option(None, "--max-objects", help="a count; none: no limit"),
               output: str = OutputOpt) -> None:
    """Limit what one bucket may hold (needs vallum:PutBucketQuota on it)."""
    _run(ctx, "SetBucketQuota", output, bucket=bucket, **_limits(max_bytes, max_objects))


def usage(ctx: typer.Context, account: str = AccountOpt, output: str = OutputOpt) -> None:
    """Bytes and objects stored per bucket and label, with the quotas (the root: every
    account unless --account)."""
    _run(ctx, "GetUsage", output or "json", account=account)
