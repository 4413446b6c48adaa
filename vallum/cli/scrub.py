"""`vallum scrub` (also `vallum blobs verify`): authenticate every stored object version
and report the rot; on a mirror (`--blobs A,B`), every copy, and with --repair heal a
damaged copy from a whole one.

Exit 0: a complete pass found nothing (or repaired all it found); 1: corrupt, missing or
unreadable bodies left (listed); 2: usage error; 3: the pass stopped early
(--max-versions/--max-seconds) clean so far, run again to continue from the cursor.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import typer

from vallum.meta.factory import configured_url, meta_store
from vallum.security import setup as security_setup
from vallum.service import scrub as scrubber
from vallum.storage import blobspec
from vallum.storage.base import BlobStore, StorageUnavailable
from vallum.storage.headroom import parse_reserve
from vallum.storage.localfs import LocalBlobStore

EXIT_FOUND, EXIT_USAGE, EXIT_INCOMPLETE = 1, 2, 3
SAVE_EVERY = 1.0        # seconds between cursor writes (and at the end): one fsync, not one per version


def scrub(data_dir: str = typer.Option(None, "--data-dir", help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]"),
          rate: float = typer.Option(64.0, "--rate", help="Read at most this many MiB/s (0: unlimited)"),
          cursor: str = typer.Option(None, "--cursor", help="Progress file (default <data-dir>/scrub-cursor.json); a later run resumes from it"),
          restart: bool = typer.Option(False, "--restart", help="Ignore the cursor and start a new pass"),
          max_versions: int = typer.Option(0, "--max-versions", help="Stop after this many versions (0: no limit)"),
          max_seconds: float = typer.Option(0, "--max-seconds", help="Stop after this long (0: no limit)"),
          blobs: str = typer.Option(None, "--blobs", help="Where the bodies live, as `vallum serve --blobs` [env VALLUM_BLOBS; default the data dir]"),
          heal: bool = typer.Option(False, "--repair", help="Rewrite each damaged copy of a mirrored blob from a whole copy, and check it again"),
          as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document")) -> None:
    """Read and authenticate every object version (every chunk of every blob, every inline
    body) against its recorded length, every copy of a mirror; report corrupt, missing or
    unreadable bodies. Safe beside a running server (rate-limited; read-only unless
    --repair, which rewrites only damaged copies, each atomically)."""
    root = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data").resolve()
    meta_path = root / "meta.sqlite3"
    if not meta_path.is_file():
        typer.echo(f"vallum scrub: no Vallum data directory at {root}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if rate < 0 or max_versions < 0 or max_seconds < 0:
        typer.echo("vallum scrub: --rate, --max-versions and --max-seconds are >= 0", err=True)
        raise typer.Exit(EXIT_USAGE)
    spec = blobs if blobs is not None else os.environ.get("VALLUM_BLOBS") or None
    try:
        store = _blob_store(root, spec)
    except ValueError as exc:
        typer.echo(f"vallum scrub: --blobs: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    cursor_path = Path(cursor) if cursor else root / "scrub-cursor.json"
    try:
        progress = scrubber.Progress() if restart else scrubber.load_cursor(cursor_path)
    except (OSError, ValueError, TypeError) as exc:
        typer.echo(f"vallum scrub: {exc} (use --restart to start a new pass)", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    start = time.monotonic()
    try:
        progress = asyncio.run(_run(store, meta_path, progress, cursor_path, rate, max_versions,
                                    max_seconds, start, heal))
    except StorageUnavailable as exc:
        typer.echo(f"vallum scrub: {exc}", err=True)
        raise typer.Exit(EXIT_FOUND) from None
    _report(progress, as_json, time.monotonic() - start)
    if any(not f.repaired for f in progress.findings):
        raise typer.Exit(EXIT_FOUND)
    if not progress.complete:
        raise typer.Exit(EXIT_INCOMPLETE)


def _blob_store(root: Path, spec: str | None) -> BlobStore:
    """The (decrypting) store the server uses: the data dir, or what --blobs names."""
    inner = blobspec.build(spec, root, parse_reserve("0")) if spec else LocalBlobStore(root)
    return security_setup.blob_store(root, inner)


async def _run(blobs: BlobStore, meta_path: Path, progress: scrubber.Progress, cursor_path: Path,
               rate: float, max_versions: int, max_seconds: float, start: float,
               heal: bool) -> scrubber.Progress:
    meta = meta_store(meta_path, configured_url())
    await meta.open()
    await blobs.open()
    first, saved = progress.versions, [time.monotonic()]

    def save(p: scrubber.Progress) -> None:
        if p.complete or time.monotonic() - saved[0] >= SAVE_EVERY:
            scrubber.save_cursor(cursor_path, p)
            saved[0] = time.monotonic()

    def stop(p: scrubber.Progress) -> bool:
        done = (max_versions and p.versions - first >= max_versions) or (
            max_seconds and time.monotonic() - start >= max_seconds)
        if done:
            scrubber.save_cursor(cursor_path, p)
        return bool(done)

    try:
        return await scrubber.scrub(meta, blobs, progress, rate=rate * 1024 * 1024, save=save,
                                    stop=stop, heal=heal)
    except BaseException:
        scrubber.save_cursor(cursor_path, progress)     # interrupted: the next run resumes here
        raise
    finally:
        await blobs.close()
        await meta.close()


def _report(progress: scrubber.Progress, as_json: bool, seconds: float) -> None:
    if as_json:
        doc = progress.to_json()
        doc.pop("cursor_version")
        typer.echo(json.dumps(doc, indent=1))
        return
    for f in progress.findings:
        healed = " (REPAIRED)" if f.repaired else ""
        typer.echo(f"{f.problem.upper()}{healed} {f.bucket}/{f.key} version {f.version_id}: {f.detail}")
    state = "complete" if progress.complete else "stopped early (run again to continue)"
    repaired = sum(f.repaired for f in progress.findings)
    typer.echo(f"scrub {state}: {progress.versions} versions, {progress.bytes} bytes authenticated, "
               f"{progress.length_only} SSE-C versions checked for length only, "
               f"{len(progress.findings)} problems, {repaired} repaired ({seconds:.1f} s this run)")
