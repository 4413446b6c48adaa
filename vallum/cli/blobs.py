"""`vallum blobs`: the blob store behind the objects (`verify`: the scrub, every copy)."""

from __future__ import annotations

import typer

from vallum.cli.scrub import scrub

app = typer.Typer(help="The blob store that holds object bodies.", no_args_is_help=True)
app.command("verify", help="Check that every version's body exists in every copy with its "
            "recorded length and authenticates (a scrub); --repair heals a damaged copy of a "
            "mirrored blob from a whole one. Same options and exit codes as `vallum scrub`.")(scrub)
