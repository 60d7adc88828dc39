"""Fuzzing the gRPC methods of the ledger, the entry SN, a plain SN and an EN, live.

Two kinds of garbage per method: random bytes (not a protobuf at all) and well-formed messages
whose fields hold random values (built from the proto descriptors, so every field of every
request type is covered). Each call must end with a status (OK or a clear refusal), never
UNKNOWN (an unhandled exception in a servicer) or INTERNAL other than gRPC's own "cannot
deserialize", and the server must still answer a normal call afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as pd
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.shared.rpc import ledger_pb2, node_pb2
from tests.badinput.conftest import LiveNet

DEADLINE_S = 5.0
FUZZ = settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
CRASH = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNIMPLEMENTED}
_I32, _I64 = 2**31, 2**63


def scalar(field: pd.FieldDescriptor) -> st.SearchStrategy[Any]:
    """Random values for one scalar field, including edge values."""
    t = field.type
    if t in (pd.FieldDescriptor.TYPE_INT32, pd.FieldDescriptor.TYPE_SINT32, pd.FieldDescriptor.TYPE_SFIXED32):
        return st.integers(-_I32, _I32 - 1)
    if t in (pd.FieldDescriptor.TYPE_INT64, pd.FieldDescriptor.TYPE_SINT64, pd.FieldDescriptor.TYPE_SFIXED64):
        return st.integers(-_I64, _I64 - 1)
    if t in (pd.FieldDescriptor.TYPE_UINT32, pd.FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (pd.FieldDescriptor.TYPE_UINT64, pd.FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t in (pd.FieldDescriptor.TYPE_FLOAT, pd.FieldDescriptor.TYPE_DOUBLE):
        return st.floats(width=32 if t == pd.FieldDescriptor.TYPE_FLOAT else 64)
    if t == pd.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == pd.FieldDescriptor.TYPE_STRING:
        return st.text(max_size=40) | st.sampled_from(["SN", "EN", "fedper", "fedavg", "0" * 64, "127.0.0.1:1"])
    if t == pd.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=200)
    if t == pd.FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    raise AssertionError(f"no strategy for field type {t}")


def messages(desc: pd.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of type ``desc`` with a random subset of fields set to random values."""
    cls = GetMessageClass(desc)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in desc.fields:
        if field.type == pd.FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2:
                continue
            inner = messages(field.message_type, depth + 1)
            parts[field.name] = st.lists(inner, max_size=2) if _repeated(field) else inner
        else:
            parts[field.name] = st.lists(scalar(field), max_size=3) if _repeated(field) else scalar(field)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg = cls()
        chosen = draw(st.lists(st.sampled_from(sorted(parts)), unique=True)) if parts else []
        for name in chosen:
            value = draw(parts[name])
            field = desc.fields_by_name[name]
            if _repeated(field):
                target = getattr(msg, name)
                if field.type == pd.FieldDescriptor.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == pd.FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return build()


def _repeated(field: pd.FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == pd.FieldDescriptor.LABEL_REPEATED)


def methods(service: pd.ServiceDescriptor) -> list[pd.MethodDescriptor]:
    return list(service.methods)


LEDGER_METHODS = methods(ledger_pb2.DESCRIPTOR.services_by_name["Ledger"])
NODE_METHODS = methods(node_pb2.DESCRIPTOR.services_by_name["Node"])
TARGETS = [("ledger", m) for m in LEDGER_METHODS] + [
    (who, m) for who in ("entry", "sn", "en") for m in NODE_METHODS
]


def call(channel: grpc.Channel, method: pd.MethodDescriptor, requests: list[bytes], who: str) -> grpc.StatusCode:
    """Send raw request bytes to ``method`` (stream or unary) and return the final status code.

    An EN serves only what an SN calls on it (OpenRound, Evaluate; Join and Heartbeat are
    refused with a message); UNIMPLEMENTED is its clear answer to the SN-only methods.
    """
    path = f"/{method.containing_service.full_name}/{method.name}"
    ident = dict(request_serializer=None, response_deserializer=None)
    try:
        if method.client_streaming and method.server_streaming:
            raise AssertionError("no bidirectional methods expected")
        if method.client_streaming:
            channel.stream_unary(path, **ident)(iter(requests), timeout=DEADLINE_S)
        elif method.server_streaming:
            for _ in channel.unary_stream(path, **ident)(requests[0], timeout=DEADLINE_S):
                pass
        else:
            channel.unary_unary(path, **ident)(requests[0], timeout=DEADLINE_S)
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        code = err.code()
        details = err.details() or ""
        if code == grpc.StatusCode.INTERNAL and "deserializ" in details.lower():
            return grpc.StatusCode.INVALID_ARGUMENT  # gRPC's own refusal of bytes that are not the message
        if who == "en" and code == grpc.StatusCode.UNIMPLEMENTED:
            return code
        assert code not in CRASH, f"{path}: {code.name} {details!r}"
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED or details, f"{path}: {code.name} without details"
        return code


def address(live: LiveNet, who: str) -> str:
    return {"ledger": live.ledger, "entry": live.entry, "sn": live.sn, "en": live.en}[who].address


def still_answers(channel: grpc.Channel, who: str) -> None:
    """A normal call still succeeds after the garbage."""
    if who == "ledger":
        path = f"/{ledger_pb2.DESCRIPTOR.services_by_name['Ledger'].full_name}/Tip"
        reply = channel.unary_unary(path, request_serializer=None, response_deserializer=None)(b"", timeout=10)
        ledger_pb2.TipReply.FromString(reply)
    else:
        path = f"/{node_pb2.DESCRIPTOR.services_by_name['Node'].full_name}/Heartbeat"
        reply = channel.unary_unary(path, request_serializer=None, response_deserializer=None)(
            node_pb2.HeartbeatRequest(node_id="fuzz-probe", role="EN").SerializeToString(), timeout=10
        )
        node_pb2.HeartbeatReply.FromString(reply)


@pytest.fixture(scope="module")
def channels(live: LiveNet) -> Iterator[dict[str, grpc.Channel]]:
    opened = {who: grpc.insecure_channel(address(live, who)) for who in ("ledger", "entry", "sn", "en")}
    yield opened
    for ch in opened.values():
        ch.close()


@pytest.mark.parametrize(("who", "method"), TARGETS, ids=[f"{w}-{m.name}" for w, m in TARGETS])
def test_random_bytes(channels: dict[str, grpc.Channel], who: str, method: pd.MethodDescriptor) -> None:
    @FUZZ
    @given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=3))
    def one(blobs: list[bytes]) -> None:
        call(channels[who], method, blobs, who)

    one()
    still_answers(channels[who], who)


@pytest.mark.parametrize(("who", "method"), TARGETS, ids=[f"{w}-{m.name}" for w, m in TARGETS])
def test_random_fields(channels: dict[str, grpc.Channel], who: str, method: pd.MethodDescriptor) -> None:
    @FUZZ
    @given(st.lists(messages(method.input_type), min_size=1, max_size=3))
    def one(msgs: list[Message]) -> None:
        call(channels[who], method, [m.SerializeToString() for m in msgs], who)

    one()
    still_answers(channels[who], who)
