"""`vallum spill evaluate`: the spill scanner's precision and recall on a labelled corpus."""

from __future__ import annotations

from pathlib import Path

import typer

from vallum.security.spill.eval import evaluate as run_evaluation

app = typer.Typer(help="Spill prevention: measure the marking scanner.", no_args_is_help=True,
                  add_completion=False)


@app.command("evaluate")
def evaluate(corpus: Path = typer.Option(None, "--corpus", help="A corpus directory: marked/, ordinary/, "
                                         "manifest.json (python -m tests.support.spill_corpus DIR writes one)"),
             ordinary: list[str] = typer.Option([], "--ordinary", help="More ordinary files (a glob; repeatable), "
                                                "e.g. '/usr/share/doc/*/copyright'")) -> None:
    """Print recall (marked documents caught), precision and the false-refusal rate."""
    if corpus is None and not ordinary:
        typer.echo("vallum spill evaluate: give --corpus DIR and/or --ordinary GLOB", err=True)
        raise typer.Exit(2)
    if corpus is not None and not (corpus / "manifest.json").is_file():
        typer.echo(f"vallum spill evaluate: {corpus}/manifest.json not found", err=True)
        raise typer.Exit(2)
    report = run_evaluation(corpus, ordinary)
    for line in report.lines():
        typer.echo(line)
