"""`vallum backup create|verify|restore`: online snapshots of a site, checked and restored."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import typer

from vallum.ops import backup_manifest, backup_s3
from vallum.ops.backup_create import create as create_backup
from vallum.ops.backup_keys import ENV, BackupError, WrongPassphrase, read_passphrase
from vallum.ops.backup_restore import restore as restore_backup

app = typer.Typer(help="Back up a running site, verify a backup, restore it.", no_args_is_help=True,
                  add_completion=False)

PASSPHRASE = typer.Option(None, "--passphrase-file",
                          help=f"File whose first line is the backup passphrase [else env {ENV}; never on the command line]")
SNAPSHOT = typer.Option(None, "--snapshot", help="Snapshot id (default: the latest)")
STAGING = typer.Option(None, "--staging", help="With an s3:// target: where objects are staged on their way (default: $TMPDIR)")
META = typer.Option(None, "--meta", help="A site whose metadata is on PostgreSQL: postgresql://USER@HOST:PORT/DB (a password only in the environment or a PGPASSFILE) [env VALLUM_META_URL]")
TARGET_HELP = ("Backup directory, or an S3 target s3://BUCKET/PREFIX@http(s)://HOST[:PORT] "
               f"(keys from {backup_s3.ENV_NAMES[0]}/{backup_s3.ENV_NAMES[1]} or {backup_s3.ENV_NAMES[2]})")
EXIT_BAD, EXIT_PASSPHRASE = 1, 4


def _data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data")


@contextlib.contextmanager
def _local(where: str, passphrase: bytes, snapshot: str | None, staging: str | None
           ) -> Iterator[tuple[Path, str | None]]:
    """A backup directory to read: ``where`` itself, or a fetched copy of an S3 target's snapshot."""
    if backup_s3.is_target(where):
        with backup_s3.fetched(where, passphrase, snapshot, staging=staging) as (root, snap):
            yield root, snap
    else:
        yield Path(where), snapshot


def _meta(value: str | None) -> str | None:
    """The PostgreSQL URL: the flag (never with a password: argv is public) or the environment."""
    if value is not None:
        if not value.startswith(("postgresql://", "postgres://")):
            raise BackupError("--meta must be a postgresql:// URL")
        if urlsplit(value).password is not None:
            raise BackupError("--meta carries a password, which every local user can read in the "
                              "process list: set VALLUM_META_URL or use a PGPASSFILE")
        return value
    return os.environ.get("VALLUM_META_URL") or None


def _fail(command: str, exc: BackupError) -> typer.Exit:
    typer.echo(f"vallum backup {command}: {exc}", err=True)
    return typer.Exit(EXIT_PASSPHRASE if isinstance(exc, WrongPassphrase) else EXIT_BAD)


@app.command("create")
def create(data_dir: str = typer.Option(None, "--data-dir", help="The site's data directory [env VALLUM_DATA_DIR]"),
           to: str = typer.Option(..., "--to", help=TARGET_HELP + "; snapshots share its objects: incremental"),
           passphrase_file: str = PASSPHRASE, staging: str = STAGING, meta: str = META) -> None:
    """Take a consistent snapshot of a site, running or not."""
    os.umask(0o077)
    try:
        url = _meta(meta)
        if backup_s3.is_target(to):
            report = backup_s3.create_to(_data_dir(data_dir), to, read_passphrase(passphrase_file),
                                         staging=staging, meta_url=url)
        else:
            report = create_backup(_data_dir(data_dir), Path(to), read_passphrase(passphrase_file),
                                   meta_url=url)
    except BackupError as exc:
        raise _fail("create", exc) from None
    typer.echo(f"snapshot {report.snapshot}: {report.files} files, {report.bytes} bytes; "
               f"{report.copied} objects copied, {report.reused} already in the backup")


@app.command("verify")
def verify(backup_dir: str = typer.Argument(..., help=TARGET_HELP),
           snapshot: str = SNAPSHOT, passphrase_file: str = PASSPHRASE, staging: str = STAGING) -> None:
    """Check a snapshot without restoring it: the manifest's MAC, then the size and SHA-256 of
    every file. Exit 0: intact; 1: damaged or altered; 4: wrong passphrase."""
    try:
        passphrase = read_passphrase(passphrase_file)
        with _local(backup_dir, passphrase, snapshot, staging) as (root, snap):
            manifest, keys = backup_manifest.load(root, passphrase, snap)
            problems = backup_manifest.verify(root, manifest, keys)
    except BackupError as exc:
        raise _fail("verify", exc) from None
    for problem in problems:
        typer.echo(f"DAMAGED {problem}", err=True)
    if problems:
        typer.echo(f"vallum backup verify: snapshot {manifest.id}: {len(problems)} problem(s)", err=True)
        raise typer.Exit(EXIT_BAD)
    typer.echo(f"snapshot {manifest.id}: OK ({len(manifest.entries)} files)")


@app.command("restore")
def restore(backup_dir: str = typer.Argument(..., help=TARGET_HELP),
            data_dir: str = typer.Option(..., "--data-dir", help="Where to rebuild the site (new or empty)"),
            snapshot: str = SNAPSHOT, passphrase_file: str = PASSPHRASE, staging: str = STAGING,
            meta: str = META, replace: bool = typer.Option(False, "--replace", help="Replace an existing (stopped) site; refused if any object lock would be weakened. The old one is kept beside it.")) -> None:
    """Rebuild a working site from a verified snapshot."""
    os.umask(0o077)
    try:
        passphrase = read_passphrase(passphrase_file)
        url = _meta(meta)
        with _local(backup_dir, passphrase, snapshot, staging) as (root, snap):
            report = restore_backup(root, Path(data_dir), passphrase, snapshot=snap, replace=replace,
                                    meta_url=url)
    except BackupError as exc:
        raise _fail("restore", exc) from None
    typer.echo(f"restored snapshot {report.snapshot} into {data_dir}: {report.files} files, "
               f"{report.bytes} bytes")
    if report.replaced is not None:
        typer.echo(f"the site it replaced is kept at {report.replaced}")
