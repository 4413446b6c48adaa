"""`vallum serve`: settings (flags > environment > --config file), sweep leftovers of
interrupted writes, then run the gateway on uvicorn.

Every setting is a row of vallum/server/config.py's SETTINGS; the options below are
their flags (same name, dashes for underscores). Add a setting there, then here."""

from __future__ import annotations

import asyncio
import logging.config
import os
import ssl
import sys
from typing import Any

import typer
import uvicorn

from vallum.compute import sandbox
from vallum.iam import certauth
from vallum.iam.root import ROOT_FILE, RootCredentials, load_or_create
from vallum.meta.postgres import redacted
from vallum.ops.schema_versions import prepare as prepare_schema
from vallum.security.audit.checkpoint import fingerprint
from vallum.security.audit.log import AUDIT_DIR, ensure_signing_key
from vallum.security.audit.witness import Witness
from vallum.security.crypto import fips
from vallum.security.crypto import primitives as crypto
from vallum.security.setup import audit_on
from vallum.server.config import BY_KEY, Config, clear_env, load, to_env
from vallum.server.connection_limits import GuardedHttpProtocol, raise_open_files
from vallum.server.lifespan import sweep_orphans
from vallum.server.logs import log_config
from vallum.service.clock import TEST_CLOCK_ENV, TEST_CLOCK_NAME
from vallum.storage.base import StorageError


def _opt(key: str) -> Any:
    """The flag of one SETTINGS row, its help text from the table."""
    setting = BY_KEY[key]
    flag = "--" + key.replace("_", "-")
    env = f"; env {setting.env}" if setting.main_env else "; flag or config file only"
    return typer.Option(None, flag, help=setting.help + env)


def serve(
    config_file: str = typer.Option(None, "--config", help="TOML file with any of these settings "
                                    "(keys as the flags, with underscores); env and flags override it"),
    data_dir: str = _opt("data_dir"),
    address: str = _opt("address"),
    region: str = _opt("region"),
    domain: str = _opt("domain"),
    workers: int = _opt("workers"),
    compute: str = _opt("compute"),
    tls_cert: str = _opt("tls_cert"),
    tls_key: str = _opt("tls_key"),
    tls_client_ca: str = _opt("tls_client_ca"),
    tls_client_auth: str = _opt("tls_client_auth"),
    tls_crl: str = _opt("tls_crl"),
    tls_client_map: str = _opt("tls_client_map"),
    audit_witness: str = _opt("audit_witness"),
    require_signed_payload: bool = typer.Option(
        False, "--require-signed-payload", help=BY_KEY["require_signed_payload"].help
        + "; env VALLUM_REQUIRE_SIGNED_PAYLOAD"),
    disk_reserve: str = _opt("disk_reserve"),
    blobs: str = _opt("blobs"),
    header_timeout: float = _opt("header_timeout"),
    body_timeout: float = _opt("body_timeout"),
    keep_alive_timeout: float = _opt("keep_alive_timeout"),
    max_connections: int = _opt("max_connections"),
    max_connections_per_source: int = _opt("max_connections_per_source"),
    log_format: str = _opt("log_format"),
    fips_mode: bool = typer.Option(False, "--fips", help=BY_KEY["fips"].help + "; env VALLUM_FIPS"),
    allow_root_compute: bool = typer.Option(
        False, "--allow-root-compute",
        help=BY_KEY["allow_root_compute"].help + "; env VALLUM_ALLOW_ROOT_COMPUTE=1"),
    meta: str = _opt("meta"),
    test_clock: bool = typer.Option(False, "--test-clock", hidden=True,
                                    help="TESTS ONLY: shift retention/lifecycle time by the seconds in "
                                         "<data-dir>/test-clock-offset"),
    auto_upgrade: bool = typer.Option(False, "--auto-upgrade", help="Run pending schema migrations at start (else refuse and ask for `vallum upgrade`)"),
) -> None:
    """Run the S3-compatible gateway with the embedded metadata store and local disk."""
    # Everything the server creates (database, blobs, keys, audit log) is private to its user.
    os.umask(0o077)
    flags = {k: v for k, v in locals().items() if k in BY_KEY}
    flags["fips"] = fips_mode
    try:
        config = load(flags, config_file)
        if bool(config.tls_cert) != bool(config.tls_key) or any(
                p is not None and not p.is_file() for p in (config.tls_cert, config.tls_key)):
            raise ValueError("--tls-cert and --tls-key must both name readable PEM files")
        if config.tls_client_ca and not config.tls_cert:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (client "
                             "certificates come over TLS)")
        certauth.check_settings(config.tls_client_ca, config.tls_crl)
        if config.audit_witness:
            Witness(config.audit_witness, config.data_dir)    # refuse a bad target before starting
        if config.meta and config.sources.get("meta") == "flag" and redacted(config.meta) != config.meta:
            raise ValueError("--meta takes a postgresql:// URL without a password (argv is visible "
                             "to every local user: give it in VALLUM_META_URL or a PGPASSFILE)")
    except ValueError as exc:
        typer.echo(f"vallum serve: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.config.dictConfig(log_config(config.log_format))   # start-up logs too
    try:
        fd_warning = raise_open_files(config)
    except ValueError as exc:
        typer.echo(f"vallum serve: {exc}", err=True)
        raise typer.Exit(1) from None
    # Workers (and the start-up below) read the settings from the environment.
    clear_env(os.environ)
    os.environ.update(to_env(config))
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.data_dir, 0o700)
        for step in prepare_schema(config.data_dir, auto_upgrade=auto_upgrade):
            print(f"Schema upgraded:    {step}", flush=True)
        creds = load_or_create(config.data_dir)
        audit_key = ensure_signing_key(config.data_dir / AUDIT_DIR) if audit_on() else None
        removed = asyncio.run(sweep_orphans(config))
    except (OSError, ValueError, RuntimeError, StorageError) as exc:   # StorageError: an unreachable upstream
        typer.echo(f"vallum serve: {exc}", err=True)
        raise typer.Exit(1) from None
    print(f"Vallum S3 endpoint: {config.endpoint}  (region {config.region})", flush=True)
    print(f"Data directory:     {config.data_dir}", flush=True)
    if config.meta:
        print(f"Object metadata:    PostgreSQL {redacted(config.meta)} (with IAM, "
              "authentication lockouts, operator state and compute; audit, key table and blobs "
              "stay in the data directory)", flush=True)
    if config.blobs:
        print(f"Object bodies:      {config.blobs}", flush=True)
    if config_file:
        from_file = sorted(k for k, where in config.sources.items() if where == "file")
        print(f"Config file:        {config_file} ({', '.join(from_file) or 'every setting overridden'})",
              flush=True)
    print(f"Root access key:    {creds.access_key}", flush=True)
    print(root_secret_line(config, creds), flush=True)
    if audit_key is not None:
        public = crypto.ed25519_public(audit_key[0])
        print(f"Audit public key:   {public.hex()}", flush=True)
        print(f"Audit fingerprint:  {fingerprint(public)}", flush=True)
        if audit_key[1]:
            print("New audit signing key: keep its public key or fingerprint OUTSIDE this machine; "
                  "`vallum audit verify --fingerprint` checks the log against it.", flush=True)
    if config.require_signed_payload:
        print("Signing:            SigV4 with a signed payload required", flush=True)
    if config.fips:
        print("FIPS mode:          approved algorithms only; SigV2 refused", flush=True)
        for line in fips.report():
            print(f"  {line}", flush=True)
        if not fips.validated():
            print("  (no OpenSSL FIPS provider is configured: the algorithms are approved, "
                  "the module is not a validated one)", flush=True)
    if fd_warning:
        print(f"WARNING: {fd_warning}", flush=True)
    if removed:
        print(f"Removed {removed} leftover blob(s) of interrupted writes.", flush=True)
    _say_compute_user()
    # The test clock is honoured only when this flag is given, never from an inherited environment.
    os.environ.pop(TEST_CLOCK_ENV, None)
    if test_clock:
        os.environ[TEST_CLOCK_ENV] = str(config.data_dir / TEST_CLOCK_NAME)
        print("WARNING: test clock enabled (--test-clock); never use this in production.", flush=True)
    tls = config.tls_cert is not None
    if config.tls_client_ca:
        print(f"Client certificates: {config.tls_client_auth}, CAs {config.tls_client_ca}"
              f"{f', CRLs {config.tls_crl}' if config.tls_crl else ''}"
              f"{f', rules {config.tls_client_map}' if config.tls_client_map else ' (no mapping rules)'}",
              flush=True)
    uvicorn.run("vallum.server.asgi:app", host=config.host, port=config.port, workers=config.workers,
                loop="uvloop" if sys.platform != "win32" else "auto", http=GuardedHttpProtocol,
                lifespan="on", access_log=False, server_header=False, log_level="warning",
                log_config=log_config(config.log_format),
                timeout_graceful_shutdown=30, backlog=2048,
                timeout_keep_alive=config.keep_alive_timeout,  # type: ignore[arg-type]
                # PROTOCOL_TLS_SERVER contexts refuse TLS < 1.2 on Python >= 3.10.
                ssl_certfile=str(config.tls_cert) if tls else None,
                ssl_keyfile=str(config.tls_key) if tls else None, ssl_version=ssl.PROTOCOL_TLS_SERVER,
                ssl_ciphers=fips.TLS12_CIPHERS if config.fips else "TLSv1",
                ssl_ca_certs=str(config.tls_client_ca) if config.tls_client_ca else None,
                ssl_cert_reqs=client_cert_mode(config),
                ssl_context_factory=client_cert_context if config.tls_client_ca else None)


def client_cert_mode(config: Config) -> int:
    if not config.tls_client_ca:
        return ssl.CERT_NONE
    return ssl.CERT_REQUIRED if config.tls_client_auth == "required" else ssl.CERT_OPTIONAL


def client_cert_context(cfg: Any, default: Any) -> ssl.SSLContext:
    """uvicorn's context; asking for client certificates, OpenSSL is told not to check
    their dates, so an expired certificate reaches STS and is refused there with an STS
    error and an audit record (iam/certauth.py checks dates, usage and revocation)."""
    ctx = default()
    if cfg.ssl_ca_certs:
        ctx.verify_flags |= _NO_CHECK_TIME
    return ctx


_NO_CHECK_TIME = 0x200000       # OpenSSL's X509_V_FLAG_NO_CHECK_TIME (not named by ssl)


def root_secret_line(config: Config, creds: RootCredentials) -> str:
    """The secret itself only when it was just created; otherwise where it is and how to
    replace it (it is never printed or logged again)."""
    if creds.generated:
        return (f"Root secret key:    {creds.secret_key}\n"
                f"                    (shown once: kept 0600 in {config.data_dir / ROOT_FILE})")
    if os.environ.get("VALLUM_ROOT_SECRET_KEY"):
        return "Root secret key:    (from VALLUM_ROOT_SECRET_KEY)"
    return (f"Root secret key:    not shown again: read {config.data_dir / ROOT_FILE} (0600), or "
            f"stop the server and run `vallum admin root rotate --data-dir {config.data_dir}`")


def _say_compute_user() -> None:
    """As root, tenant compute runs only when the operator says so; say which it is."""
    if os.geteuid() != 0:
        return
    if sandbox.root_allowed():
        print("Compute:            running as root by request (--allow-root-compute): each task "
              "starts from root under an unprivileged uid of its own", flush=True)
    else:
        print(f"Compute:            REFUSED. {sandbox.ROOT_REFUSAL}", flush=True)
