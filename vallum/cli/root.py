"""`vallum admin root rotate`: a new platform root secret, shown once.

Run it with the gateway stopped (gateways read the root credentials at start), on the
machine holding the data directory: it needs no running server and no old secret.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vallum.iam.root import ROOT_FILE, rotate

app = typer.Typer(help="The platform root credentials (kept 0600 in the data directory).",
                  no_args_is_help=True)


@app.command("rotate")
def rotate_cmd(data_dir: str = typer.Option(None, "--data-dir",
                                            help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]")) -> None:
    """Replace the generated root secret; prints the new one once. Restart the gateway after."""
    os.umask(0o077)
    where = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data").resolve()
    try:
        creds = rotate(where)
    except (OSError, ValueError) as exc:
        typer.echo(f"vallum admin root rotate: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Root access key:    {creds.access_key}")
    typer.echo(f"Root secret key:    {creds.secret_key}")
    typer.echo(f"Shown once; kept (0600) in {where / ROOT_FILE}. Restart `vallum serve` to use it.")
