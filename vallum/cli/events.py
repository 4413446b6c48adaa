"""`vallum admin events target put|ls|rm` and `vallum admin events dead-letters`: the event
targets of the caller's account (docs/events.md).

A NATS token is read from a file that only its owner may read (mode 0600 or stricter),
never from argv, where every user of the host could see it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import typer

from vallum.cli.admin import OutputOpt, _run, _usage

app = typer.Typer(help="Event notifications to external targets (webhook, NATS).",
                  no_args_is_help=True)
target_app = typer.Typer(help="Webhook and NATS targets of your account.", no_args_is_help=True)
app.add_typer(target_app, name="target")


def read_token(path: Path) -> str:
    """The token in ``path``; a usage error when others may read the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        _usage(f"cannot open the token file {path}: {exc.strerror}")
        raise AssertionError from None   # _usage exits
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode) or mode & 0o077:
            _usage(f"{path} must be a regular file readable by its owner only (chmod 600)")
        token = f.read(8192).decode("utf-8", "replace").strip()
    if not token:
        _usage(f"{path} is empty")
    return token


@target_app.command("put")
def put(ctx: typer.Context, name: str,
        type_: str = typer.Option(..., "--type", help="webhook or nats"),
        endpoint: str = typer.Option(..., "--endpoint",
                                     help="https://... (webhook) or nats://HOST:PORT"),
        subject: str = typer.Option(None, "--subject", help="NATS subject (nats only)"),
        token_file: Path = typer.Option(None, "--token-file",
                                        help="file (0600) holding the NATS token"),
        ceiling: str = typer.Option(None, "--ceiling",
                                    help="highest label whose events it may receive "
                                         "(at most your clearance; default the lowest)"),
        max_attempts: int = typer.Option(None, "--max-attempts", help="before a dead letter"),
        backoff: float = typer.Option(None, "--backoff", help="first retry delay, seconds"),
        timeout: float = typer.Option(None, "--timeout", help="per delivery, seconds"),
        output: str = OutputOpt) -> None:
    """Register (or update) a target; prints a new webhook's signing secret, once."""
    token = read_token(token_file) if token_file is not None else None
    _run(ctx, "PutNotificationTarget", output, name=name, type=type_, endpoint=endpoint,
         subject=subject, token=token, ceiling=ceiling, max_attempts=max_attempts,
         backoff_s=backoff, timeout_s=timeout)


@target_app.command("ls")
def ls(ctx: typer.Context, output: str = OutputOpt) -> None:
    """Your account's targets (never their secrets)."""
    _run(ctx, "ListNotificationTargets", output)


@target_app.command("rm")
def rm(ctx: typer.Context, name: str, output: str = OutputOpt) -> None:
    """Delete a target no bucket configuration names (its pending deliveries go too)."""
    _run(ctx, "DeleteNotificationTarget", output, name=name)


@app.command("dead-letters")
def dead_letters(ctx: typer.Context,
                 target: str = typer.Option(None, "--target", help="a target ARN"),
                 limit: int = typer.Option(100, "--limit"),
                 output: str = OutputOpt) -> None:
    """Deliveries given up after the target's max attempts, newest first."""
    _run(ctx, "ListEventDeadLetters", output or "json", target=target, limit=limit)
