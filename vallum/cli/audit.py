"""`vallum audit verify|query|export`: prove the audit chain intact, search it, ship it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from vallum.security import audit as audit_log

app = typer.Typer(help="Inspect the tamper-evident audit log.", no_args_is_help=True, add_completion=False)

DATA_DIR = typer.Option(None, "--data-dir", help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]")
LOG = typer.Option(None, "--log", help="Audit log file (default <data-dir>/audit/audit.log)")


def _path(data_dir: str | None, log: str | None) -> Path:
    if log:
        path = Path(log)
    else:
        path = audit_log.log_path(Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data"))
    if not path.exists():
        typer.echo(f"vallum audit: no audit log at {path}", err=True)
        raise typer.Exit(2)
    return path


@app.command("verify")
def verify(data_dir: str = DATA_DIR, log: str = LOG,
           public_key: str = typer.Option(None, "--public-key", help="Hex Ed25519 public key (default: audit-signing.pub beside the log)")) -> None:
    """Check every hash link and checkpoint signature; name the first broken record (exit 1)."""
    path = _path(data_dir, log)
    result = audit_log.verify(path, bytes.fromhex(public_key) if public_key else None)
    typer.echo(str(result))
    if not result.ok:
        raise typer.Exit(1)


def _records(data_dir, log, principal, bucket, since, until, decision):
    try:
        return audit_log.query(_path(data_dir, log), principal=principal, bucket=bucket,
                               since=since, until=until, decision=decision)
    except ValueError as exc:
        typer.echo(f"vallum audit: {exc}", err=True)
        raise typer.Exit(2) from None


PRINCIPAL = typer.Option(None, "--principal", help="Only records of this principal (access key id)")
BUCKET = typer.Option(None, "--bucket", help="Only records about this bucket")
SINCE = typer.Option(None, "--since", help="ISO 8601 time (UTC if no zone), inclusive")
UNTIL = typer.Option(None, "--until", help="ISO 8601 time, exclusive")
DECISION = typer.Option(None, "--decision", help="allow or deny")


@app.command("query")
def query(data_dir: str = DATA_DIR, log: str = LOG, principal: str = PRINCIPAL, bucket: str = BUCKET,
          since: str = SINCE, until: str = UNTIL, decision: str = DECISION) -> None:
    """Print matching records, one short line each."""
    for rec in _records(data_dir, log, principal, bucket, since, until, decision):
        typer.echo(" ".join(str(x) for x in (
            rec.get("time"), rec.get("seq"), rec.get("type"), rec.get("principal") or "-",
            rec.get("operation") or rec.get("event") or "-",
            f"{rec.get('bucket') or '-'}/{rec.get('key') or ''}", rec.get("status", "-"),
            rec.get("decision", "-"), rec.get("request_id", "-"))))


@app.command("export")
def export(data_dir: str = DATA_DIR, log: str = LOG, principal: str = PRINCIPAL, bucket: str = BUCKET,
           since: str = SINCE, until: str = UNTIL, decision: str = DECISION,
           output: str = typer.Option("-", "--output", "-o", help="File to write ('-' = stdout)")) -> None:
    """Write matching records as JSON lines, for a SIEM."""
    records = _records(data_dir, log, principal, bucket, since, until, decision)
    if output == "-":
        audit_log.export(records, sys.stdout)
        return
    with open(output, "w") as f:
        n = audit_log.export(records, f)
    typer.echo(f"exported {n} records to {output}", err=True)



