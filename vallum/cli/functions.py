"""`vallum fn create|invoke|ls|rm` and `vallum trigger add|ls|rm`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from vallum.cli.jobs import Endpoint, call, client, emit, fail, load_spec

fn_app = typer.Typer(help="Functions: handlers invoked with a JSON event.", no_args_is_help=True)
trigger_app = typer.Typer(help="Object-event and cron triggers.", no_args_is_help=True)


@fn_app.command("create")
def create(name: str,
           code: Path = typer.Option(None, "--code", help="Python file, loaded as module 'main'"),
           code_uri: str = typer.Option(None, "--code-uri", help="s3:// prefix holding the code"),
           handler: str = typer.Option("main.handler", "--handler", help="module.func"),
           spec: str = typer.Option(None, "--spec", help="Full JSON spec (file, '-' or inline)"),
           venv: str = typer.Option(None, "--venv", help="Named runtime (`vallum runtime`)"),
           endpoint: str = Endpoint) -> None:
    """Create or update a function."""
    doc = load_spec(spec) if spec else {}
    doc.setdefault("handler", handler)
    if code is not None:
        doc["code"] = code.read_text()
    if code_uri:
        doc["code_uri"] = code_uri
    if venv:
        doc["venv"] = venv
    emit(call(client(endpoint).create_function, name, doc))


@fn_app.command("invoke")
def invoke(name: str, payload: str = typer.Argument("null", help="JSON event ('-' for stdin)"),
           asynchronous: bool = typer.Option(False, "--async", help="Queue it; print the job"),
           endpoint: str = Endpoint) -> None:
    """Invoke synchronously (prints the result) or --async (prints the invocation job)."""
    text = sys.stdin.read() if payload == "-" else payload
    try:
        event = json.loads(text)
    except ValueError as exc:
        fail(f"the payload is not JSON: {exc}", 2)
    emit(call(client(endpoint).invoke, name, event, asynchronous=asynchronous))


@fn_app.command("ls")
def ls(endpoint: str = Endpoint) -> None:
    """List functions."""
    for f in call(client(endpoint).functions):
        typer.echo(f"{f['name']:<32} rev {f['revision']:<4} {f['spec']['handler']}")


@fn_app.command("rm")
def rm(name: str, endpoint: str = Endpoint) -> None:
    """Delete a function, its triggers and the bucket-notification entries targeting it
    (one transaction); its warm workers stop."""
    out = call(client(endpoint).delete_function, name)
    gone = out.get("triggers_deleted", []) if isinstance(out, dict) else []
    typer.echo(f"deleted function {name}" + (f" and {len(gone)} trigger(s): {' '.join(gone)}"
                                             if gone else ""))


@trigger_app.command("add")
def add(function: str = typer.Option(None, "--function", "-f", help="Function to invoke"),
        bucket: str = typer.Option(None, "--bucket", "-b"),
        prefix: str = typer.Option("", "--prefix"), suffix: str = typer.Option("", "--suffix"),
        events: list[str] = typer.Option(None, "--event", help="e.g. s3:ObjectCreated:*; repeat"),
        schedule: str = typer.Option(None, "--schedule", help="cron: '*/5 * * * *'"),
        job: str = typer.Option(None, "--job", help="cron: the job spec (file, '-' or JSON)"),
        endpoint: str = Endpoint) -> None:
    """Add an object trigger (--bucket/--function) or a cron trigger (--schedule/--job)."""
    if schedule:
        if not job:
            fail("--schedule needs --job", 2)
        doc = {"kind": "cron", "schedule": schedule, "job": load_spec(job)}
    elif bucket and function:
        doc = {"kind": "object", "bucket": bucket, "prefix": prefix, "suffix": suffix,
               "function": function}
        if events:
            doc["events"] = list(events)
    else:
        fail("give --bucket and --function, or --schedule and --job", 2)
    emit(call(client(endpoint).add_trigger, doc))


@trigger_app.command("ls")
def tls(endpoint: str = Endpoint) -> None:
    """List triggers."""
    for t in call(client(endpoint).triggers):
        what = (f"s3://{t['bucket']}/{t['prefix']}*{t['suffix']} {','.join(t['events'])} -> "
                f"{t['function']}" if t["kind"] == "object" else f"{t['schedule']} -> job")
        typer.echo(f"{t['id']}  {t['kind']:<6} {what}")


@trigger_app.command("rm")
def trm(trigger_id: str, endpoint: str = Endpoint) -> None:
    """Remove a trigger."""
    call(client(endpoint).delete_trigger, trigger_id)
