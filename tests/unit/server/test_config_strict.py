"""--require-signed-payload / VALLUM_REQUIRE_SIGNED_PAYLOAD reach every worker's Config."""

from __future__ import annotations

import pytest

from vallum.server.config import from_env_and_flags, to_env

ENV = "VALLUM_REQUIRE_SIGNED_PAYLOAD"


@pytest.mark.parametrize("value, want", [("1", True), ("true", True), ("ON", True),
                                         ("0", False), ("", False), ("no", False)])
def test_env_turns_strict_signing_on(monkeypatch, value, want):
    monkeypatch.setenv(ENV, value)
    assert from_env_and_flags(None, None, None, None, None).require_signed_payload is want


def test_flag_wins_and_is_passed_to_workers(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    cfg = from_env_and_flags(None, None, None, None, None, require_signed_payload=True)
    assert cfg.require_signed_payload
    monkeypatch.setenv(ENV, to_env(cfg)[ENV])        # what uvicorn's workers inherit
    assert from_env_and_flags(None, None, None, None, None).require_signed_payload
    cfg.require_signed_payload = False
    monkeypatch.setenv(ENV, to_env(cfg)[ENV])
    assert not from_env_and_flags(None, None, None, None, None).require_signed_payload
