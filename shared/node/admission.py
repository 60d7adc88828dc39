"""The entry's first admission checks: joins per source address, and the token of the role.

``JoinRateLimiter`` spends a token of the sender's bucket (keyed on the peer address gRPC
reports) before anything else is looked at; a sender out of tokens is refused with
``RESOURCE_EXHAUSTED`` and told when to try again.

An SN joins with the SN join token, an EN with the EN join token; the entry compares in
constant time and never admits a role whose token is unset. The tokens differ (``Settings``
refuses equal ones), so an EN's token never admits an SN.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable

from fedchain.shared.config import Settings, token_value, token_variable

JOIN_TOKEN_FIELDS: dict[str, str] = {"SN": "sn_join_token", "EN": "en_join_token"}
"""The setting holding the token each role must present."""


class JoinTokenRefused(Exception):
    """A join's token is not the one of its role; the message is one line for the joining node."""


def check_join_token(role: str, token: str, settings: Settings) -> None:
    """Refuse (``JoinTokenRefused``) a join whose ``token`` is not ``role``'s join token."""
    field = JOIN_TOKEN_FIELDS.get(role)
    if field is None:
        raise JoinTokenRefused(f"role must be SN or EN, got {role[:16]!r}")
    variable = token_variable(field)
    expected = token_value(settings, field)
    if not expected:
        raise JoinTokenRefused(f"this entry admits no {role}: it has no {variable} set")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise JoinTokenRefused(f"wrong {role} join token (not the entry's {variable})")


class JoinRateExceeded(Exception):
    """One source address sent more joins than its bucket holds; the message says when to retry."""


class JoinRateLimiter:
    """A token bucket per source address: ``burst`` joins at once, then ``rate`` per second.

    The entry takes one token per join before it checks anything else, so a flood of joins
    from one address costs it a dictionary lookup each. Buckets that are full again are
    dropped, so the table stays as small as the set of addresses joining right now.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a join rate needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, source: str) -> None:
        """Spend one of ``source``'s tokens; raise JoinRateExceeded when it has none left."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(source, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[source] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise JoinRateExceeded(
                    f"too many join requests from {source[:64]}: at most {self.burst} at once, "
                    f"then {self.rate:g} per second; try again in {wait:.1f} s"
                )
            self._buckets[source] = (tokens - 1.0, now)
            if len(self._buckets) > 4096:
                self._drop_full(now)

    def _drop_full(self, now: float) -> None:
        full = [
            s for s, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for source in full:
            del self._buckets[source]


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:…``).

    The port is dropped: every connection from one host shares its bucket.
    """
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer or "unknown"
