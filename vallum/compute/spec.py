"""Job specifications: parse and validate what a caller submits, refuse bad input early.

A spec is plain JSON. Everything is checked at submit so a job that is accepted
can run: unknown runtimes, malformed fields, limits over the caller's quota and
bad URIs are refused here with a clear message.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

RUNTIMES = ("python", "command", "function")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_RESERVED_ENV = ("AWS_", "VALLUM_")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# A named runtime (runtimes.py): what a spec's ``venv`` may say; never a path.
RUNTIME_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class SpecError(Exception):
    """Refused at submit; ``code`` is the JSON error code, the message says what to fix."""

    def __init__(self, message: str, code: str = "InvalidSpec", status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Hidden(SpecError):
    """Refused by MAC and answered exactly as a missing thing would be (the caller may not
    learn it exists); ``rule`` is what the audit record says decided it."""

    def __init__(self, message: str, code: str, status: int = 404,
                 rule: str = "mac: no read up") -> None:
        super().__init__(message, code, status)
        self.rule = rule


def quota_error(message: str) -> SpecError:
    return SpecError(message, "QuotaExceeded", 403)


# Every resource knob a job or function asks for, with the platform's default ceiling and
# the environment variable an operator sets it with. An account quota (quotas.py) may only
# lower these; what a caller gets is the smaller of the two.
LIMITS: dict[str, tuple[type, float, str]] = {
    "cpu": (float, float(os.cpu_count() or 1), "VALLUM_COMPUTE_MAX_CPU"),
    "memory_mb": (int, 8192, "VALLUM_COMPUTE_MAX_MEMORY_MB"),
    "wall_time_s": (float, 86400.0, "VALLUM_COMPUTE_MAX_WALL_TIME"),
    "cpu_time_s": (float, 86400.0 * 64, "VALLUM_COMPUTE_MAX_CPU_TIME"),
    "max_procs": (int, 256, "VALLUM_COMPUTE_MAX_PROCS"),
    "max_files": (int, 4096, "VALLUM_COMPUTE_MAX_FILES"),
    "max_file_mb": (int, 10240, "VALLUM_COMPUTE_MAX_FILE_MB"),
    "tasks": (int, 100_000, "VALLUM_COMPUTE_MAX_TASKS"),
    "parallelism": (int, 1024, "VALLUM_COMPUTE_MAX_PARALLELISM"),
    "retries": (int, 10, "VALLUM_COMPUTE_MAX_RETRIES"),
    "concurrency": (int, 1024, "VALLUM_COMPUTE_MAX_CONCURRENCY"),   # running tasks per account
}
PLATFORM = "the platform limit"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Quota:
    """What one caller may ask for: the platform limits (VALLUM_COMPUTE_MAX_* variables),
    lowered by its account's quota; ``source`` says, per knob, which of the two binds
    (so a refusal names it)."""

    cpu: float = LIMITS["cpu"][1]
    memory_mb: int = 8192
    wall_time_s: float = 86400.0
    cpu_time_s: float = 86400.0 * 64
    max_procs: int = 256
    max_files: int = 4096
    max_file_mb: int = 10240
    tasks: int = 100_000
    parallelism: int = 1024
    retries: int = 10
    concurrency: int = 1024
    source: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls) -> Quota:
        """The platform limits; a malformed or non-positive variable stops start-up loudly."""
        values: dict[str, Any] = {}
        for name, (kind, _, var) in LIMITS.items():
            raw = os.environ.get(var)
            if raw is not None:
                try:
                    value = kind(raw)
                except ValueError:
                    raise ValueError(f"{var}={raw!r} is not a number") from None
                if value <= 0:
                    raise ValueError(f"{var} must be positive, got {raw!r}")
                values[name] = value
        return cls(**values)

    def narrowed(self, account: str, limits: dict[str, Any]) -> Quota:
        """These limits lowered by an account's quota (values above them change nothing)."""
        values: dict[str, Any] = {}
        source = dict(self.source)
        for name, value in limits.items():
            if name in LIMITS and value < getattr(self, name):
                values[name] = LIMITS[name][0](value)
                source[name] = f"the quota of account {account}"
        return replace(self, **values, source=tuple(sorted(source.items())))

    def whose(self, name: str) -> str:
        return dict(self.source).get(name, PLATFORM)

    def check(self, what: str, name: str, value: float) -> None:
        """QuotaExceeded naming the knob, the value asked for, the limit and whose it is."""
        limit = getattr(self, name)
        if value > limit:
            raise quota_error(f"{what} {_num(value)} is over {self.whose(name)} of {_num(limit)}")

    def doc(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LIMITS}


@dataclass
class Resources:
    cpu: float = 1.0
    memory_mb: int = 1024
    wall_time_s: float = 600.0
    cpu_time_s: float | None = None      # default: wall time x cpu
    max_files: int = 256
    max_procs: int = 64
    max_file_mb: int = 1024              # largest file a task may write

    def cpu_seconds(self) -> int:
        return int(self.cpu_time_s if self.cpu_time_s is not None
                   else max(1.0, self.wall_time_s * self.cpu)) + 1


@dataclass
class S3Uri:
    bucket: str
    key: str                             # object key, or prefix when it ends with "/" (or is "")

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_uri(value: Any, what: str) -> S3Uri:
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise SpecError(f"{what}: expected an s3://bucket/key URI, got {value!r}")
    bucket, _, key = value[5:].partition("/")
    if not bucket or bucket.startswith("-"):
        raise SpecError(f"{what}: missing or invalid bucket in {value!r}")
    return S3Uri(bucket, key)


@dataclass
class JobSpec:
    runtime: str
    name: str = "job"
    code: str | None = None              # python: inline source
    script: str | None = None            # python: s3:// URI of a script
    module: str | None = None            # python: module to run (-m), from code_uri
    code_uri: str | None = None          # python: s3:// prefix staged as /job/code
    command: list[str] = field(default_factory=list)   # command: argv
    args: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    array: str | None = None             # s3:// prefix: one task per object
    parallelism: int = 0                 # array: most tasks at once (0: pool size)
    output: str | None = None            # s3:// prefix for outputs and logs
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    retries: int = 0
    backoff_s: float = 1.0
    idempotency_key: str | None = None
    depends_on: list[str] = field(default_factory=list)
    network: bool = False                # loopback to the gateway + temporary credentials
    level: str | None = None             # session level (security label) for credentials
    function: str | None = None          # function runtime: the function's name
    payload: Any = None                  # function runtime: the event
    venv: str | None = None              # a named runtime (runtimes.py); None: system Python

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobSpec:
        doc = dict(doc)
        doc["resources"] = Resources(**doc.get("resources") or {})
        return cls(**doc)


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{what} must be a list of strings")
    return list(value)


def _number(doc: dict[str, Any], name: str, default: Any, lo: float, hi: float, kind=float) -> Any:
    value = doc.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{name} must be a number")
    if not lo <= value <= hi:
        raise SpecError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return kind(value)


def parse_resources(doc: Any, quota: Quota) -> Resources:
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SpecError("resources must be an object")
    unknown = set(doc) - {f for f in Resources.__dataclass_fields__}
    if unknown:
        raise SpecError(f"unknown resources field(s): {', '.join(sorted(unknown))}")
    r = Resources(
        cpu=_number(doc, "cpu", 1.0, 0.01, 1024),
        memory_mb=_number(doc, "memory_mb", min(1024, quota.memory_mb), 16, 1 << 30, int),
        wall_time_s=_number(doc, "wall_time_s", min(600.0, quota.wall_time_s), 0.1, 1e9),
        cpu_time_s=_number(doc, "cpu_time_s", None, 1, 1e9),
        max_files=_number(doc, "max_files", min(256, quota.max_files), 16, 1 << 20, int),
        max_procs=_number(doc, "max_procs", min(64, quota.max_procs), 1, 1 << 22, int),
        max_file_mb=_number(doc, "max_file_mb", min(1024, quota.max_file_mb), 1, 1 << 30, int),
    )
    for name in ("cpu", "memory_mb", "wall_time_s", "max_procs", "max_files", "max_file_mb"):
        quota.check(f"resources.{name}", name, getattr(r, name))
    quota.check("resources.cpu_time_s", "cpu_time_s", r.cpu_seconds() - 1)
    return r


FIELDS = set(JobSpec.__dataclass_fields__)


def parse_job(doc: Any, quota: Quota, *, allow_function: bool = False) -> JobSpec:
    """A validated JobSpec, or SpecError naming the first problem."""
    if not isinstance(doc, dict):
        raise SpecError("a job spec must be a JSON object")
    unknown = set(doc) - FIELDS
    if unknown:
        raise SpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
    runtime = doc.get("runtime")
    if runtime not in RUNTIMES or (runtime == "function" and not allow_function):
        allowed = RUNTIMES if allow_function else RUNTIMES[:2]
        raise SpecError(f"unknown runtime {runtime!r}: use one of {', '.join(allowed)}",
                        "UnknownRuntime")
    name = doc.get("name", "job")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SpecError("name must be 1-128 of [A-Za-z0-9._-], starting with a letter or digit")
    spec = JobSpec(runtime=runtime, name=name)
    spec.args = _str_list(doc.get("args"), "args")
    spec.inputs = _str_list(doc.get("inputs"), "inputs")
    uri: str | S3Uri                     # an input's text here, the array's S3Uri below
    for uri in spec.inputs:
        parse_uri(uri, "inputs")
    spec.depends_on = _str_list(doc.get("depends_on"), "depends_on")
    if runtime == "python":
        sources = [k for k in ("code", "script", "module") if doc.get(k) is not None]
        if len(sources) != 1:
            raise SpecError("a python job needs exactly one of code (inline), script (s3:// URI) "
                            "or module (with code_uri)")
        spec.code = doc.get("code")
        if spec.code is not None and (not isinstance(spec.code, str) or len(spec.code) > 1 << 20):
            raise SpecError("code must be a string of at most 1 MiB")
        if doc.get("script") is not None:
            spec.script = str(parse_uri(doc["script"], "script"))
        if doc.get("module") is not None:
            if not isinstance(doc["module"], str) or not _MODULE.fullmatch(doc["module"]):
                raise SpecError("module must be a dotted Python module name")
            if doc.get("code_uri") is None:
                raise SpecError("module needs code_uri (an s3:// prefix holding the code)")
            spec.module = doc["module"]
        if doc.get("code_uri") is not None:
            spec.code_uri = str(parse_uri(doc["code_uri"], "code_uri"))
    elif runtime == "command":
        spec.command = _str_list(doc.get("command"), "command")
        if not spec.command or not spec.command[0]:
            raise SpecError("a command job needs command: a non-empty argv list")
        if any(k in doc for k in ("code", "script", "module")):
            raise SpecError("code/script/module belong to the python runtime")
    else:
        spec.function = doc.get("function")
        spec.payload = doc.get("payload")
    if doc.get("array") is not None:
        uri = parse_uri(doc["array"], "array")
        if not uri.is_prefix:
            raise SpecError("array must be an s3:// prefix ending with '/'")
        spec.array = str(uri)
    spec.parallelism = _number(doc, "parallelism", 0, 0, 1 << 30, int)
    quota.check("parallelism", "parallelism", spec.parallelism)
    if runtime != "function":
        if doc.get("output") is None:
            raise SpecError("output is required: an s3://bucket/prefix/ for outputs and logs")
        out = parse_uri(doc["output"], "output")
        if not out.is_prefix:
            raise SpecError("output must be an s3:// prefix ending with '/'")
        spec.output = str(out)
    env = doc.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in env.items()):
        raise SpecError("env must be an object of string values")
    if any("\x00" in v for v in env.values()):
        raise SpecError("env values may not contain NUL characters")
    for k in env:
        if not _ENV_NAME.fullmatch(k) or k.startswith(_RESERVED_ENV):
            raise SpecError(f"env name {k!r} is invalid or reserved (AWS_*, VALLUM_*)")
    spec.env = dict(env)
    spec.resources = parse_resources(doc.get("resources"), quota)
    spec.retries = _number(doc, "retries", 0, 0, 1 << 30, int)
    quota.check("retries", "retries", spec.retries)
    spec.backoff_s = _number(doc, "backoff_s", 1.0, 0, 3600)
    key = doc.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 256):
        raise SpecError("idempotency_key must be a string of 1-256 characters")
    spec.idempotency_key = key
    if not isinstance(doc.get("network", False), bool):
        raise SpecError("network must be true or false")
    spec.network = bool(doc.get("network", False))
    spec.venv = parse_venv(doc.get("venv"))
    if spec.venv is not None and runtime == "function":
        raise SpecError("venv belongs to python and command jobs (a function names its own)")
    level = doc.get("level")
    if level is not None and not isinstance(level, str):
        raise SpecError("level must be a string (a security label)")
    spec.level = level
    return spec


def parse_venv(value: Any) -> str | None:
    """A runtime's name as given (whether it is registered is checked at submit)."""
    if value is None:
        return None
    if not isinstance(value, str) or not RUNTIME_NAME.fullmatch(value):
        raise SpecError(f"venv must name a runtime (1-64 of [a-z0-9._-]), got {value!r}",
                        "UnknownRuntime")
    return value


def backoff(spec: JobSpec, attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped at 10 minutes."""
    return min(600.0, spec.backoff_s * (2 ** (attempt - 1)))
