"""The secrets among the settings: no default, a minimum length, all different, never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedchain.shared.config import ConfigError, Settings, load_settings, missing_tokens, token_value

SN = "sn-token-" + "s" * 20
EN = "en-token-" + "e" * 20
API = "api-token-" + "a" * 20


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty directory (no .env), no FEDCHAIN_* settings in the environment."""
    for name in list(os.environ):
        if name.upper().startswith("FEDCHAIN_") and not name.upper().startswith("FEDCHAIN_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_no_token_has_a_default() -> None:
    s = load_settings()
    assert [token_value(s, n) for n in ("sn_join_token", "en_join_token", "api_token")] == ["", "", ""]
    assert missing_tokens(s, "entry") == [
        "FEDCHAIN_SN_JOIN_TOKEN", "FEDCHAIN_EN_JOIN_TOKEN", "FEDCHAIN_API_TOKEN"
    ]
    assert missing_tokens(s, "SN") == ["FEDCHAIN_SN_JOIN_TOKEN", "FEDCHAIN_API_TOKEN"]
    assert missing_tokens(s, "EN") == ["FEDCHAIN_EN_JOIN_TOKEN"]


def test_tokens_come_from_the_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"FEDCHAIN_SN_JOIN_TOKEN={SN}\nFEDCHAIN_API_TOKEN={API}\n")
    monkeypatch.setenv("FEDCHAIN_EN_JOIN_TOKEN", EN)
    s = load_settings()
    assert (token_value(s, "sn_join_token"), token_value(s, "en_join_token"), token_value(s, "api_token")) == (
        SN, EN, API
    )
    assert missing_tokens(s, "entry") == []


def test_tokens_are_never_shown() -> None:
    s = Settings(_env_file=None, sn_join_token=SN, en_join_token=EN, api_token=API)
    for text in (repr(s), str(s), str(s.model_dump()), str(s.model_dump(mode="json"))):
        assert SN not in text and EN not in text and API not in text


def test_a_short_token_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDCHAIN_API_TOKEN", "short-secret")
    with pytest.raises(ConfigError, match=r"^FEDCHAIN_API_TOKEN \(environment\): .*at least 16 characters") as info:
        load_settings()
    assert "short-secret" not in str(info.value)
    assert "\n" not in str(info.value)


def test_a_token_with_spaces_is_refused() -> None:
    with pytest.raises(ValueError, match="without spaces"):
        Settings(_env_file=None, api_token="a token with spaces in it")


@pytest.mark.parametrize("pair", [("sn_join_token", "en_join_token"), ("en_join_token", "api_token")])
def test_tokens_must_differ(pair: tuple[str, str]) -> None:
    """One value for two roles would let an EN join as SN (or drive the API)."""
    with pytest.raises(ValueError, match="must all differ"):
        Settings(_env_file=None, **{pair[0]: SN, pair[1]: SN})


def test_the_old_single_join_token_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEDCHAIN_JOIN_TOKEN", SN)
    with pytest.raises(ConfigError, match=r"^FEDCHAIN_JOIN_TOKEN \(environment\) is no longer read: set "
                                          r"FEDCHAIN_SN_JOIN_TOKEN and FEDCHAIN_EN_JOIN_TOKEN"):
        load_settings()
    monkeypatch.delenv("FEDCHAIN_JOIN_TOKEN")
    (tmp_path / ".env").write_text(f"FEDCHAIN_JOIN_TOKEN={SN}\n")
    with pytest.raises(ConfigError, match=r"^\.env: FEDCHAIN_JOIN_TOKEN is no longer read"):
        load_settings()
