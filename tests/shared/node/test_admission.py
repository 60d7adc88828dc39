"""The entry's first admission checks: joins per source address (token bucket), and each role
has its own token (an unset one admits nobody)."""

from __future__ import annotations

import pytest

from fedchain.shared.config import Settings
from fedchain.shared.node.admission import (
    JoinRateExceeded,
    JoinRateLimiter,
    JoinTokenRefused,
    check_join_token,
    peer_host,
)

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


class Ticks:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_joins_from_one_address_are_rate_limited_and_refill() -> None:
    clock = Ticks()
    limiter = JoinRateLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("10.0.0.1")
    with pytest.raises(JoinRateExceeded, match=r"too many join requests from 10\.0\.0\.1.*0\.5 s"):
        limiter.take("10.0.0.1")
    limiter.take("10.0.0.2")  # another address has its own bucket
    clock.now += 0.5
    limiter.take("10.0.0.1")  # one token back after 1/rate seconds
    with pytest.raises(JoinRateExceeded):
        limiter.take("10.0.0.1")


@pytest.mark.parametrize(
    ("peer", "host"),
    [("ipv4:127.0.0.1:54321", "127.0.0.1"), ("ipv6:[::1]:443", "::1"), ("unix:/tmp/s", "unix:/tmp/s"),
     ("", "unknown")],
)
def test_the_source_of_a_join_is_the_peer_host_without_its_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host
