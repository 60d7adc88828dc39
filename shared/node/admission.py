"""The entry's first admission check: a joining node's token must be the one of its role.

An SN joins with the SN join token, an EN with the EN join token; the entry compares in
constant time and never admits a role whose token is unset. The tokens differ (``Settings``
refuses equal ones), so an EN's token never admits an SN.
"""

from __future__ import annotations

import hmac

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
