"""`vallum admin quota ...` and `vallum admin usage`: quotas, rate limits and usage per tenant."""

from __future__ import annotations

import json
import re

import typer

from vallum.cli.admin import AccountOpt, AdminError, OutputOpt, Settings, _run, _usage
from vallum.server import usage_report

app = typer.Typer(help="Storage quotas of accounts (root) and buckets; request-rate limits of accounts (root).",
                  no_args_is_help=True)

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


@app.command("rate")
def rate(ctx: typer.Context, account: str,
         rps: str = typer.Option(..., "--rps", help="requests per second; none: no limit"),
         burst: float = typer.Option(None, "--burst", help="requests at once (default: rps, at least 1)"),
         output: str = OutputOpt) -> None:
    """Limit the request rate of all of an account's callers together (platform root only);
    over it they get 503 SlowDown with Retry-After."""
    if rps.strip().lower() == "none":
        if burst is not None:
            _usage("--burst needs a rate, not --rps none")
        _run(ctx, "SetAccountRateLimit", output, account=account, rps=None)
        return
    try:
        value = float(rps)
    except ValueError:
        _usage(f"not a rate: {rps!r} (requests per second, e.g. 50 or 0.5, or none)")
        raise AssertionError from None   # _usage exits
    _run(ctx, "SetAccountRateLimit", output, account=account, rps=value, burst=burst)


def usage(ctx: typer.Context, account: str = AccountOpt,
          report: str = typer.Option(None, "--report", help="day: one UTC day's deltas per "
                                     "account and bucket (--date, default yesterday)"),
          date: str = typer.Option(None, "--date", help="YYYY-MM-DD (UTC) for --report day"),
          fmt: str = typer.Option("json", "--format", help="json, csv (--report) or prometheus"),
          output: str = OutputOpt) -> None:
    """Bytes and objects stored per bucket and label, requests by class, bytes in and out and
    compute CPU time, with the quotas and rate limit (the root: every account unless --account)."""
    if report not in (None, "day"):
        _usage("--report takes day")
    if date is not None and report is None:
        _usage("--date needs --report day")
    if fmt not in ("json", "csv", "prometheus") or (fmt == "csv" and report is None):
        _usage("--format must be json, prometheus, or csv with --report day")
    if report is None and fmt == "json":
        _run(ctx, "GetUsage", output or "json", account=account)
        return
    day = None
    if report:
        try:
            day = usage_report.parse_day(date) or usage_report.previous_day()
        except ValueError as exc:
            _usage(str(exc))
    answer = _call(ctx, account=account, day=day)
    if fmt == "prometheus":
        typer.echo(usage_report.prometheus(answer["accounts"]), nl=False)
    elif fmt == "csv":
        typer.echo(usage_report.to_csv(usage_report.report_rows(answer)), nl=False)
    else:
        typer.echo(json.dumps(usage_report.report_rows(answer), indent=2))


def _call(ctx: typer.Context, **args: object) -> dict:
    settings: Settings = ctx.obj
    if not settings.client.access_key or not settings.client.secret_key:
        _usage("no credentials: pass --access-key/--secret-key or set VALLUM_ROOT_ACCESS_KEY "
               "and VALLUM_ROOT_SECRET_KEY")
    try:
        return settings.client.call("GetUsage", **args)
    except AdminError as exc:
        typer.echo(f"vallum admin: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"vallum admin: cannot reach {settings.client.endpoint}: {exc}", err=True)
        raise typer.Exit(1) from None
