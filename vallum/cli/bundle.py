"""`vallum bundle build|verify`: the offline install bundle (vallum/ops/bundle.py)."""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path

import typer

from vallum.ops import bundle as offline

app = typer.Typer(help="Build and check the offline install bundle.", no_args_is_help=True,
                  add_completion=False)


def _project() -> Path | None:
    root = Path(offline.__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


@app.command("build")
def build(out: str = typer.Option(..., "--out", help="New directory for the bundle"),
          lock: str = typer.Option("requirements.lock", "--lock", help="Pinned versions (name==version per line)"),
          signing_key: str = typer.Option(..., "--signing-key", help="Raw Ed25519 key file; created 0600 with FILE.pub.pem beside it if missing"),
          no_project: bool = typer.Option(False, "--no-project", help="Only the lock's requirements, without the Vallum wheel (a subset bundle)")) -> None:
    """Wheels for this platform, hashes, CycloneDX SBOM, install.sh, Ed25519 signature."""
    project = None if no_project else _project()
    if not no_project and project is None:
        typer.echo("vallum bundle build: no source tree (pyproject.toml) next to this vallum package", err=True)
        raise typer.Exit(2)
    try:
        wheels = offline.build(Path(out), Path(lock), Path(signing_key), project=project,
                               app_version=pkg_version("vallum"))
    except (offline.BundleError, OSError) as exc:
        typer.echo(f"vallum bundle build: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"bundle {out}: {len(wheels)} wheels; install with: sh {out}/install.sh "
               f"--public-key {signing_key}.pub.pem (pin that file outside the bundle)")


@app.command("verify")
def verify(bundle_dir: str = typer.Argument(..., help="Bundle directory"),
           public_key: str = typer.Option(..., "--public-key", help="The pinned public key (PEM)")) -> None:
    """Check the signature and every file's SHA-256. Exit 0: authentic; 1: not."""
    try:
        problems = offline.verify(Path(bundle_dir), offline.public_from_pem(Path(public_key).read_text()))
    except (offline.BundleError, OSError) as exc:
        typer.echo(f"vallum bundle verify: {exc}", err=True)
        raise typer.Exit(2) from None
    for problem in problems:
        typer.echo(f"BAD {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"bundle {bundle_dir}: signature and checksums OK")
