"""`vallum serve`: sweep leftovers of interrupted writes, then run the gateway on uvicorn."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path

import typer
import uvicorn

from vallum.iam.root import load_or_create
from vallum.meta.postgres import is_postgres_url, redacted
from vallum.security import crypto
from vallum.security.audit import AUDIT_DIR, ensure_signing_key
from vallum.security.audit_checkpoint import fingerprint
from vallum.security.audit_witness import Witness
from vallum.security.setup import audit_on
from vallum.server.config import from_env_and_flags, to_env
from vallum.server.lifecycle import sweep_orphans
from vallum.server.protocol import CoalescingHttpToolsProtocol
from vallum.service.clock import TEST_CLOCK_ENV, TEST_CLOCK_NAME


def serve(
    data_dir: str = typer.Option(None, "--data-dir", help="Where metadata and blobs live [env VALLUM_DATA_DIR; default ./vallum-data]"),
    address: str = typer.Option(None, "--address", help="HOST:PORT to listen on [env VALLUM_ADDRESS; default 127.0.0.1:9000]"),
    region: str = typer.Option(None, "--region", help="Region name reported to clients [default us-east-1]"),
    domain: str = typer.Option(None, "--domain", help="Base host name for virtual-host-style requests"),
    workers: int = typer.Option(None, "--workers", help="Gateway processes sharing the port [default 1]"),
    compute: str = typer.Option(None, "--compute", help="Where jobs run: local (default, one slot per core), local:N, local:MIN-MAX (predictively sized), or ray://HOST:PORT [env VALLUM_COMPUTE]"),
    test_clock: bool = typer.Option(False, "--test-clock", hidden=True,
                                    help="TESTS ONLY: shift retention/lifecycle time by the seconds in "
                                         "<data-dir>/test-clock-offset"),
    tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate (chain) to serve HTTPS with; needs --tls-key"),
    tls_key: str = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert"),
    audit_witness: str = typer.Option(None, "--audit-witness", help="Send every signed audit checkpoint off-box: file:/path (outside the data dir), syslog:unix:PATH, syslog:udp:HOST:PORT or an http(s) URL [env VALLUM_AUDIT_WITNESS]"),
    require_signed_payload: bool = typer.Option(
        False, "--require-signed-payload",
        help="Refuse SigV2 and unsigned SigV4 payloads (presigned GET/HEAD URLs excepted) "
             "[env VALLUM_REQUIRE_SIGNED_PAYLOAD]"),
    meta: str = typer.Option(None, "--meta", help="Object metadata on PostgreSQL: postgresql://USER@HOST:PORT/DB (password from VALLUM_META_URL or PGPASSFILE, never here) [env VALLUM_META_URL; default SQLite in the data directory]"),
) -> None:
    """Run the S3-compatible gateway with the embedded metadata store and local disk."""
    # Everything the server creates (database, blobs, keys, audit log) is private to its user.
    os.umask(0o077)
    try:
        config = from_env_and_flags(data_dir, address, region, domain, workers,
                                    require_signed_payload=require_signed_payload)
    except ValueError as exc:
        typer.echo(f"vallum serve: {exc}", err=True)
        raise typer.Exit(2) from None
    if meta:
        if not is_postgres_url(meta) or redacted(meta) != meta:
            typer.echo("vallum serve: --meta takes a postgresql:// URL without a password "
                       "(give the password in VALLUM_META_URL or a PGPASSFILE)", err=True)
            raise typer.Exit(2)
        config.meta_url = meta
    if config.meta_url and not is_postgres_url(config.meta_url):
        typer.echo("vallum serve: VALLUM_META_URL must be a postgresql:// URL", err=True)
        raise typer.Exit(2)
    if bool(tls_cert) != bool(tls_key) or any(p and not os.path.isfile(p) for p in (tls_cert, tls_key)):
        typer.echo("vallum serve: --tls-cert and --tls-key must both name readable PEM files", err=True)
        raise typer.Exit(2)
    witness = audit_witness or os.environ.get("VALLUM_AUDIT_WITNESS")
    try:
        if witness:
            Witness(witness, config.data_dir)       # refuse a bad target before starting
    except ValueError as exc:
        typer.echo(f"vallum serve: {exc}", err=True)
        raise typer.Exit(2) from None
    if witness:
        os.environ["VALLUM_AUDIT_WITNESS"] = witness
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.data_dir, 0o700)
        creds = load_or_create(config.data_dir)
        audit_key = ensure_signing_key(config.data_dir / AUDIT_DIR) if audit_on() else None
        removed = asyncio.run(sweep_orphans(config))
    except (OSError, ValueError, RuntimeError) as exc:
        typer.echo(f"vallum serve: {exc}", err=True)
        raise typer.Exit(1) from None
    # The flag, not an inherited environment, says whether this gateway speaks HTTPS.
    config.tls_cert = Path(tls_cert).resolve() if tls_cert else None
    print(f"Vallum S3 endpoint: {config.endpoint}  (region {config.region})", flush=True)
    print(f"Data directory:     {config.data_dir}", flush=True)
    if config.meta_url:
        print(f"Object metadata:    PostgreSQL {redacted(config.meta_url)} (IAM, compute, operator "
              "state and audit stay on SQLite in the data directory)", flush=True)
    print(f"Root access key:    {creds.access_key}", flush=True)
    if creds.generated or "VALLUM_ROOT_SECRET_KEY" not in os.environ:
        print(f"Root secret key:    {creds.secret_key}", flush=True)
    else:
        print("Root secret key:    (from VALLUM_ROOT_SECRET_KEY)", flush=True)
    if audit_key is not None:
        public = crypto.ed25519_public(audit_key[0])
        print(f"Audit public key:   {public.hex()}", flush=True)
        print(f"Audit fingerprint:  {fingerprint(public)}", flush=True)
        if audit_key[1]:
            print("New audit signing key: keep its public key or fingerprint OUTSIDE this machine; "
                  "`vallum audit verify --fingerprint` checks the log against it.", flush=True)
    if config.require_signed_payload:
        print("Signing:            SigV4 with a signed payload required", flush=True)
    if removed:
        print(f"Removed {removed} leftover blob(s) of interrupted writes.", flush=True)
    os.environ.pop("VALLUM_TLS_CERT", None)      # set again by to_env only when --tls-cert is given
    os.environ.update(to_env(config))
    # The test clock is honoured only when this flag is given, never from an inherited environment.
    os.environ.pop(TEST_CLOCK_ENV, None)
    if compute:
        os.environ["VALLUM_COMPUTE"] = compute
    if test_clock:
        os.environ[TEST_CLOCK_ENV] = str(config.data_dir / TEST_CLOCK_NAME)
        print("WARNING: test clock enabled (--test-clock); never use this in production.", flush=True)
    uvicorn.run("vallum.server.asgi:app", host=config.host, port=config.port, workers=config.workers,
                loop="uvloop" if sys.platform != "win32" else "auto", http=CoalescingHttpToolsProtocol,
                lifespan="on", access_log=False, server_header=False, log_level="warning",
                timeout_graceful_shutdown=30, backlog=2048,
                # PROTOCOL_TLS_SERVER contexts refuse TLS < 1.2 on Python >= 3.10.
                ssl_certfile=tls_cert, ssl_keyfile=tls_key, ssl_version=ssl.PROTOCOL_TLS_SERVER)
