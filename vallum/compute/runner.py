"""One attempt of one task: stage inputs in, run sandboxed, upload outputs and the log.

Everything here talks to the data through the S3 API with the task's own
temporary credentials, so the same code runs inside the gateway (local pool)
and on a Ray worker, and a task can never stage more than its owner may read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vallum.client import Client, VallumError, tls_context
from vallum.compute import gateway_ca, safeio, tasklog
from vallum.compute import sandbox as sbx
from vallum.compute.credentials import TaskCredentials
from vallum.compute.spec import JobSpec, parse_uri

log = logging.getLogger("vallum.compute.runner")
REDACTED = "[REDACTED]"
# Blocking S3 calls get their own threads: on the default executor they could starve the
# gateway they are calling (which serves them from the same process).
_IO = ThreadPoolExecutor(64, thread_name_prefix="vallum-compute-io")


async def _io(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_IO, fn, *args)


@dataclass
class TaskBundle:
    """Everything one attempt needs; plain data so it can travel to a Ray worker."""

    job_id: str
    idx: int
    name: str                      # output sub-prefix for array tasks ("" for single jobs)
    attempt: int
    spec: dict[str, Any]
    input_key: str | None
    endpoint: str
    region: str
    creds: dict[str, Any]
    owner: str = ""                # who may share a warm sandbox with it (account|arn)
    label: str | None = None       # the label outputs and logs get (the job's level, raised
                                   # to the output bucket's floor)
    ca_bundle: str | None = None   # the gateway's TLS certificate when it speaks HTTPS
    runtime: str | None = None     # the named runtime's directory (the registry's, never
                                   # the tenant's: runtimes.py)

    def job_spec(self) -> JobSpec:
        return JobSpec.from_json(self.spec)

    def credentials(self) -> TaskCredentials:
        return TaskCredentials(**self.creds)


@dataclass
class TaskResult:
    state: str                     # SUCCEEDED | FAILED | TIMED_OUT | CANCELLED
    exit_code: int | None = None
    reason: str | None = None
    outputs: list[str] = field(default_factory=list)
    log: str = ""                  # the attempt's log (bounded, redacted): tasklog.py stores it
    cpu_seconds: float | None = None   # the attempt's CPU time (service/usage.py counts it)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def safe_relpath(key: str, prefix: str) -> str | None:
    """Where an object lands under in/ or code/; None for keys that would escape it."""
    rel = key[len(prefix):] if key.startswith(prefix) else key.rsplit("/", 1)[-1]
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") or "\x00" in p for p in parts):
        return None
    return "/".join(parts)


def _stage(client: Client, uri_text: str, dest: Path) -> list[str]:
    uri = parse_uri(uri_text, "input")
    if uri.is_prefix:
        items = [k for k, _ in client.list_objects(uri.bucket, uri.key)]
        base = uri.key
    else:
        items, base = [uri.key], uri.key.rsplit("/", 1)[0] + "/" if "/" in uri.key else ""
    staged = []
    dest_fd = safeio.open_dir(dest)
    try:
        for key in items:
            rel = safe_relpath(key, base)
            if rel is None:
                continue
            fd = safeio.write_at(dest_fd, rel, 0o644)     # the sandbox uid reads staged inputs
            try:
                # The client writes to a path: /proc/self/fd/N is the file just opened (a
                # magic link to its inode), never a name the sandbox could swap.
                client.download(uri.bucket, key, f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            staged.append(rel)
    finally:
        os.close(dest_fd)
    return staged


def stage_code(client: Client, spec: JobSpec, code_dir: Path) -> None:
    if spec.code is not None:
        dir_fd = safeio.open_dir(code_dir)
        try:
            with os.fdopen(safeio.write_at(dir_fd, "main.py", 0o644), "w") as f:
                f.write(spec.code)
        finally:
            os.close(dir_fd)
    if spec.script:
        _stage(client, spec.script, code_dir)
    if spec.code_uri:
        _stage(client, spec.code_uri, code_dir)


def stage_inputs(client: Client, bundle: TaskBundle, scratch: sbx.Scratch) -> None:
    spec = bundle.job_spec()
    for uri in spec.inputs:
        _stage(client, uri, scratch.inputs)
    if bundle.input_key is not None and spec.array:
        arr = parse_uri(spec.array, "array")
        _stage(client, f"s3://{arr.bucket}/{bundle.input_key}", scratch.inputs)


def stage_all(client: Client, bundle: TaskBundle, scratch: sbx.Scratch) -> None:
    stage_code(client, bundle.job_spec(), scratch.code)
    stage_inputs(client, bundle, scratch)


# Recent tasks' clients, newest last. Credentials are per attempt, so each task brings a
# new client; an evicted one closes its keep-alive connections at once (left open, hundreds
# of idle connections from this host would hit the gateway's per-source connection cap).
_CLIENTS: OrderedDict[str, Client] = OrderedDict()
_CLIENTS_KEPT = 32


def gateway_tls(cert_file: str) -> ssl.SSLContext:
    """Trust exactly the certificate (chain) the gateway serves, for calls to it over loopback.

    Why partial chain and no host name check: the gateway's own certificate is the trust
    anchor (a leaf is enough), and it may name the public host while these calls go to
    127.0.0.1 on the port the gateway itself holds."""
    ctx = tls_context(cert_file)             # the client's context: CA file, TLS 1.2 floor
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.check_hostname = False
    return ctx


def client_for(bundle: TaskBundle) -> Client:
    """The S3 client of a task's credentials, shared by the tasks holding the same ones
    (a job's tasks): its keep-alive connections save a TCP handshake per request."""
    creds = bundle.credentials()
    client = _CLIENTS.get(creds.access_key_id)
    if client is None or client.secret_key != creds.secret_access_key:
        client = _CLIENTS[creds.access_key_id] = Client(
            bundle.endpoint, creds.access_key_id, creds.secret_access_key,
            session_token=creds.session_token, region=bundle.region,
            verify=gateway_tls(bundle.ca_bundle) if bundle.ca_bundle else True)
        while len(_CLIENTS) > _CLIENTS_KEPT:
            _CLIENTS.popitem(last=False)[1].close()
    _CLIENTS.move_to_end(creds.access_key_id)
    return client


def read_nofollow(path: Path, offset: int = 0, limit: int | None = None) -> bytes:
    """Read a file the sandbox could have replaced, following no link in any component."""
    return safeio.read_file(path, offset, limit)


def argv_of(spec: JobSpec, box: sbx.Sandbox, scratch: sbx.Scratch) -> list[str]:
    code_dir = box.env_paths_root(scratch) + "/code"
    if spec.runtime == "command":
        return [*spec.command, *spec.args]
    if spec.module:
        return [box.python_for(scratch), "-u", "-m", spec.module, *spec.args]
    if spec.script:
        return [box.python_for(scratch), "-u", f"{code_dir}/{spec.script.rsplit('/', 1)[-1]}",
                *spec.args]
    return [box.python_for(scratch), "-u", f"{code_dir}/main.py", *spec.args]


def upload_outputs(client: Client, spec: JobSpec, name: str, scratch: sbx.Scratch,
                   label: str | None = None) -> list[str]:
    out = parse_uri(spec.output, "output")
    prefix = out.key + (f"{name}/" if name else "")
    done = []
    root = safeio.open_dir(scratch.outputs)
    try:
        for rel, fd in safeio.walk_files(root):    # links and oddities never leave the sandbox
            with os.fdopen(fd, "rb") as f:
                data = f.read()
            client.put_object(out.bucket, prefix + rel, data, label=label)
            done.append(prefix + rel)
    finally:
        os.close(root)
    return done


def error_text(exc: Exception) -> str:
    """What a job's reason may say about an error: never a host path (they name the
    scratch folder and, through it, the gateway's pid)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def redact(data: bytes, secrets: list[str]) -> bytes:
    for s in secrets:
        if s:
            data = data.replace(s.encode(), REDACTED.encode())
    return data


def trust_gateway(cert_file: str, box: sbx.Sandbox, scratch: sbx.Scratch,
                  spec: JobSpec) -> dict[str, str]:
    """Give a network task the gateway's CA bundle (in its work folder) and the variables
    naming it; {} (and a line in the task's log) when the certificate cannot be read, so
    the task's clients fall back to their default trust instead of the task not running."""
    try:
        path = gateway_ca.write_task_bundle(scratch.work, gateway_ca.bundle_for(cert_file))
    except (OSError, ValueError) as exc:
        log.warning("no CA bundle for a network task (%s): %s", cert_file, exc)
        with open(scratch.log_path, "a", encoding="utf-8") as f:
            f.write(f"vallum: the gateway's CA bundle is unavailable ({exc.__class__.__name__})\n")
        return {}
    seen = f"{box.env_paths_root(scratch)}/work/{path.name}"
    env = gateway_ca.task_env(seen, only_gateway=box.mode == "bwrap")
    # AWS_* cannot come from the spec; a task's own REQUESTS_CA_BUNDLE / SSL_CERT_FILE win.
    return {k: v for k, v in env.items() if k.startswith("AWS_") or k not in spec.env}


class GatewayRelay:
    """Host side of a network-enabled task: its Unix socket -> the gateway's TCP port."""

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.path, self.host, self.port = path, host, port
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> GatewayRelay:
        self.server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        # The sandbox uid must connect; the socket sits in that task's own 0700 folder.
        os.chmod(self.path, 0o666)  # noqa: S103
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    w.write_eof()
                except (OSError, RuntimeError):
                    pass

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer))
        writer.close()
        up_w.close()


async def finish(client: Client, spec: JobSpec, name: str, scratch: sbx.Scratch,
                 outcome: sbx.Outcome, secrets: list[str], label: str | None = None) -> TaskResult:
    """After the process ended: outputs (on success) and the log go to the output prefix."""
    outputs: list[str] = []
    reason = outcome.reason
    if outcome.ok:
        try:
            outputs = await _io(upload_outputs, client, spec, name, scratch, label)
        except (VallumError, OSError) as exc:
            reason = f"uploading outputs failed: {error_text(exc)}"
    state = ("CANCELLED" if outcome.cancelled else "TIMED_OUT" if outcome.timed_out
             else "SUCCEEDED" if outcome.ok and reason is None else "FAILED")
    trailer = f"\n[vallum] {state}" + (f": {reason}" if reason else "") + "\n"
    text = await _io(tasklog.capture, scratch.log_path, secrets,
                     trailer if state != "SUCCEEDED" else "")
    return TaskResult(state, outcome.exit_code, reason, outputs, text, outcome.cpu_seconds)


async def run_task(bundle: TaskBundle, box: sbx.Sandbox, scratch_base: Path,
                   cancel: asyncio.Event | None = None, on_scratch=None) -> TaskResult:
    """Run one attempt end to end; never raises for the task's own failures."""
    if not box.usable:
        return TaskResult("FAILED", None, box.refusal())
    spec = bundle.job_spec()
    creds = bundle.credentials()
    client = client_for(bundle)
    uid = box.acquire_uid()
    try:
        scratch = sbx.make_scratch(scratch_base, f"{bundle.job_id}.{bundle.idx}.{bundle.attempt}",
                                   uid)
    except BaseException:
        box.release_uid(uid)
        raise
    scratch.runtime = Path(bundle.runtime) if bundle.runtime else None
    if on_scratch is not None:
        on_scratch(scratch)
    try:
        try:
            await _io(stage_all, client, bundle, scratch)
        except (VallumError, OSError) as exc:
            reason = f"staging inputs failed: {error_text(exc)}"
            return TaskResult("FAILED", None, reason, log=f"vallum: {reason}\n")
        env = box.env_paths(scratch)
        env.update(spec.env)
        env.update({"VALLUM_JOB_ID": bundle.job_id, "VALLUM_TASK_INDEX": str(bundle.idx),
                    "VALLUM_ATTEMPT": str(bundle.attempt)})
        if spec.module:
            env["PYTHONPATH"] = box.env_paths_root(scratch) + "/code"
        if bundle.input_key is not None:
            env["VALLUM_INPUT_KEY"] = bundle.input_key
        argv = argv_of(spec, box, scratch)
        r = spec.resources
        limits = sbx.Limits(memory_mb=r.memory_mb, cpu_seconds=r.cpu_seconds(),
                            max_files=r.max_files, max_procs=r.max_procs,
                            max_file_mb=r.max_file_mb, wall_time_s=r.wall_time_s, cpu=r.cpu)
        relay = None
        if spec.network:
            parts = urlsplit(bundle.endpoint)
            https = parts.scheme == "https"
            port = parts.port or (443 if https else 80)
            env.update(creds.env())
            env["AWS_ENDPOINT_URL"] = f"{'https' if https else 'http'}://127.0.0.1:{port}"
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = bundle.region
            if https and bundle.ca_bundle:
                env.update(await _io(trust_gateway, bundle.ca_bundle, box, scratch, spec))
            if box.mode == "bwrap":
                argv = [sbx.python(), box.helper("relay.py"), str(port), "--", *argv]
                relay = GatewayRelay(scratch.sock_path, parts.hostname or "127.0.0.1", port)
        if relay is not None:
            async with relay:
                outcome = await box.run(scratch, argv, env, limits, network=True, cancel=cancel)
        else:
            outcome = await box.run(scratch, argv, env, limits, cancel=cancel)
        return await finish(client, spec, bundle.name, scratch, outcome, creds.secrets(),
                            bundle.label)
    finally:
        await _io(sbx.remove_scratch, scratch)      # off the event loop: rmtree costs ms
        box.release_uid(uid)
