"""`python -m vallum` is the `vallum` command."""

from vallum.cli.main import app

app()
