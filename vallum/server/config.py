"""Server settings from flags, environment variables and defaults (flags win)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vallum.meta.factory import configured_url


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
    # Strict signing: refuse SigV2 and unsigned SigV4 payloads (docs/security.md).
    require_signed_payload: bool = False
    # postgresql://... : object metadata on PostgreSQL (docs/scale-out.md); None: SQLite.
    meta_url: str | None = None

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


def from_env_and_flags(data_dir: str | None, address: str | None, region: str | None,
                       domain: str | None, workers: int | None, *,
                       require_signed_payload: bool = False) -> Config:
    cfg = Config()
    cfg.data_dir = Path(data_dir or os.environ.get("VALLUM_DATA_DIR") or cfg.data_dir).resolve()
    cfg.host, cfg.port = parse_address(address or os.environ.get("VALLUM_ADDRESS") or "127.0.0.1:9000")
    cfg.region = region or os.environ.get("VALLUM_REGION") or cfg.region
    cfg.domain = domain or os.environ.get("VALLUM_DOMAIN") or None
    cfg.workers = workers or int(os.environ.get("VALLUM_WORKERS", "1"))
    cfg.require_signed_payload = require_signed_payload or os.environ.get(
        "VALLUM_REQUIRE_SIGNED_PAYLOAD", "").strip().lower() in ("1", "true", "yes", "on")
    tls_cert = os.environ.get("VALLUM_TLS_CERT")
    cfg.tls_cert = Path(tls_cert).resolve() if tls_cert else None
    cfg.meta_url = configured_url()
    return cfg


def to_env(cfg: Config) -> dict[str, str]:
    """The settings as environment variables, for worker processes started by uvicorn."""
    env = {"VALLUM_DATA_DIR": str(cfg.data_dir), "VALLUM_ADDRESS": f"{cfg.host}:{cfg.port}",
           "VALLUM_REGION": cfg.region, "VALLUM_WORKERS": str(cfg.workers)}
    if cfg.domain:
        env["VALLUM_DOMAIN"] = cfg.domain
    if cfg.tls_cert:
        env["VALLUM_TLS_CERT"] = str(cfg.tls_cert)
    env["VALLUM_REQUIRE_SIGNED_PAYLOAD"] = "1" if cfg.require_signed_payload else "0"
    if cfg.meta_url:
        env["VALLUM_META_URL"] = cfg.meta_url
    return env
