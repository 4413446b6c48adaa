"""`vallum meta migrate`: move a stopped embedded install's metadata to PostgreSQL
(vallum/ops/meta_migrate.py does the copy; docs/scale-out.md has the procedure)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import typer

from vallum.meta.postgres import is_postgres_url, redacted
from vallum.ops import meta_migrate

app = typer.Typer(help="The metadata store: move it to PostgreSQL.", no_args_is_help=True)


@app.command("migrate")
def migrate(source: str = typer.Option(..., "--from", help="sqlite:PATH: the stopped install's data directory (or its meta.sqlite3)"),
            target: str = typer.Option(None, "--to", help="postgresql://USER@HOST:PORT/DB, an empty database "
                                                         "(a password only in VALLUM_META_URL or PGPASSFILE) "
                                                         "[env VALLUM_META_URL]")) -> None:
    """Copy buckets, versions, uploads, parts, quotas and the compute stores into PostgreSQL,
    check every table's rows and checksum, and commit only when all match."""
    if target is not None and urlsplit(target).password is not None:
        typer.echo("vallum meta migrate: --to must not carry a password (argv is visible to "
                   "every local user): set VALLUM_META_URL or use PGPASSFILE", err=True)
        raise typer.Exit(2)
    url = target or os.environ.get("VALLUM_META_URL")
    if not url or not is_postgres_url(url):
        typer.echo("vallum meta migrate: --to postgresql://... (or VALLUM_META_URL) is required",
                   err=True)
        raise typer.Exit(2)
    try:
        reports = meta_migrate.migrate(source, url)
    except meta_migrate.MigrateError as exc:
        typer.echo(f"vallum meta migrate: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(meta_migrate.format_report(reports))
    typer.echo(f"migrated to {redacted(url)}: start the gateway on the same data directory "
               "with --meta (or VALLUM_META_URL); blobs, keyring and audit log stay there")
