"""`vallum certs dev`: a local CA and a server certificate for TLS testing (never production)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vallum.security.crypto.primitives import make_dev_certificates

app = typer.Typer(help="TLS certificates.", no_args_is_help=True, add_completion=False)


@app.command("dev")
def dev(out_dir: str = typer.Option("./vallum-certs", "--out", help="Directory for ca.pem, server.pem and keys"),
        host: list[str] = typer.Option(["127.0.0.1", "localhost"], "--host",
                                       help="Name or IP the certificate is for (repeatable)"),
        days: int = typer.Option(365, "--days", help="Validity in days"),
        force: bool = typer.Option(False, "--force", help="Overwrite existing files")) -> None:
    """Make a development CA and a server certificate signed by it (keys 0600)."""
    target = Path(out_dir)
    files = make_dev_certificates(list(host), days)
    if not force and any((target / name).exists() for name in files):
        typer.echo(f"vallum certs dev: {target} already has certificates (use --force)", err=True)
        raise typer.Exit(2)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in files.items():
        path = target / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if name.endswith(".key") else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600 if name.endswith(".key") else 0o644)
    typer.echo(f"CA certificate:     {target / 'ca.pem'}  (give this to clients, e.g. AWS_CA_BUNDLE)")
    typer.echo(f"Server certificate: {target / 'server.pem'}")
    typer.echo(f"Server key:         {target / 'server.key'}")
    typer.echo(f"Run: vallum serve --tls-cert {target / 'server.pem'} --tls-key {target / 'server.key'}")
