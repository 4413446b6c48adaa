"""Serve settings from a TOML file, the environment and flags (server/config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vallum.server.config import SETTINGS, Config, load, to_env


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "vallum.toml"
    path.write_text(text)
    return str(path)


def test_file_sets_every_kind_of_value(tmp_path):
    cfg = load(None, write(tmp_path, '''
data_dir = "/srv/vallum"
address = "0.0.0.0:9100"
workers = 3
require_signed_payload = true
disk_reserve = "5GiB,3%"
body_timeout = 12.5
log_format = "json"
'''), env={})
    assert (cfg.data_dir, cfg.host, cfg.port, cfg.workers) == (Path("/srv/vallum"), "0.0.0.0", 9100, 3)
    assert cfg.require_signed_payload and cfg.disk_reserve == "5GiB,3%"
    assert cfg.body_timeout == 12.5 and cfg.log_format == "json"
    assert cfg.sources["workers"] == "file"


def test_environment_overrides_the_file_and_flags_override_both(tmp_path):
    path = write(tmp_path, 'region = "from-file"\nworkers = 2\nmax_connections = 100\n')
    env = {"VALLUM_REGION": "from-env", "VALLUM_WORKERS": "4"}
    cfg = load({"workers": 8}, path, env=env)
    assert (cfg.region, cfg.workers, cfg.max_connections) == ("from-env", 8, 100)
    assert cfg.sources == {"region": "env", "workers": "flag", "max_connections": "file"}


@pytest.mark.parametrize("text, words", [
    ('data_dri = "/x"\n', ["unknown setting 'data_dri'", "did you mean 'data_dir'"]),
    ('colour = "red"\n', ["unknown setting 'colour'", "known: data_dir"]),
    ('workers = "many"\n', ["workers in", "positive integer"]),
    ('workers = 0\n', ["positive integer"]),
    ('require_signed_payload = "maybe"\n', ["true or false"]),
    ('address = "nonsense"\n', ["address", "HOST:PORT"]),
    ('disk_reserve = "lots"\n', ["disk reserve"]),
    ('log_format = "xml"\n', ["'text' or 'json'"]),
    ('[server]\nworkers = 2\n', ["unknown setting 'server'"]),
    ('workers = [1, 2]\n', ["single value"]),
    ('workers = \n', ["not valid TOML"]),
], ids=["typo", "unknown", "type", "zero", "bool", "address", "reserve", "log-format", "table",
        "list", "syntax"])
def test_bad_files_are_refused_with_the_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        load(None, path, env={})
    for word in words:
        assert word in str(err.value)
    if "TOML" not in words[0]:
        assert "vallum.toml" in str(err.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot read config file"):
        load(None, str(tmp_path / "absent.toml"), env={})


def test_inherited_tls_variables_do_not_turn_https_on(tmp_path):
    """Only a flag or the file makes `vallum serve` speak HTTPS; workers still get the path."""
    env = {"VALLUM_TLS_CERT": "/some/cert.pem", "VALLUM_TLS_KEY": "/some/key.pem"}
    assert load(None, None, env=env).tls_cert is None
    assert load(None, None, env=env, worker=True).tls_cert == Path("/some/cert.pem")


def test_to_env_round_trips_every_setting(tmp_path):
    cfg = load(None, write(tmp_path, '''
data_dir = "/srv/v"
address = "[::1]:9443"
region = "eu-west-3"
domain = "s3.example"
workers = 2
compute = "local:4"
audit_witness = "file:/var/log/w"
require_signed_payload = true
disk_reserve = "2%"
header_timeout = 7
body_timeout = 8
keep_alive_timeout = 9
max_connections = 500
max_connections_per_source = 50
log_format = "json"
fips = true
'''), env={})
    again = load(None, None, env=to_env(cfg), worker=True)
    for s in SETTINGS:
        key = s.key if s.key != "address" else "host"
        assert getattr(again, key) == getattr(cfg, key), s.key
    assert again.port == 9443


def test_defaults_need_no_file():
    assert load(None, None, env={}) == Config(data_dir=Path("./vallum-data").resolve())


def test_a_refused_url_setting_never_echoes_its_credentials():
    import pytest as _pytest

    from vallum.server.config import load
    for key, value in (("blobs", "s3://bkt/p@http://user:sekrit@127.0.0.1:1"),
                       ("meta", "mysql://user:sekrit@db/x")):
        with _pytest.raises(ValueError) as err:
            load({key: value})
        assert "sekrit" not in str(err.value) and "***@" in str(err.value)
