"""`vallum upgrade`: bring a data directory's schema up to this release (stop the server first)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vallum.ops import schema_versions


def upgrade(data_dir: str = typer.Option(None, "--data-dir", help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]"),
            check: bool = typer.Option(False, "--check", help="Only report the versions; exit 3 if an upgrade is pending")) -> None:
    """Run the pending schema migrations of every store (one transaction per database file)."""
    root = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data")
    if not root.is_dir():
        typer.echo(f"vallum upgrade: no data directory at {root}", err=True)
        raise typer.Exit(2)
    try:
        found = schema_versions.found_versions(root)
        for f in found:
            state = "new" if f.version is None else str(f.version)
            typer.echo(f"{f.store.name}: {state} (this release: {f.store.version})")
        if check:
            pending = any(f.version is not None and f.version != f.store.version for f in found)
            raise typer.Exit(3 if pending else 0)
        applied = schema_versions.upgrade(root)
    except (schema_versions.SchemaError, OSError) as exc:
        typer.echo(f"vallum upgrade: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("applied: " + ", ".join(applied) if applied else "up to date")
