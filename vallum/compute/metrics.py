"""Compute metrics, registered in the gateway's Prometheus registry (served at /-/metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from vallum.metrics import REGISTRY

_B = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
QUEUE_LENGTH = Gauge("vallum_compute_queue_length", "Tasks waiting to run (QUEUED)",
                     registry=REGISTRY)
RUNNING = Gauge("vallum_compute_running_tasks", "Tasks running in this gateway process",
                registry=REGISTRY)
WAIT = Histogram("vallum_compute_task_wait_seconds", "Time a task waited from runnable to start",
                 ["runtime"], registry=REGISTRY, buckets=_B)
RUN = Histogram("vallum_compute_task_run_seconds", "Run time of one task attempt",
                ["runtime", "state"], registry=REGISTRY, buckets=_B)
FINISHED = Counter("vallum_compute_tasks_finished_total", "Task attempts by final state",
                   ["runtime", "state"], registry=REGISTRY)
FAILURES = Counter("vallum_compute_task_failures_total",
                   "Task attempts that failed, timed out or were lost", ["runtime", "reason"],
                   registry=REGISTRY)
SUBMITTED = Counter("vallum_compute_jobs_submitted_total", "Jobs accepted", ["kind"],
                    registry=REGISTRY)
EVENTS = Counter("vallum_compute_events_total", "Object events written to the outbox",
                 ["event"], registry=REGISTRY)
INVOKE = Histogram("vallum_compute_function_invoke_seconds", "Synchronous function invocations",
                   ["outcome"], registry=REGISTRY, buckets=_B)
POOL_SIZE = Gauge("vallum_compute_pool_slots", "Tasks this gateway process may run at once",
                  registry=REGISTRY)
