"""`vallum audit verify|query|export`: prove the audit chain intact, search it, ship it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from vallum.security import audit as audit_log
from vallum.security import audit_checkpoint as checkpoint
from vallum.security import audit_witness, crypto

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


EXIT_BROKEN, EXIT_UNVERIFIED = 1, 3


def _pin(public_key: str | None, fingerprint: str | None) -> tuple[bytes | None, str | None]:
    """The pinned key from --public-key (a file, or the hex itself) or --fingerprint."""
    if public_key:
        text = Path(public_key).read_text() if os.path.isfile(public_key) else public_key
        return checkpoint.parse_public_key(text), None
    if fingerprint:
        if len(fingerprint.strip()) != 64:
            raise ValueError("--fingerprint is the 64 hex digits printed by `vallum serve`")
        bytes.fromhex(fingerprint.strip())
        return None, fingerprint.strip()
    raise ValueError("no pinned key: pass --public-key FILE or --fingerprint HEX (printed by "
                     "`vallum serve` at first start). The audit-signing.pub beside the log is not "
                     "trusted: whoever can write the log can replace it.")


@app.command("verify")
def verify(data_dir: str = DATA_DIR, log: str = LOG,
           public_key: str = typer.Option(None, "--public-key", help="File holding the pinned Ed25519 public key (hex), or the hex itself"),
           fingerprint: str = typer.Option(None, "--fingerprint", help="SHA-256 fingerprint of the pinned public key"),
           expect_seq: int = typer.Option(None, "--expect-seq", help="Anchor: the log must hold this seq ..."),
           expect_hash: str = typer.Option(None, "--expect-hash", help="... with this line hash (from a witness)"),
           witness: str = typer.Option(None, "--witness", help="Witness file: anchor at its latest checkpoint")) -> None:
    """Check the chain and every checkpoint against the PINNED key. Exit 0: authentic and
    sealed (or anchored); 1: tampered; 2: usage (no pin); 3: intact but its end is unsigned."""
    path = _path(data_dir, log)
    try:
        key, fp = _pin(public_key, fingerprint)
        if witness:
            if expect_seq is not None or expect_hash:
                raise ValueError("--witness and --expect-seq/--expect-hash exclude each other")
            expect_seq, expect_hash = audit_witness.anchor(Path(witness))
        result = audit_log.verify(path, key, fp=fp, expect_seq=expect_seq, expect_hash=expect_hash)
    except (OSError, ValueError) as exc:
        typer.echo(f"vallum audit verify: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(str(result))
    if result.status == "broken":
        raise typer.Exit(EXIT_BROKEN)
    if result.status != "ok":
        raise typer.Exit(EXIT_UNVERIFIED)


@app.command("key")
def key(data_dir: str = DATA_DIR) -> None:
    """Print the audit public key and its fingerprint (derived from the private key), to pin them."""
    path = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data") / audit_log.AUDIT_DIR / audit_log.KEY_FILE
    try:
        private = path.read_bytes()
        public = crypto.ed25519_public(private)
    except (OSError, ValueError) as exc:
        typer.echo(f"vallum audit key: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"public key:  {public.hex()}")
    typer.echo(f"fingerprint: {checkpoint.fingerprint(public)}")


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



