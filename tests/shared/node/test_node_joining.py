"""Joining through the entry (shared by SN and EN): retries, refusals, the stop event, the deadline.

The entry is a fake stub (no sockets): each Join call returns a future the test controls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import grpc
import pytest

from fedchain.shared.crypto import NodeKey, verify_signature
from fedchain.shared.net.retry import RETRY, RetryPolicy
from fedchain.shared.net.signing import join_message, join_reply_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.node.joining import (
    FATAL_STATUSES,
    ChainReplaced,
    JoinCancelled,
    Joiner,
    JoinRefused,
    JoinTimedOut,
)
from fedchain.shared.node.trust import TrustStore
from fedchain.shared.rpc import node_pb2 as pb

ENTRY = "entry.example:7000"
FAST = RetryPolicy(first_s=0.01, max_s=0.02, jitter_s=0.01)


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


Answer = Callable[[pb.JoinRequest], "Future[Any]"]


class FakeEntry:
    """Stands in for ``Peers``: ``stub(ENTRY).Join.future(req, timeout)`` answers from a script."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[tuple[pb.JoinRequest, float]] = []
        self.futures: list[Future[Any]] = []
        self.Join = self  # the stub's multicallable is this object too

    def stub(self, address: str) -> Any:
        assert address == ENTRY
        return self

    def future(self, request: pb.JoinRequest, timeout: float) -> Future[Any]:
        self.calls.append((request, timeout))
        fut = self.answer(request)
        self.futures.append(fut)
        return fut


def done(value: Any = None, error: BaseException | None = None) -> Future[Any]:
    fut: Future[Any] = Future()
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)
    return fut


def unavailable(_req: pb.JoinRequest) -> Future[Any]:
    return done(error=FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"))


def joiner(entry: FakeEntry, stop: threading.Event, policy: RetryPolicy = FAST, role: str = "EN",
           key: NodeKey | None = None, trust: TrustStore | None = None,
           entry_key: bytes | None = None) -> Joiner:
    return Joiner(entry, key or NodeKey.generate(), role=role, entry=ENTRY, token="t0ken",
                  address="me:7001", http_address="me:8001", stop=stop, policy=policy,
                  trust=trust, entry_key=entry_key)


def stop_after(seconds: float) -> threading.Event:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return stop


ENTRY_KEY = NodeKey.generate()
CHAIN_ID = b"\x07" * 32


def signed_reply(
    req: pb.JoinRequest, key: NodeKey = ENTRY_KEY, chain_id: bytes = CHAIN_ID, **fields: Any
) -> pb.JoinReply:
    """What the entry answers ``req``: the reply signed over its fields and req's timestamp."""
    reply = pb.JoinReply(
        node_id=NodeKey.generate().node_id, entry_node_id=key.node_id, chain_id=chain_id,
        entry_public_key=key.public_bytes, config_json="{}", **fields,
    )
    reply.signature = sign(key, Domain.JOIN_REPLY, chain_id, join_reply_fields(reply, req.timestamp_ms))
    return reply


def test_retries_while_unreachable_then_joins_with_a_fresh_signed_request() -> None:
    answers = [
        unavailable, unavailable,
        lambda r: done(signed_reply(r, sn_node_id="sn-1", sn_address="sn:7002", partition_index=3)),
    ]
    entry = FakeEntry(lambda req: answers.pop(0)(req))
    key = NodeKey.generate()

    got = joiner(entry, threading.Event(), key=key).join(avoid_sn="sn-0", timeout=5)

    assert got.sn_node_id == "sn-1" and got.partition_index == 3
    assert len(entry.calls) == 3
    for req, timeout in entry.calls:
        assert (req.role, req.token, req.avoid_sn, req.address) == ("EN", "t0ken", "sn-0", "me:7001")
        assert abs(req.timestamp_ms - time.time() * 1000) < 5000
        assert req.public_key == key.public_bytes
        signed = join_message(
            "EN", req.public_key, req.address, req.timestamp_ms, req.http_address, req.avoid_sn
        )
        assert verify_signature(req.public_key, req.signature, signed)
        assert 0 < timeout <= 5


@pytest.mark.parametrize("code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
                                  grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION])
def test_a_fatal_status_stops_at_once_with_the_entrys_message(code: grpc.StatusCode) -> None:
    entry = FakeEntry(lambda _r: done(error=FakeRpcError(code, "wrong join token")))
    t0 = time.monotonic()
    with pytest.raises(JoinRefused, match="the entry refused this super node: wrong join token"):
        joiner(entry, threading.Event(), role="SN").join(timeout=60)
    assert len(entry.calls) == 1
    assert time.monotonic() - t0 < 0.5


def test_the_stop_event_ends_the_pause_between_attempts() -> None:
    entry = FakeEntry(unavailable)
    slow = RetryPolicy(first_s=30, max_s=30, jitter_s=0)
    t0 = time.monotonic()
    with pytest.raises(JoinCancelled, match="stopped while joining"):
        joiner(entry, stop_after(0.2), policy=slow).join(timeout=120)
    assert time.monotonic() - t0 < 1.0
    assert len(entry.calls) == 1


def test_the_stop_event_abandons_a_join_rpc_that_never_answers() -> None:
    entry = FakeEntry(lambda _r: Future())  # an entry that accepts the call and never answers
    t0 = time.monotonic()
    with pytest.raises(JoinCancelled):
        joiner(entry, stop_after(0.2)).join(timeout=120)
    assert time.monotonic() - t0 < 1.0
    assert entry.futures[0].cancelled()


def test_a_stop_already_set_sends_nothing() -> None:
    entry = FakeEntry(unavailable)
    stop = threading.Event()
    stop.set()
    with pytest.raises(JoinCancelled):
        joiner(entry, stop).join()
    assert entry.calls == []


def test_the_deadline_is_honoured_and_the_error_names_the_entry() -> None:
    entry = FakeEntry(unavailable)
    t0 = time.monotonic()
    with pytest.raises(JoinTimedOut) as err:
        joiner(entry, threading.Event(), policy=RETRY).join(timeout=1.0)
    elapsed = time.monotonic() - t0
    assert RETRY.first_s <= elapsed <= 1.2, elapsed  # it paused, and gave up before the deadline
    assert ENTRY in str(err.value) and "UNAVAILABLE connection refused" in str(err.value)
    assert len(entry.calls) >= 2
    assert all(timeout <= 1.0 for _req, timeout in entry.calls)  # no RPC outlives the deadline


def test_join_errors_are_config_errors_so_the_cli_prints_one_line() -> None:
    from fedchain.shared.config import ConfigError

    assert issubclass(JoinRefused, ConfigError) and issubclass(JoinTimedOut, ConfigError)
    with pytest.raises(ValueError, match="role"):
        joiner(FakeEntry(unavailable), threading.Event(), role="XX")


def test_an_unsigned_or_altered_join_reply_is_refused() -> None:
    unsigned = FakeEntry(lambda r: done(pb.JoinReply(
        entry_node_id=ENTRY_KEY.node_id, chain_id=CHAIN_ID, entry_public_key=ENTRY_KEY.public_bytes,
    )))
    with pytest.raises(JoinRefused, match="its join reply does not hold"):
        joiner(unsigned, threading.Event()).join(timeout=5)

    def altered(req: pb.JoinRequest) -> Future[Any]:
        reply = signed_reply(req, partition_index=1)
        reply.partition_index = 2  # changed on the way (a relaying SN, a man in the middle)
        return done(reply)

    with pytest.raises(JoinRefused, match="bad signature on join_reply"):
        joiner(FakeEntry(altered), threading.Event()).join(timeout=5)

    def replayed(req: pb.JoinRequest) -> Future[Any]:  # signed for another request
        return done(signed_reply(pb.JoinRequest(timestamp_ms=req.timestamp_ms - 1)))

    with pytest.raises(JoinRefused, match="does not hold"):
        joiner(FakeEntry(replayed), threading.Event()).join(timeout=5)


def test_a_join_reply_from_another_key_than_the_pinned_one_is_refused() -> None:
    impostor = NodeKey.generate()
    entry = FakeEntry(lambda r: done(signed_reply(r, key=impostor)))
    with pytest.raises(JoinRefused, match="not the --entry-key"):
        joiner(entry, threading.Event(), entry_key=ENTRY_KEY.public_bytes).join(timeout=5)
    ok = FakeEntry(lambda r: done(signed_reply(r)))
    got = joiner(ok, threading.Event(), entry_key=ENTRY_KEY.public_bytes).join(timeout=5)
    assert got.entry_public_key == ENTRY_KEY.public_bytes


def test_the_first_entry_is_trusted_and_a_later_other_key_refused(tmp_path: Any) -> None:
    key = NodeKey.generate()
    first = joiner(FakeEntry(lambda r: done(signed_reply(r))), threading.Event(), key=key,
                   trust=TrustStore(tmp_path))
    first.join(timeout=5)
    assert (tmp_path / "entry.json").is_file()
    other = NodeKey.generate()  # a well-signed reply, by another entry, to the same node
    later = joiner(FakeEntry(lambda r: done(signed_reply(r, key=other))), threading.Event(),
                   key=key, trust=TrustStore(tmp_path))
    with pytest.raises(ChainReplaced, match="another key than the one this node joined"):
        later.join(timeout=5)
    assert grpc.StatusCode.RESOURCE_EXHAUSTED not in FATAL_STATUSES  # a rate-limited join retries
