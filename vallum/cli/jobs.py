"""`vallum job submit|ls|status|logs|wait|cancel`: the compute API from a shell.

Credentials and endpoint come from VALLUM_ENDPOINT (or AWS_ENDPOINT_URL) and
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; for an https endpoint
signed by a private CA, VALLUM_CA_BUNDLE (or AWS_CA_BUNDLE) names the CA file. Exit codes: 0 ok,
1 runtime error (or a job that did not succeed, for `wait`), 2 usage error.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from vallum.client import TERMINAL, Client, VallumError

app = typer.Typer(help="Batch jobs next to the data.", no_args_is_help=True)


def client(endpoint: str | None) -> Client:
    try:
        c = Client.from_env()
    except VallumError as exc:
        fail(str(exc), 2)
    if endpoint:
        try:
            c = Client(endpoint, c.access_key, c.secret_key, session_token=c.token,
                       region=c.region, verify=c.verify)
        except VallumError as exc:
            fail(str(exc), 2)
    return c


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"vallum: {message}", err=True)
    raise typer.Exit(code)


def emit(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))


def call(fn, *args, **kwargs) -> Any:
    try:
        return fn(*args, **kwargs)
    except VallumError as exc:
        fail(f"{exc.code}: {exc.message}")
    except OSError as exc:
        fail(f"cannot reach the server: {exc}")


Endpoint = typer.Option(None, "--endpoint", help="Server URL [env VALLUM_ENDPOINT]")


def load_spec(spec: str) -> dict[str, Any]:
    text = sys.stdin.read() if spec == "-" else (Path(spec).read_text() if Path(spec).is_file() else spec)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        fail(f"the spec is not JSON: {exc}", 2)
    return doc


@app.command("submit")
def submit(
    spec: str = typer.Argument(None, help="Job spec: a JSON file, '-' for stdin, or inline JSON"),
    code: Path = typer.Option(None, "--code", help="Python file to run (runtime python)"),
    command: list[str] = typer.Option(None, "--cmd", help="argv element (runtime command); repeat"),
    inputs: list[str] = typer.Option(None, "--input", "-i", help="s3:// object or prefix; repeat"),
    array: str = typer.Option(None, "--array", help="s3:// prefix: one task per object"),
    output: str = typer.Option(None, "--output", "-o", help="s3:// prefix for outputs and logs"),
    venv: str = typer.Option(None, "--venv", help="Named runtime to run in (`vallum runtime`)"),
    wait: bool = typer.Option(False, "--wait", help="Wait for the end (with progress)"),
    endpoint: str = Endpoint,
) -> None:
    """Submit a job; prints it (JSON)."""
    doc = load_spec(spec) if spec else {}
    if code is not None:
        doc.update(runtime="python", code=code.read_text())
    if command:
        doc.update(runtime="command", command=list(command))
    if inputs:
        doc["inputs"] = list(inputs)
    for name, value in (("array", array), ("output", output), ("venv", venv)):
        if value:
            doc[name] = value
    c = client(endpoint)
    job = call(c.submit, doc)
    emit(job)
    if wait:
        _wait(c, job["id"], 0)


@app.command("ls")
def ls(state: str = typer.Option(None, "--state"), limit: int = typer.Option(50, "--limit"),
       endpoint: str = Endpoint) -> None:
    """List jobs, newest first."""
    for j in call(client(endpoint).jobs, state, limit):
        typer.echo(f"{j['id']}  {j['state']:<10} {j['kind']:<8} {j['name']:<20} "
                   f"{j['tasks_total']:>6} task(s)  {j.get('reason') or ''}")


@app.command("status")
def status(job_id: str, tasks: bool = typer.Option(False, "--tasks"), endpoint: str = Endpoint) -> None:
    """One job's status (JSON); --tasks adds per-task status."""
    c = client(endpoint)
    doc = call(c.job, job_id)
    if tasks:
        doc["task_list"] = call(c.tasks, job_id)
    emit(doc)


@app.command("logs")
def logs(job_id: str, task: int = typer.Option(0, "--task"),
         follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the task ends"),
         endpoint: str = Endpoint) -> None:
    """Print a task's log; -f follows it live."""
    c = client(endpoint)
    if not follow:
        sys.stdout.write(call(c.logs, job_id, task)["data"])
        return
    try:
        for chunk in c.follow_logs(job_id, task):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except VallumError as exc:
        fail(f"{exc.code}: {exc.message}")


def _wait(c: Client, job_id: str, timeout: float) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    deadline = time.monotonic() + timeout if timeout else float("inf")
    job = call(c.job, job_id)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True, disable=not sys.stderr.isatty(),
                  console=None) as bar:
        t = bar.add_task(job_id, total=job["tasks_total"])
        while job["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                fail(f"{job_id} still {job['state']} after {timeout:g}s")
            time.sleep(0.25)
            job = call(c.job, job_id)
            counts = job["tasks"]
            bar.update(t, completed=sum(counts[k] for k in TERMINAL),
                       description=f"{job_id} {job['state']}")
    typer.echo(f"{job_id} {job['state']}" + (f": {job['reason']}" if job.get("reason") else ""))
    if job["state"] != "SUCCEEDED":
        raise typer.Exit(1)


@app.command("wait")
def wait_cmd(job_id: str, timeout: float = typer.Option(0, "--timeout", help="Seconds (0: no limit)"),
             endpoint: str = Endpoint) -> None:
    """Wait for a job to end, with a progress bar for array jobs; exit 1 unless it SUCCEEDED."""
    _wait(client(endpoint), job_id, timeout)


@app.command("cancel")
def cancel(job_id: str, endpoint: str = Endpoint) -> None:
    """Cancel a job: queued tasks never start, running ones are killed."""
    doc = call(client(endpoint).cancel, job_id)
    typer.echo(f"{job_id} {doc['state']}" + ("" if doc.get("cancelled") else " (already ended)"))
