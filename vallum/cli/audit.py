"""`vallum audit verify|query|export|prune`: prove the audit chain intact, search it, ship
it, and drop old segments per the retention policy (security/audit/segments.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from vallum.security.audit import checkpoint
from vallum.security.audit import log as audit_log
from vallum.security.audit import segments as audit_segments
from vallum.security.audit import witness as audit_witness
from vallum.security.crypto import primitives as crypto

app = typer.Typer(help="Inspect the tamper-evident audit log.", no_args_is_help=True, add_completion=False)

DATA_DIR = typer.Option(None, "--data-dir", help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]")
LOG = typer.Option(None, "--log", help="One audit log file, verified from its genesis (default: the retained set under <data-dir>/audit)")
ARCHIVE = typer.Option(None, "--archive", help="Directory of exported segments")


def _dir(data_dir: str | None) -> Path:
    return Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data") / audit_log.AUDIT_DIR


def _files(data_dir: str | None, log: str | None) -> list[Path]:
    """What query/export read: the given file, or every retained segment and the active log."""
    path = _path(data_dir, log)
    return [path] if log else [s.path for s in audit_segments.segments(path.parent)] + [path]


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
           witness: str = typer.Option(None, "--witness", help="Witness file: anchor at its latest checkpoint"),
           archive: str = ARCHIVE) -> None:
    """Check the chain and every checkpoint against the PINNED key: the retained segments
    and the active log (anchored by the signed retention manifest after a prune), one
    --log file, or the exported segments in --archive (offline). Exit 0: authentic and
    sealed (or anchored); 1: tampered; 2: usage (no pin); 3: intact but its end is unsigned."""
    try:
        key, fp = _pin(public_key, fingerprint)
        if witness:
            if expect_seq is not None or expect_hash:
                raise ValueError("--witness and --expect-seq/--expect-hash exclude each other")
            expect_seq, expect_hash = audit_witness.anchor(Path(witness))
        if archive:
            result = audit_segments.verify_archive(Path(archive), key, fp=fp)
        else:
            path = _path(data_dir, log)
            if log:
                result = audit_log.verify(path, key, fp=fp, expect_seq=expect_seq, expect_hash=expect_hash)
            else:
                result = audit_segments.verify_retained(path.parent, key, fp=fp, expect_seq=expect_seq,
                                                        expect_hash=expect_hash)
    except (OSError, ValueError, KeyError) as exc:
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
    path = _dir(data_dir) / audit_log.KEY_FILE
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
        return audit_log.query(_files(data_dir, log), principal=principal, bucket=bucket,
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
           output: str = typer.Option("-", "--output", "-o", help="File to write ('-' = stdout)"),
           archive: str = typer.Option(None, "--archive", help="Instead: copy every closed segment to this directory, gzip-compressed and signed")) -> None:
    """Write matching records as JSON lines, for a SIEM; or, with --archive DIR, export the
    closed segments for retention (compressed, each with a signed statement; idempotent)."""
    if archive:
        if any(x is not None for x in (principal, bucket, since, until, decision)) or output != "-":
            typer.echo("vallum audit export: --archive exports whole segments (no filters or --output)", err=True)
            raise typer.Exit(2)
        try:
            written = audit_segments.export(_dir(data_dir), Path(archive), _private(data_dir))
        except OSError as exc:
            typer.echo(f"vallum audit export: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"exported {len(written)} segments to {archive}", err=True)
        return
    records = _records(data_dir, log, principal, bucket, since, until, decision)
    if output == "-":
        audit_log.export(records, sys.stdout)
        return
    with open(output, "w") as f:
        n = audit_log.export(records, f)
    typer.echo(f"exported {n} records to {output}", err=True)


def _private(data_dir: str | None) -> bytes:
    try:
        return (_dir(data_dir) / audit_log.KEY_FILE).read_bytes()
    except OSError as exc:
        typer.echo(f"vallum audit: the audit signing key is needed here: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("prune")
def prune(data_dir: str = DATA_DIR,
          retain_days: float = typer.Option(None, "--retain-days", "--audit-retain-days",
                                            help="Keep segments younger than this many days [env VALLUM_AUDIT_RETAIN_DAYS]"),
          archive: str = typer.Option(..., "--archive", help="Where the segments were exported: only exported segments are removed")) -> None:
    """Remove closed segments older than the retention period, oldest first, only once
    exported; the signed manifest keeps the rest verifiable."""
    if retain_days is None:
        env = os.environ.get("VALLUM_AUDIT_RETAIN_DAYS")
        retain_days = float(env) if env else None
    if retain_days is None or retain_days < 0:
        typer.echo("vallum audit prune: a retention period is required: --retain-days DAYS (>= 0) "
                   "or VALLUM_AUDIT_RETAIN_DAYS", err=True)
        raise typer.Exit(2)
    try:
        gone = audit_segments.prune(_dir(data_dir), _private(data_dir), retain_days=retain_days,
                                    archive=Path(archive))
    except (OSError, ValueError) as exc:
        typer.echo(f"vallum audit prune: {exc}", err=True)
        raise typer.Exit(1) from None
    for seg in gone:
        typer.echo(f"pruned {seg.path.name} (records {seg.first}..{seg.last})")
    typer.echo(f"pruned {len(gone)} segments; {len(audit_segments.segments(_dir(data_dir)))} retained", err=True)
