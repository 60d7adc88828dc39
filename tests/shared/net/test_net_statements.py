"""Signed statements: a signature holds for exactly one message kind, chain, sender and content."""

from __future__ import annotations

import pytest

from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.statements import Domain, SignatureRefused, check, sign, statement

CHAIN = bytes(range(32))
OTHER_CHAIN = bytes(32)
FIELDS: list[tuple[str, object]] = [
    ("round", 3),
    ("version", 2),
    ("model_digest", "ab" * 32),
    ("participants", ["n-1", "n-2"]),
    ("rejected", [("n-3", "timed out")]),
    ("loss", 0.25),
    ("final", True),
    ("head", b"\x01\x02"),
    ("signatures", [b"\x00" * 64]),
]


def test_the_sender_signature_checks() -> None:
    key = NodeKey.generate()
    sig = sign(key, Domain.OPEN_ROUND, CHAIN, FIELDS)  # type: ignore[arg-type]
    check(key.public_bytes, sig, Domain.OPEN_ROUND, CHAIN, key.node_id, FIELDS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        ("domain", Domain.EVALUATE),
        ("chain", OTHER_CHAIN),
        *[("field", i) for i in range(len(FIELDS))],
        ("drop", None),
        ("extra", None),
        ("order", None),
    ],
)
def test_any_change_breaks_the_signature(change: tuple[str, object]) -> None:
    key = NodeKey.generate()
    sig = sign(key, Domain.OPEN_ROUND, CHAIN, FIELDS)  # type: ignore[arg-type]
    domain, chain, fields = Domain.OPEN_ROUND, CHAIN, list(FIELDS)
    what, arg = change
    if what == "domain":
        domain = arg  # type: ignore[assignment]
    elif what == "chain":
        chain = arg  # type: ignore[assignment]
    elif what == "field":
        name, value = fields[arg]  # type: ignore[index]
        altered: object
        if isinstance(value, bool):
            altered = not value
        elif isinstance(value, (int, float)):
            altered = value + 1
        elif isinstance(value, str):
            altered = value[:-1] + "c"
        elif isinstance(value, bytes):
            altered = value + b"\x00"
        else:
            altered = list(value)[:-1]  # type: ignore[call-overload]
        fields[arg] = (name, altered)  # type: ignore[index]
    elif what == "drop":
        fields = fields[:-1]
    elif what == "extra":
        fields = [*fields, ("samples", 10)]
    else:
        fields = list(reversed(fields))
    with pytest.raises(SignatureRefused, match="bad signature"):
        check(key.public_bytes, sig, domain, chain, key.node_id, fields)  # type: ignore[arg-type]


def test_values_of_different_types_never_encode_alike() -> None:
    encodings = {
        statement(Domain.HEARTBEAT, CHAIN, "n", [("v", value)])  # type: ignore[list-item]
        for value in (1, "1", True, 1.0, b"1", ["1"], [b"1"], [("1", "")])
    }
    assert len(encodings) == 8


def test_a_message_naming_another_sender_is_refused() -> None:
    key, victim = NodeKey.generate(), NodeKey.generate()
    sig = sign(key, Domain.HEARTBEAT, CHAIN, [("counter", 1)])
    with pytest.raises(SignatureRefused, match="but the key is"):
        check(key.public_bytes, sig, Domain.HEARTBEAT, CHAIN, victim.node_id, [("counter", 1)])


def test_non_finite_values_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="not finite"):
        statement(Domain.UPDATE, CHAIN, "n", [("train_loss", float("nan"))])
