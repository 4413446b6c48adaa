"""`vallum keys rotate|retire`: rotate the object master key, then retire the old one."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vallum.security.crypto import rotation
from vallum.security.crypto.primitives import CryptoError

app = typer.Typer(help="Object encryption master keys (encryption at rest).", no_args_is_help=True,
                  add_completion=False)

DATA_DIR = typer.Option(None, "--data-dir", help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]")


def _data_dir(data_dir: str | None) -> Path:
    path = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data")
    if not (path / rotation.KEYRING_FILE).exists():
        typer.echo(f"vallum keys: no object keyring in {path} (start `vallum serve` once first)", err=True)
        raise typer.Exit(2)
    return path


def _print(report: rotation.RotationReport) -> None:
    typer.echo(f"current master key: {report.new_key}")
    typer.echo(f"re-wrapped: {report.data_keys} data key(s), {report.inline_bodies} inline body(ies)")
    for kid in report.retired:
        typer.echo(f"retired: {kid}")
    for kid, n in report.kept.items():
        typer.echo(f"kept: {kid} ({n} still wrapped under it; run `vallum keys retire` again)")


@app.command("rotate")
def rotate(data_dir: str = DATA_DIR,
           retire_old: bool = typer.Option(False, "--retire", help="Then remove old keys nothing is wrapped under")) -> None:
    """Add a new current master key and re-wrap every data key and inline body under it.

    Running gateways pick the new key up on their first read of a re-wrapped object
    (or at restart); run `vallum keys retire` once they all use it."""
    path = _data_dir(data_dir)
    try:
        report = rotation.rotate(path)
        if retire_old:
            report = rotation.retire(path, report)
    except (OSError, ValueError, CryptoError) as exc:
        typer.echo(f"vallum keys rotate: {exc}", err=True)
        raise typer.Exit(1) from None
    _print(report)


@app.command("retire")
def retire(data_dir: str = DATA_DIR) -> None:
    """Re-wrap anything still under an old key, then remove every old key nothing uses."""
    path = _data_dir(data_dir)
    try:
        report = rotation.retire(path)
    except (OSError, ValueError, CryptoError) as exc:
        typer.echo(f"vallum keys retire: {exc}", err=True)
        raise typer.Exit(1) from None
    _print(report)
