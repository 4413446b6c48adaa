"""`vallum scrub`: authenticate every stored object version on disk and report the rot.

Exit 0: a complete pass found nothing; 1: corrupt or missing bodies found (listed);
2: usage error; 3: the pass stopped early (--max-versions/--max-seconds) clean so far,
run again to continue from the cursor.
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
from vallum.storage.localfs import LocalBlobStore

EXIT_FOUND, EXIT_USAGE, EXIT_INCOMPLETE = 1, 2, 3
SAVE_EVERY = 1.0        # seconds between cursor writes (and at the end): one fsync, not one per version


def scrub(data_dir: str = typer.Option(None, "--data-dir", help="Data directory [env VALLUM_DATA_DIR; default ./vallum-data]"),
          rate: float = typer.Option(64.0, "--rate", help="Read at most this many MiB/s (0: unlimited)"),
          cursor: str = typer.Option(None, "--cursor", help="Progress file (default <data-dir>/scrub-cursor.json); a later run resumes from it"),
          restart: bool = typer.Option(False, "--restart", help="Ignore the cursor and start a new pass"),
          max_versions: int = typer.Option(0, "--max-versions", help="Stop after this many versions (0: no limit)"),
          max_seconds: float = typer.Option(0, "--max-seconds", help="Stop after this long (0: no limit)"),
          as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document")) -> None:
    """Read and authenticate every object version (every chunk of every blob, every inline
    body) against its recorded length; report corrupt or missing bodies. Safe beside a
    running server (read-only, rate-limited)."""
    root = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data").resolve()
    meta_path = root / "meta.sqlite3"
    if not meta_path.is_file():
        typer.echo(f"vallum scrub: no Vallum data directory at {root}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if rate < 0 or max_versions < 0 or max_seconds < 0:
        typer.echo("vallum scrub: --rate, --max-versions and --max-seconds are >= 0", err=True)
        raise typer.Exit(EXIT_USAGE)
    cursor_path = Path(cursor) if cursor else root / "scrub-cursor.json"
    try:
        progress = scrubber.Progress() if restart else scrubber.load_cursor(cursor_path)
    except (OSError, ValueError, TypeError) as exc:
        typer.echo(f"vallum scrub: {exc} (use --restart to start a new pass)", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    start = time.monotonic()
    progress = asyncio.run(_run(root, meta_path, progress, cursor_path, rate, max_versions, max_seconds, start))
    _report(progress, as_json, time.monotonic() - start)
    if progress.findings:
        raise typer.Exit(EXIT_FOUND)
    if not progress.complete:
        raise typer.Exit(EXIT_INCOMPLETE)


async def _run(root: Path, meta_path: Path, progress: scrubber.Progress, cursor_path: Path,
               rate: float, max_versions: int, max_seconds: float, start: float) -> scrubber.Progress:
    meta = meta_store(meta_path, configured_url())
    blobs = security_setup.blob_store(root, LocalBlobStore(root))
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
        return await scrubber.scrub(meta, blobs, progress, rate=rate * 1024 * 1024, save=save, stop=stop)
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
        typer.echo(f"{f.problem.upper()} {f.bucket}/{f.key} version {f.version_id}: {f.detail}")
    state = "complete" if progress.complete else "stopped early (run again to continue)"
    typer.echo(f"scrub {state}: {progress.versions} versions, {progress.bytes} bytes authenticated, "
               f"{progress.length_only} SSE-C versions checked for length only, "
               f"{len(progress.findings)} problems ({seconds:.1f} s this run)")
