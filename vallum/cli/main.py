"""The `vallum` command."""

from __future__ import annotations

import typer

from vallum.cli import audit as audit_cli
from vallum.cli import backup as backup_cli
from vallum.cli import blobs as blobs_cli
from vallum.cli import bundle as bundle_cli
from vallum.cli import certs as certs_cli
from vallum.cli import events as events_cli
from vallum.cli import functions, jobs
from vallum.cli import label as label_cli
from vallum.cli import ldap as ldap_cli
from vallum.cli import meta as meta_cli
from vallum.cli import quota as quota_cli
from vallum.cli import spill as spill_cli
from vallum.cli.admin import app as admin_app
from vallum.cli.keys import app as keys_app
from vallum.cli.operator import app as operator_app
from vallum.cli.root import app as root_app
from vallum.cli.runtime import app as runtime_app
from vallum.cli.scrub import scrub
from vallum.cli.serve import serve
from vallum.cli.upgrade import upgrade

app = typer.Typer(help="Vallum: a self-hosted, S3-compatible cloud for sensitive organisations.",
                  no_args_is_help=True, add_completion=False)
app.command("serve")(serve)
app.command("scrub")(scrub)
app.add_typer(blobs_cli.app, name="blobs")
app.command("upgrade")(upgrade)
app.add_typer(jobs.app, name="job")
app.add_typer(functions.fn_app, name="fn")
app.add_typer(functions.trigger_app, name="trigger")
app.add_typer(operator_app, name="operator")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(certs_cli.app, name="certs")
admin_app.add_typer(quota_cli.app, name="quota")
admin_app.command("usage")(quota_cli.usage)
admin_app.add_typer(root_app, name="root")
admin_app.add_typer(ldap_cli.app, name="ldap")
admin_app.add_typer(events_cli.app, name="events")
app.add_typer(admin_app, name="admin")
app.add_typer(keys_app, name="keys")
app.add_typer(spill_cli.app, name="spill")
app.add_typer(runtime_app, name="runtime")
app.add_typer(label_cli.app, name="label")
app.add_typer(backup_cli.app, name="backup")
app.add_typer(bundle_cli.app, name="bundle")
app.add_typer(meta_cli.app, name="meta")


@app.command("version")
def version() -> None:
    """Print the Vallum version."""
    from importlib.metadata import version as pkg_version

    typer.echo(pkg_version("vallum"))
