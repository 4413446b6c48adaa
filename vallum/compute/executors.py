"""Where task attempts run: the embedded local pool, or a Ray cluster.

Both run the same ``runner.run_task`` (stage via S3 with the task's credentials,
sandbox, upload), so semantics match; they differ only in which machine's
process does it. ``vallum serve --compute ray://HOST:PORT`` picks Ray.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from vallum.compute import cgroups, metrics, runner
from vallum.compute import sandbox as sbx
from vallum.compute.sizing import PoolSizer, parse_bounds
from vallum.compute.warm import WarmPool, eligible

log = logging.getLogger("vallum.compute.executors")


class LocalPool:
    """Runs attempts in this process's event loop; ``capacity`` sandboxes at once.

    With ``bounds`` (``local:MIN-MAX``) the capacity follows the predictive sizer
    (sizing.PoolSizer), starting at MIN; ``resize`` applies a size (running tasks are
    never stopped: a smaller pool just claims less until it fits)."""

    name = "local"

    def __init__(self, box: sbx.Sandbox, scratch_base: Path, size: int | None = None,
                 bounds: tuple[int, int] | None = None) -> None:
        self.box, self.scratch_base = box, scratch_base
        self.capacity = size or int(os.environ.get("VALLUM_COMPUTE_SLOTS", 0)) or (os.cpu_count() or 1)
        self.bounds = bounds
        self.sizer: PoolSizer | None = None
        if bounds is not None:
            self.capacity = bounds[0]
            self.sizer = PoolSizer(bounds[0], bounds[1], self.resize, lambda: self.capacity)
        self.warm = WarmPool(box, scratch_base, max_idle=2 * self.capacity)
        self.warm_enabled = os.environ.get("VALLUM_COMPUTE_WARM", "1") != "0"

    def resize(self, n: int) -> None:
        """Run up to ``n`` tasks at once (clamped to the bounds, if any; at least 1)."""
        lo, hi = self.bounds if self.bounds is not None else (1, 1 << 16)
        self.capacity = max(lo, min(hi, int(n)))
        self.warm.max_idle = 2 * self.capacity
        metrics.POOL_SIZE.set(self.capacity)

    async def start(self) -> None:
        self.scratch_base.mkdir(parents=True, exist_ok=True)
        self.warm.start()

    async def close(self) -> None:
        await self.warm.close()
        cgroups.sweep()                     # the cgroups of sandboxes that have ended

    async def run(self, bundle: runner.TaskBundle, cancel: asyncio.Event,
                  on_scratch=None) -> runner.TaskResult:
        try:
            if self.warm_enabled and self.box.mode == "bwrap" and eligible(bundle.job_spec()):
                return await self.warm.run(bundle, cancel, on_scratch)
            return await runner.run_task(bundle, self.box, self.scratch_base, cancel, on_scratch)
        except Exception as exc:  # noqa: BLE001 - the task's failure, told without host detail
            return internal_failure(bundle, exc)


def internal_failure(bundle: runner.TaskBundle, exc: BaseException) -> runner.TaskResult:
    """A failure of Vallum's own machinery around a task: the details (host paths, pids,
    a helper's output) go to the gateway's log; the job's reason names only its kind."""
    log.error("task %s/%s failed internally", bundle.job_id, bundle.idx, exc_info=exc)
    return runner.TaskResult("FAILED", None, f"internal error ({type(exc).__name__}); "
                                             "the gateway's log has the details")


_RAY_REASONS = {
    "WorkerCrashedError": "ray: the worker running the task died",
    "NodeDiedError": "ray: the node running the task died",
    "LocalRayletDiedError": "ray: the node running the task died",
    "OutOfMemoryError": "ray: the node ran out of memory and Ray killed the task's worker",
    "TaskCancelledError": "cancelled",
}


def _ray_task(bundle_doc: dict[str, Any], scratch_base: str,
              allow_root: bool = False) -> dict[str, Any]:
    """Body of the Ray remote function: one attempt on a Ray worker. ``allow_root``: the
    gateway's operator allowed tenant code to start from root (--allow-root-compute)."""
    bundle = runner.TaskBundle(**bundle_doc)
    if allow_root:
        os.environ[sbx.ALLOW_ROOT_ENV] = "1"
    box = sbx.Sandbox()
    # A Ray worker runs one task at a time: one uid of its own, apart from the gateway's range.
    box._free_uids = [sbx.UID_BASE + sbx.UID_COUNT + os.getpid() % 1_000_000]
    result = asyncio.run(runner.run_task(bundle, box, Path(scratch_base)))
    return result.to_json()


class RayExecutor:
    """Submits each attempt as a Ray task; capacity is the cluster's CPU count.

    Ray workers reach the gateway over the network with the task's temporary
    credentials, exactly as the local pool does over loopback.
    """

    name = "ray"

    def __init__(self, address: str, box: sbx.Sandbox, scratch_base: Path) -> None:
        self.address = address
        self.box, self.scratch_base = box, scratch_base
        self.capacity = 1
        self._remote: Any = None
        self._ray: Any = None

    async def start(self) -> None:
        host = self.address.rsplit(":", 1)[0].strip("[]")
        loopback = host in ("127.0.0.1", "localhost", "::1")
        if loopback:
            # Ray swaps a loopback node address for the machine's routable one and then binds
            # its driver's gRPC servers on every interface; this keeps them on 127.0.0.1.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        self._ray = ray
        try:        # the GCS address (HOST:6379 by default), joining as a driver ...
            await asyncio.to_thread(ray.init, address=self.address, ignore_reinit_error=True,
                                    log_to_driver=False, logging_level=logging.WARNING)
        except Exception:  # noqa: BLE001 - ... or a Ray Client server (HOST:10001)
            await asyncio.to_thread(ray.init, address="ray://" + self.address,
                                    ignore_reinit_error=True, log_to_driver=False,
                                    logging_level=logging.WARNING)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, int(os.environ.get("VALLUM_COMPUTE_SLOTS", 0)) or cpus)
        self._remote = ray.remote(num_cpus=0.01, max_retries=0)(_ray_task)
        self.scratch_base.mkdir(parents=True, exist_ok=True)
        log.info("compute: connected to Ray at %s (%d CPUs)", self.address, cpus)

    async def close(self) -> None:
        if self._ray is not None:
            await asyncio.to_thread(self._ray.shutdown)

    async def run(self, bundle: runner.TaskBundle, cancel: asyncio.Event,
                  on_scratch=None) -> runner.TaskResult:
        spec = bundle.job_spec()
        ref = self._remote.options(num_cpus=spec.resources.cpu,
                                   memory=spec.resources.memory_mb * 1024 * 1024).remote(
            bundle.__dict__, str(self.scratch_base), sbx.root_allowed())
        waiter = asyncio.ensure_future(_await_ref(ref))
        stopper = asyncio.ensure_future(cancel.wait())
        try:
            done, _ = await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                return runner.TaskResult(**waiter.result())
            self._ray.cancel(ref, force=True)      # kills the worker; the sandbox dies with it
            return runner.TaskResult("CANCELLED", None, "cancelled")
        except asyncio.CancelledError:
            self._ray.cancel(ref, force=True)
            raise
        except Exception as exc:  # noqa: BLE001 - a lost Ray worker is the task's failure
            # Ray's own text carries node addresses, worker pids and host tracebacks.
            reason = _RAY_REASONS.get(type(exc).__name__)
            if reason is None:
                return internal_failure(bundle, exc)
            log.warning("task %s/%s: %s", bundle.job_id, bundle.idx, exc)
            return runner.TaskResult("FAILED", None, reason)
        finally:
            stopper.cancel()


async def _await_ref(ref: Any) -> Any:
    import ray

    return await runner._io(ray.get, ref)


def make_executor(url: str | None, box: sbx.Sandbox, scratch_base: Path):
    url = url or os.environ.get("VALLUM_COMPUTE") or "local"
    if url.startswith("ray://"):
        return RayExecutor(url[len("ray://"):], box, scratch_base)
    if url == "local" or url.startswith("local:"):
        size = url.partition(":")[2]
        bounds = parse_bounds(size)
        if bounds is not None:
            return LocalPool(box, scratch_base, bounds=bounds)
        if size and not size.isdigit():
            raise ValueError(f"--compute local:N or local:MIN-MAX, not {url!r}")
        return LocalPool(box, scratch_base, int(size) if size.isdigit() else None)
    raise ValueError(f"--compute must be local, local:N, local:MIN-MAX or ray://HOST:PORT, "
                     f"not {url!r}")
