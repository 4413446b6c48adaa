"""`vallum runtime build|add|list|remove`: the named runtimes jobs and functions may use.

Run on the gateway's host by the owner of its data directory: the registry is a file
there, and no API changes it (a tenant cannot register a runtime, even the platform root
cannot over the network). Gateways see a change on their next submit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from vallum.compute import runtimes

app = typer.Typer(help="Named runtimes (virtual environments) for jobs and functions.",
                  no_args_is_help=True, add_completion=False)

DATA_DIR = typer.Option(None, "--data-dir",
                        help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]")
DEFAULT_ROOT = "/opt/vallum-runtimes"


def _registry(data_dir: str | None) -> runtimes.Registry:
    path = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data")
    if not path.is_dir():
        typer.echo(f"vallum runtime: no data directory {path} (start `vallum serve` once first)",
                   err=True)
        raise typer.Exit(2)
    return runtimes.Registry(path)


def _refused(exc: runtimes.RuntimeRefused) -> typer.Exit:
    typer.echo(f"vallum runtime: {exc}", err=True)
    return typer.Exit(2)


@app.command("build")
def build(name: str = typer.Argument(..., help="Name jobs give as venv"),
          wheelhouse: Path = typer.Option(..., "--wheelhouse", help="Directory of wheels"),
          requirements: Path = typer.Option(..., "--requirements", help="requirements.txt"),
          into: Path = typer.Option(Path(os.environ.get("VALLUM_RUNTIMES_DIR", DEFAULT_ROOT)),
                                    "--into", help="Parent directory of the runtime "
                                                   "[env VALLUM_RUNTIMES_DIR]"),
          data_dir: str = DATA_DIR) -> None:
    """Build a virtual environment offline (pip --no-index --find-links) and register it."""
    registry = _registry(data_dir)
    try:
        path = runtimes.build(name, wheelhouse, requirements, into, registry)
    except runtimes.RuntimeRefused as exc:
        raise _refused(exc) from None
    except runtimes.BuildFailed as exc:
        typer.echo(f"vallum runtime: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name}: {path}")


@app.command("add")
def add(name: str, path: Path, data_dir: str = DATA_DIR) -> None:
    """Register an existing virtual environment (checked: read-only to others, outside the
    data directory, readable by the sandbox users)."""
    try:
        real = _registry(data_dir).add(name, path.absolute())
    except runtimes.RuntimeRefused as exc:
        raise _refused(exc) from None
    typer.echo(f"{name}: {real}")


@app.command("list")
def list_(data_dir: str = DATA_DIR,
          as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """The registered runtimes and their directories."""
    known = _registry(data_dir).load()
    if as_json:
        typer.echo(json.dumps(known, indent=1, sort_keys=True))
        return
    for name in sorted(known):
        typer.echo(f"{name}\t{known[name]}")


@app.command("remove")
def remove(name: str, data_dir: str = DATA_DIR) -> None:
    """Forget a runtime (its files stay; jobs naming it are refused from now on)."""
    try:
        path = _registry(data_dir).remove(name)
    except runtimes.RuntimeRefused as exc:
        raise _refused(exc) from None
    typer.echo(f"removed {name} ({path})")
