"""The entry's join-token check: each role has its own token, and an unset one admits nobody."""

from __future__ import annotations

import pytest

from fedchain.shared.config import Settings
from fedchain.shared.node.admission import JoinTokenRefused, check_join_token

SN = "sn-token-" + "s" * 20
EN = "en-token-" + "e" * 20


def settings(**tokens: str) -> Settings:
    return Settings(_env_file=None, **tokens)


def test_each_role_joins_with_its_own_token() -> None:
    s = settings(sn_join_token=SN, en_join_token=EN)
    check_join_token("SN", SN, s)
    check_join_token("EN", EN, s)


def test_an_en_token_never_admits_an_sn() -> None:
    s = settings(sn_join_token=SN, en_join_token=EN)
    with pytest.raises(JoinTokenRefused, match="^wrong SN join token") as info:
        check_join_token("SN", EN, s)
    assert EN not in str(info.value) and SN not in str(info.value)
    with pytest.raises(JoinTokenRefused, match="^wrong EN join token"):
        check_join_token("EN", SN, s)


@pytest.mark.parametrize("token", ["", "x", SN + "x", SN[:-1]])
def test_a_wrong_token_is_refused(token: str) -> None:
    with pytest.raises(JoinTokenRefused, match="FEDCHAIN_SN_JOIN_TOKEN"):
        check_join_token("SN", token, settings(sn_join_token=SN))


def test_an_unset_token_admits_nobody_of_that_role() -> None:
    s = settings(sn_join_token=SN)
    with pytest.raises(JoinTokenRefused, match="admits no EN: it has no FEDCHAIN_EN_JOIN_TOKEN set"):
        check_join_token("EN", "", s)


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(JoinTokenRefused, match="role must be SN or EN"):
        check_join_token("ledger", SN, settings(sn_join_token=SN))
