"""Start-up, shutdown and the reserved /-/ paths (health, metrics) of a gateway process."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import TYPE_CHECKING

from vallum import metrics
from vallum.http import Response
from vallum.iam import service as iam_service
from vallum.iam.root import load_or_create
from vallum.meta import pgshared
from vallum.meta.factory import meta_store
from vallum.meta.postgres import redacted
from vallum.operator import gateway as operator_hook
from vallum.s3 import errors
from vallum.security import setup as security_setup
from vallum.server import diskguard, rate_limits
from vallum.server.config import Config, from_env
from vallum.server.state import Services
from vallum.service.clock import clock
from vallum.service.lifecycle import LifecycleWorker
from vallum.service.usage import METER
from vallum.storage import blobspec
from vallum.storage.base import BlobStore
from vallum.storage.headroom import Headroom, parse_reserve
from vallum.storage.localfs import LocalBlobStore

if TYPE_CHECKING:
    from vallum.server.app import Gateway

log = logging.getLogger("vallum.server")


async def open_services(config: Config) -> Services:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # With --meta postgresql://…: object metadata, IAM, failed-authentication counts, operator
    # state and (in ComputeService) compute in PostgreSQL; audit, keyring and blobs stay in the
    # data directory.
    meta = meta_store(config.meta_path, config.meta_url)
    reserve = parse_reserve(config.disk_reserve)
    # Every disk a write lands on counts: the data directory and a mirror's local copies.
    headroom = Headroom(config.data_dir, reserve, also=blobspec.local_roots(config.blobs))
    blobs = security_setup.blob_store(config.data_dir, _inner_blobs(config, headroom))
    await meta.open()
    await blobs.open()
    services = Services(config, meta, blobs, load_or_create(config.data_dir))
    services.headroom = headroom
    services.audit = await security_setup.open_audit(config.data_dir)
    if config.meta_url:
        services.iam = await asyncio.to_thread(iam_service.open_postgres, config.data_dir,
                                               config.meta_url, services.root, services.owner_id,
                                               config.meta_path)
    else:
        services.iam = iam_service.open_sqlite(config.data_dir, config.meta_path, services.root,
                                               services.owner_id)
    return services


def _inner_blobs(config: Config, headroom: Headroom) -> BlobStore:
    """The data directory, or what ``--blobs`` names: another directory, an upstream S3
    store or a mirror of two (always encrypted by the caller)."""
    if config.blobs:
        return blobspec.build(config.blobs, config.data_dir, headroom.reserve_spec)
    return LocalBlobStore(config.blob_root, headroom)


async def close_services(services: Services) -> None:
    await security_setup.close_audit(services.audit)
    await services.meta.close()
    await services.blobs.close()
    if services.iam is not None:
        services.iam.close()


async def sweep_orphans(config: Config) -> int:
    """Remove blobs of writes that never committed metadata (run before any worker starts).
    On PostgreSQL, only while no other gateway serves on the database: with several
    gateways sharing the blobs, another one's writes in flight are not orphans."""
    if config.meta_url:
        # The metadata store first: it waits for the database (VALLUM_META_OPEN_TIMEOUT) and
        # fails start-up with a message naming it.
        probe = meta_store(config.meta_path, config.meta_url)
        await probe.open()
        await probe.close()
        try:
            alone = await asyncio.to_thread(pgshared.sole_gateway, config.meta_url)
        except Exception as exc:     # noqa: BLE001 - psycopg.Error: gone again since
            raise RuntimeError(f"PostgreSQL {redacted(config.meta_url)}: {exc}") from None
        if alone is None:
            log.warning("start-up sweep skipped: another gateway is serving on this database")
            return 0
        try:
            return await _sweep(config)
        finally:
            alone.close()
    return await _sweep(config)


async def _sweep(config: Config) -> int:
    services = await open_services(config)
    try:
        referenced = await services.meta.referenced_blobs()
        return await services.blobs.sweep(referenced.__contains__)
    finally:
        await close_services(services)


async def start_compute(services: Services) -> None:
    """Jobs, functions and triggers (VALLUM_COMPUTE: local, local:N or ray://HOST:PORT)."""
    from vallum.compute.service import ComputeService

    services.compute = ComputeService(services)
    services.compute.scheduler.on_cpu = METER.add_cpu      # tasks' CPU time, per account
    await services.compute.start()


async def lifespan(gateway: Gateway, receive, send) -> None:
    worker: LifecycleWorker | None = None
    watcher: diskguard.Watcher | None = None
    presence: pgshared.Presence | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                if gateway.services is None:
                    config = from_env()
                    if config.meta_url:        # before serving: no sweep starts from now on
                        presence = pgshared.Presence(config.meta_url)
                        presence.start()
                        # Blocks while another gateway's start-up sweep runs (exclusive).
                        if not await asyncio.to_thread(presence.held.wait, 60.0):
                            log.warning("serving without the gateway presence lock yet: "
                                        "another gateway's start-up sweep still runs")
                    gateway.services = await open_services(config)
                    watcher = diskguard.Watcher(gateway.services.headroom, gateway.services.config.data_dir)
                    watcher.start()
                    worker = LifecycleWorker(gateway.services, clock())
                    worker.start()
                    await start_compute(gateway.services)
            except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which exits
                log.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            # Everything built so far (modules, compiled statements, the services) lives as
            # long as the process: frozen, full collections stop walking it (without this,
            # each one paused a 4 KiB PUT load for ~40 ms, gen2 measured with gc.callbacks).
            gc.collect()
            gc.freeze()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                if watcher is not None:
                    await watcher.stop()
                if worker is not None:
                    await worker.stop()
                if gateway.services is not None and gateway.services.compute is not None:
                    await gateway.services.compute.stop()
            finally:
                operator_hook.shutdown()        # its baselines saved, its detector lock given up
                rate_limits.shutdown()
                # Always: closing the audit log writes its signed seal (a clean shutdown).
                if gateway.services is not None:
                    await METER.close(gateway.services.meta)    # the last usage counts
                    await close_services(gateway.services)
                    gateway.services = None
                if presence is not None:
                    await asyncio.to_thread(presence.stop)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def reserved(gateway: Gateway, method: str, path: str) -> Response:
    path = path.split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        raise errors.MethodNotAllowed()
    if path == "/-/health/live":
        return Response(200, {"content-type": "text/plain"}, b"ok\n")
    if path == "/-/health/ready":
        if gateway.services is None:
            return Response(503, {"content-type": "text/plain"}, b"starting\n")
        if not await gateway.services.meta.reachable():
            return Response(503, {"content-type": "text/plain"}, b"metadata database unavailable\n")
        full = diskguard.readiness(gateway.services.headroom)
        if full is not None:
            return Response(503, {"content-type": "text/plain", "x-vallum-disk": "full"}, full)
        return Response(200, {"content-type": "text/plain"}, b"ready\n")
    if path == "/-/metrics":
        body, content_type = metrics.exposition()
        return Response(200, {"content-type": content_type}, body)
    raise errors.NoSuchKey(f"No such Vallum endpoint: {path}")
