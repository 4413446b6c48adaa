"""The client-certificate settings come from flags, the config file or (for workers) the
environment like every other setting, and are handed to workers unchanged."""

from __future__ import annotations

import pytest

from vallum.server.config import from_env, load, to_env


def test_client_cert_settings_from_the_config_file_reach_the_workers(tmp_path, monkeypatch):
    f = tmp_path / "vallum.toml"
    f.write_text(f'tls_client_ca = "{tmp_path}/ca.pem"\ntls_client_auth = "required"\n'
                 f'tls_crl = "{tmp_path}/crl"\ntls_client_map = "{tmp_path}/rules.toml"\n')
    cfg = load({}, str(f), env={})
    assert (cfg.tls_client_ca, cfg.tls_client_auth) == (tmp_path / "ca.pem", "required")
    assert (cfg.tls_crl, cfg.tls_client_map) == (tmp_path / "crl", tmp_path / "rules.toml")
    for name, value in to_env(cfg).items():
        monkeypatch.setenv(name, value)
    worker = from_env()
    assert (worker.tls_client_ca, worker.tls_client_auth, worker.tls_crl, worker.tls_client_map) \
        == (cfg.tls_client_ca, "required", cfg.tls_crl, cfg.tls_client_map)


def test_defaults_and_refusals(tmp_path):
    cfg = load({}, None, env={})
    assert (cfg.tls_client_ca, cfg.tls_client_auth, cfg.tls_crl) == (None, "optional", None)
    with pytest.raises(ValueError, match="optional"):
        load({"tls_client_auth": "sometimes"}, None, env={})
    # An inherited variable does not turn mutual TLS on in `vallum serve` (flag or file only).
    assert load({}, None, env={"VALLUM_TLS_CLIENT_CA": str(tmp_path)}).tls_client_ca is None
