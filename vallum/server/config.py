"""Server settings: one table, four sources (flags > environment > TOML file > defaults).

Every `vallum serve` setting is a row of SETTINGS: its TOML key (the flag's name with
underscores), its environment variable, how its value is checked and its help text.
`load` merges the sources; `to_env` hands the result to uvicorn's worker processes,
which read it back with `from_env`. A config file with an unknown key or a value of
the wrong type is refused with the file, the key and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vallum.storage import blobspec
from vallum.storage.headroom import DEFAULT_RESERVE, parse_reserve

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass
class Config:
    data_dir: Path = Path("./vallum-data")
    host: str = "127.0.0.1"
    port: int = 9000
    region: str = "us-east-1"
    domain: str | None = None          # base host for virtual-host-style addressing
    workers: int = 1
    # The certificate the gateway serves HTTPS with (None: plain HTTP). Internal clients
    # (compute jobs, functions) trust it to reach the gateway over loopback.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Client certificates (mutual TLS, iam/certauth.py): the CA bundle asked for, whether a
    # certificate is optional or required at the handshake, CRLs, and the mapping rules.
    tls_client_ca: Path | None = None
    tls_client_auth: str = "optional"
    tls_crl: Path | None = None
    tls_client_map: Path | None = None
    compute: str | None = None          # VALLUM_COMPUTE for the compute service
    audit_witness: str | None = None    # VALLUM_AUDIT_WITNESS for the audit log
    # Strict signing: refuse SigV2 and unsigned SigV4 payloads (docs/security.md).
    require_signed_payload: bool = False
    # Disk space kept back for deletes and audit (storage/headroom.py).
    disk_reserve: str = DEFAULT_RESERVE
    # Slow clients (server/connection_limits.py, docs/operations.md).
    header_timeout: float = 30.0        # request line and headers complete within this
    body_timeout: float = 60.0          # longest wait for the next piece of a request body
    keep_alive_timeout: float = 5.0     # idle time between requests on one connection
    max_connections: int = 4096         # open connections, all sources together
    max_connections_per_source: int = 256
    log_format: str = "text"            # text | json
    fips: bool = False                  # approved algorithms only (security/crypto/fips.py)
    # Tenant compute from a root gateway (compute/sandbox.py refuses it otherwise).
    allow_root_compute: bool = False
    # postgresql://... : object metadata on PostgreSQL (docs/scale-out.md); None: SQLite.
    meta: str | None = None
    # Where object bodies live when not in the data directory (storage/blobspec.py).
    blobs: str | None = None
    # Where each setting given came from ("flag", "env", "file"): the banner names the file's.
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def meta_url(self) -> str | None:
        return self.meta

    @property
    def meta_path(self) -> Path:
        return self.data_dir / "meta.sqlite3"

    @property
    def blob_root(self) -> Path:
        return self.data_dir

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"


def parse_address(address: str) -> tuple[str, int]:
    """'HOST:PORT', '[v6]:PORT' or ':PORT' -> (host, port); ValueError if malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {address!r}: expected HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


# --- value checkers: a str (flag/env) or a TOML value -> the Config value ------------------
def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _optional_text(value: Any) -> str | None:
    return _text(value) or None


def _path(value: Any) -> Path:
    return Path(_text(value)).resolve()


def _optional_path(value: Any) -> Path | None:
    return _path(value) if _text(value) else None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise ValueError("must be true or false")
    return text in _TRUE


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a positive integer")
    try:
        n = int(value)
    except ValueError:
        raise ValueError("must be a positive integer") from None
    if n < 1:
        raise ValueError("must be a positive integer")
    return n


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number of seconds")
    try:
        s = float(value)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 < s <= 86400:
        raise ValueError("must be a number of seconds between 0 and 86400")
    return s


def _reserve(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else _text(value)
    parse_reserve(text)
    return text


def _meta_url(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and not text.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL")
    return text


def _blobs(value: Any) -> str | None:
    text = _text(value).strip()
    return blobspec.normalize(text) if text else None


def _client_auth(value: Any) -> str:
    text = _text(value).strip().lower()
    if text not in ("optional", "required"):
        raise ValueError("must be 'optional' or 'required'")
    return text


def _log_format(value: Any) -> str:
    text = _text(value).strip().lower()
    if text not in ("text", "json"):
        raise ValueError("must be 'text' or 'json'")
    return text


@dataclass(frozen=True)
class Setting:
    key: str                           # TOML key and Config field ("address" sets host and port)
    env: str
    check: Callable[[Any], Any]
    help: str
    # False: `vallum serve` ignores an inherited variable (only its flag or file sets it);
    # the variable still carries the value to uvicorn's workers.
    main_env: bool = True


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "VALLUM_DATA_DIR", _path, "Where metadata and blobs live (default ./vallum-data)"),
    Setting("address", "VALLUM_ADDRESS", lambda v: parse_address(_text(v)),
            "HOST:PORT to listen on (default 127.0.0.1:9000)"),
    Setting("region", "VALLUM_REGION", _text, "Region name reported to clients (default us-east-1)"),
    Setting("domain", "VALLUM_DOMAIN", _optional_text, "Base host name for virtual-host-style requests"),
    Setting("workers", "VALLUM_WORKERS", _positive_int, "Gateway processes sharing the port (default 1)"),
    Setting("compute", "VALLUM_COMPUTE", _optional_text,
            "Where jobs run: local (default, one slot per core), local:N, local:MIN-MAX "
            "(predictively sized), or ray://HOST:PORT"),
    Setting("tls_cert", "VALLUM_TLS_CERT", _optional_path,
            "PEM certificate (chain) to serve HTTPS with; needs tls_key", main_env=False),
    Setting("tls_key", "VALLUM_TLS_KEY", _optional_path, "PEM private key of tls_cert", main_env=False),
    Setting("tls_client_ca", "VALLUM_TLS_CLIENT_CA", _optional_path,
            "PEM bundle of the CAs (root and intermediates) whose client certificates are "
            "accepted (mutual TLS, STS AssumeRoleWithCertificate); needs tls_cert", main_env=False),
    Setting("tls_client_auth", "VALLUM_TLS_CLIENT_AUTH", _client_auth,
            "With tls_client_ca: 'optional' (default; keys and SigV4 still work without one) or "
            "'required' (the handshake fails without a certificate)", main_env=False),
    Setting("tls_crl", "VALLUM_TLS_CRL", _optional_path,
            "CRL file or directory of CRL files (PEM or DER) for client certificates, re-read "
            "when they change", main_env=False),
    Setting("tls_client_map", "VALLUM_TLS_CLIENT_MAP", _optional_path,
            "TOML file of rules mapping client certificates to roles (docs/iam.md), re-read "
            "when it changes", main_env=False),
    Setting("audit_witness", "VALLUM_AUDIT_WITNESS", _optional_text,
            "Send every signed audit checkpoint off-box: file:/path (outside the data dir), "
            "syslog:unix:PATH, syslog:udp:HOST:PORT or an http(s) URL"),
    Setting("require_signed_payload", "VALLUM_REQUIRE_SIGNED_PAYLOAD", _bool,
            "Refuse SigV2 and unsigned SigV4 payloads (presigned GET/HEAD URLs excepted)"),
    Setting("disk_reserve", "VALLUM_DISK_RESERVE", _reserve,
            f"Free space kept for deletes and audit; new writes get 507 below it; the larger "
            f"of comma-separated sizes and percentages (default {DEFAULT_RESERVE})"),
    Setting("blobs", "VALLUM_BLOBS", _blobs,
            "Keep object bodies (encrypted) elsewhere: local:/PATH, an upstream S3 store "
            "s3://BUCKET/PREFIX@http(s)://HOST[:PORT], or two of them comma-separated (a mirror: "
            "both written before the ack, either read); "
            "credentials from VALLUM_BLOBS_ACCESS_KEY/VALLUM_BLOBS_SECRET_KEY or a 0600 "
            "VALLUM_BLOBS_CREDENTIALS_FILE, CA bundle VALLUM_BLOBS_CA_BUNDLE (default: the data dir)"),
    Setting("header_timeout", "VALLUM_HEADER_TIMEOUT", _seconds,
            "Seconds a client has to send a request's line and headers (default 30)"),
    Setting("body_timeout", "VALLUM_BODY_TIMEOUT", _seconds,
            "Longest wait, in seconds, for the next part of a request body (default 60; then 400 RequestTimeout)"),
    Setting("keep_alive_timeout", "VALLUM_KEEP_ALIVE_TIMEOUT", _seconds,
            "Seconds an idle connection stays open between requests (default 5)"),
    Setting("max_connections", "VALLUM_MAX_CONNECTIONS", _positive_int,
            "Open connections per gateway process, all sources together (default 4096)"),
    Setting("max_connections_per_source", "VALLUM_MAX_CONNECTIONS_PER_SOURCE", _positive_int,
            "Open connections per client address and gateway process (default 256)"),
    Setting("log_format", "VALLUM_LOG_FORMAT", _log_format, "Log lines as text or json (default text)"),
    Setting("fips", "VALLUM_FIPS", _bool,
            "Approved algorithms only: refuse SigV2 and MD5-based authentication"),
    Setting("allow_root_compute", "VALLUM_ALLOW_ROOT_COMPUTE", _bool,
            "Run tenant jobs and functions although the gateway runs as root (each task under an "
            "unprivileged uid of its own); without it, compute is refused as root. Better: run as "
            "a service user (docs/sandbox.md)"),
    Setting("meta", "VALLUM_META_URL", _meta_url,
            "Object metadata on PostgreSQL: postgresql://USER@HOST:PORT/DB (a password only in "
            "the environment, the config file or a PGPASSFILE, never on the command line), with IAM, "
            "authentication lockouts, operator state and the compute stores; audit, key table and "
            "blobs stay in the data directory (default: all on SQLite)"),
)
BY_KEY = {s.key: s for s in SETTINGS}


def _shown(raw: Any) -> Any:
    """A refused value as an error message may repeat it: credentials in a URL's user part
    (``scheme://user:secret@host``) are never echoed."""
    return re.sub(r"(://)[^/@\s]*@", r"\1***@", raw) if isinstance(raw, str) else raw


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML config file's settings; ValueError naming the file and key on any problem."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    for key, value in doc.items():
        if key not in BY_KEY:
            close = difflib.get_close_matches(key, BY_KEY, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"config file {path}: unknown setting {key!r}{hint}; "
                             f"known: {', '.join(BY_KEY)}")
        if isinstance(value, dict | list):
            raise ValueError(f"config file {path}: setting {key!r} must be a single value")
    return doc


def load(flags: Mapping[str, Any] | None = None, config_file: str | None = None,
         env: Mapping[str, str] | None = None, *, worker: bool = False) -> Config:
    """Merge defaults, the TOML file, the environment and flags (None = not given).
    ``worker``: a process uvicorn started, which takes every setting from the environment."""
    env = os.environ if env is None else env
    file_values = read_file(config_file) if config_file else {}
    cfg = Config()
    for s in SETTINGS:
        flag = (flags or {}).get(s.key)
        if flag is not None and flag is not False:
            raw, source, where = flag, "flag", f"--{s.key.replace('_', '-')}"
        elif env.get(s.env) not in (None, "") and (worker or s.main_env):
            raw, source, where = env[s.env], "env", s.env
        elif s.key in file_values:
            raw, source, where = file_values[s.key], "file", f"{s.key} in {config_file}"
        else:
            continue
        try:
            value = s.check(raw)
        except ValueError as exc:
            raise ValueError(f"invalid {where} {_shown(raw)!r}: {exc}") from None
        if s.key == "address":
            cfg.host, cfg.port = value
        else:
            setattr(cfg, s.key, value)
        cfg.sources[s.key] = source
    cfg.data_dir = cfg.data_dir.resolve()
    return cfg


def from_env() -> Config:
    """A worker process's settings, as `vallum serve` exported them (to_env)."""
    return load(worker=True)


def from_env_and_flags(data_dir: str | None, address: str | None, region: str | None,
                       domain: str | None, workers: int | None, *,
                       require_signed_payload: bool = False) -> Config:
    """The settings from flags and the environment only (what worker processes see)."""
    return load({"data_dir": data_dir, "address": address, "region": region, "domain": domain,
                 "workers": workers, "require_signed_payload": require_signed_payload})


def to_env(cfg: Config) -> dict[str, str]:
    """The settings as environment variables, for worker processes started by uvicorn
    (None: the variable is left out; clear inherited ones first, `clear_env`)."""
    env: dict[str, str] = {}
    names = {f.name for f in fields(Config)}
    for s in SETTINGS:
        if s.key == "address":
            env[s.env] = f"[{cfg.host}]:{cfg.port}" if ":" in cfg.host else f"{cfg.host}:{cfg.port}"
            continue
        assert s.key in names
        value = getattr(cfg, s.key)
        if isinstance(value, bool):
            env[s.env] = "1" if value else "0"
        elif value is not None:
            env[s.env] = str(value)
    return env


def clear_env(environ: dict[str, str] | Any) -> None:
    """Remove every setting's variable, so ``to_env`` alone says what workers see."""
    for s in SETTINGS:
        environ.pop(s.env, None)
