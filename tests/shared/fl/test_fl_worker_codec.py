"""The simulation workers' wire format: every message round-trips exactly, errors come back
as their type, malformed input is refused with a message saying why.

No worker process is started: the end-to-end tests run ``_worker_main`` in a thread on one
end of a socket pair and drive it from a ``ProcessRunner`` holding the other end.
"""

from __future__ import annotations

import json
import pickle
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from pydantic import SecretStr

from fedchain.shared import tensors
from fedchain.shared.config import ConfigError, Settings, load_settings
from fedchain.shared.fl import worker_codec as wc
from fedchain.shared.fl.data import ClientData, ImageTensors, load_federated
from fedchain.shared.fl.engine import FitOutcome, LocalRunner
from fedchain.shared.fl.models import build_model
from fedchain.shared.fl.strategy import strategy_from_settings
from fedchain.shared.fl.training import EvalResult, TrainResult
from fedchain.shared.fl.workers import ProcessRunner, WorkerFailed, _worker_main
from fedchain.shared.tensors import TensorError


def _settings(**extra: object) -> Settings:
    base: dict[str, object] = dict(
        dataset="mnist-sample", clients=4, max_samples=200, rounds=2, local_epochs=1,
        batch_size=10, lr=0.05, partition="dirichlet", alpha=0.3, device="cpu",
    )
    base.update(extra)
    return load_settings(**base)


def _odd_state() -> dict[str, torch.Tensor]:
    """Tensors a codec gets wrong easily: special floats, every dtype, views, ties, 0-d, empty."""
    special = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-45, 3.4e38])
    base = torch.randn(6, 5, dtype=torch.float64)
    tied = torch.randn(4)
    return {
        "special": special,
        "float64": base,
        "transposed": base.t(),  # not contiguous, shares base's memory
        "slice": base[2:4],  # a view into part of a storage
        "tied.a": tied,
        "tied.b": tied,  # the same tensor twice (tied weights)
        "half": torch.randn(3, 3).half(),
        "bfloat16": torch.randn(3, 3).bfloat16(),
        "int64": torch.tensor([2**62, -(2**62), 0]),
        "uint8": torch.arange(256, dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(0, 3),
    }


def _bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (NaN == NaN, -0.0 != 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    ab = a.contiguous().view(-1).view(torch.uint8) if a.numel() else a.reshape(0).to(torch.uint8)
    bb = b.contiguous().view(-1).view(torch.uint8) if b.numel() else b.reshape(0).to(torch.uint8)
    return torch.equal(ab, bb)


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert _bit_equal(a[key], b[key]), key


def _message(header: Any, named: dict[str, torch.Tensor] | None = None, *, raw: bytes | None = None) -> bytes:
    head = raw if raw is not None else json.dumps(header).encode()
    return wc.MAGIC + struct.pack(">I", len(head)) + head + tensors.encode(named or {})


# ---------------------------------------------------------------- calls round-trip


def test_init_round_trips_settings_and_state_bit_exact_without_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(aggregator="trimmed:0.1", momentum=0.5)
    s.api_token = SecretStr("a-secret-token-of-some-length")
    state = _odd_state()
    message = wc.encode_call("init", (s, state, 3, 2))
    assert b"a-secret-token" not in message  # a worker needs no token: none is sent
    monkeypatch.setenv("FEDCHAIN_LR", "0.9")  # the worker's environment does not change them
    method, (settings, got, vectorize, threads) = wc.decode_call(message)
    assert method == "init" and (vectorize, threads) == (3, 2)
    assert isinstance(settings, Settings)
    assert settings.model_dump(exclude={"api_token"}) == s.model_dump(exclude={"api_token"})
    assert settings.api_token.get_secret_value() == ""
    _same_state(state, got)


def test_set_global_fit_evaluate_and_stop_round_trip() -> None:
    state = _odd_state()
    method, (got,) = wc.decode_call(wc.encode_call("set_global", (state,)))
    assert method == "set_global"
    _same_state(state, got)
    method, (server_round, shared, indices) = wc.decode_call(wc.encode_call("fit", (7, state, [3, 0, 2])))
    assert (method, server_round, indices) == ("fit", 7, [3, 0, 2])
    _same_state(state, shared)
    method, (shared,) = wc.decode_call(wc.encode_call("evaluate", (state,)))
    assert method == "evaluate"
    _same_state(state, shared)
    assert wc.decode_call(wc.encode_call("stop", ())) == ("stop", ())


def test_heads_and_set_heads_round_trip_every_clients_head() -> None:
    heads = {4: _odd_state(), 0: {"fc.weight": torch.randn(10, 3)}, 9: {}}
    assert wc.decode_call(wc.encode_call("heads", ())) == ("heads", ())
    method, (got,) = wc.decode_call(wc.encode_call("set_heads", (heads,)))
    assert method == "set_heads" and list(got) == [4, 0, 9]
    for i in heads:
        _same_state(heads[i], got[i])
    answer = wc.decode_reply(wc.encode_reply("heads", heads), "heads")
    assert answer.error is None and list(answer.value) == [4, 0, 9]
    for i in heads:
        _same_state(heads[i], answer.value[i])
    assert wc.decode_reply(wc.encode_reply("set_heads", None), "set_heads").value is None
    with pytest.raises(wc.CodecError, match="dict of client index"):
        wc.encode_call("set_heads", ([1, 2],))


def test_add_round_trips_clients_sharing_one_pool_of_only_the_rows_in_use() -> None:
    datas = load_federated(_settings())[:3]
    train = datas[0].train
    assert isinstance(train, ImageTensors)
    flipped = ImageTensors(train.images, 9 - train.labels, train.spec)  # a pool of its own, no rows
    datas.append(ClientData(9, flipped, datas[0].test, {1: 2, 4: 0}))
    message = wc.encode_call("add", (datas,))
    method, (got,) = wc.decode_call(message)
    assert method == "add" and len(got) == len(datas)
    for want, have in zip(datas, got, strict=True):
        assert have.index == want.index and have.label_counts == want.label_counts
        for split in ("train", "test"):
            a, b = getattr(want, split), getattr(have, split)
            assert isinstance(b, ImageTensors) and len(a) == len(b) and b.spec == a.spec
            assert _bit_equal(a.images, b.images) and _bit_equal(a.labels, b.labels)
            index = torch.arange(len(a)).flip(0)
            for x, y in zip(a.batch(index), b.batch(index), strict=True):
                assert _bit_equal(x, y)
    assert got[0].train.shares_pool_with(got[2].test)  # one pool in the worker, as in the parent
    pool_rows = sum(len(getattr(d, split)) for d in datas[:3] for split in ("train", "test"))
    image_bytes = pool_rows * 28 * 28 + len(flipped) * 28 * 28
    assert len(message) < image_bytes * 1.5  # the 5,000-image pool itself is not sent


def test_a_dataset_that_is_not_image_tensors_is_a_clear_error() -> None:
    data = load_federated(_settings())[0]
    other = ClientData(0, torch.utils.data.TensorDataset(torch.zeros(2, 1)), data.test, {})
    with pytest.raises(ConfigError, match="client 0's train split is a TensorDataset.*--workers 0"):
        wc.encode_call("add", ([other],))


# ---------------------------------------------------------------- answers round-trip


def test_fit_and_evaluate_answers_round_trip_exactly() -> None:
    state = _odd_state()
    outcomes = [
        FitOutcome(2, state, TrainResult(loss=0.1 + 0.2, samples=30, seconds=1e-7)),
        FitOutcome(0, {"w": torch.randn(2)}, TrainResult(loss=float("nan"), samples=0, seconds=0.0)),
    ]
    got = wc.decode_reply(wc.encode_reply("fit", outcomes), "fit")
    assert got.error is None and [o.index for o in got.value] == [2, 0]
    for want, have in zip(outcomes, got.value, strict=True):
        _same_state(want.state, have.state)
        assert struct.pack(">d", have.result.loss) == struct.pack(">d", want.result.loss)
        assert (have.result.samples, have.result.seconds) == (want.result.samples, want.result.seconds)
    results = {3: EvalResult(correct=5, total=9, loss=2 / 3), 1: EvalResult(0, 0, float("inf"))}
    got = wc.decode_reply(wc.encode_reply("evaluate", results), "evaluate")
    assert got.value == results and list(got.value) == [3, 1]
    assert wc.decode_reply(wc.encode_reply("add", None), "add").value is None


@pytest.mark.parametrize(
    "exc,cls,text",
    [
        (FloatingPointError("client 3 diverged"), FloatingPointError, "client 3 diverged"),
        (ConfigError("bad aggregator"), ConfigError, "bad aggregator"),
        (TensorError("tensor w has NaN"), TensorError, "tensor w has NaN"),
        (torch.OutOfMemoryError("out of memory"), RuntimeError, "out of memory (OutOfMemoryError)"),
    ],
)
def test_an_error_comes_back_as_its_type(exc: Exception, cls: type[Exception], text: str) -> None:
    got = wc.decode_reply(wc.encode_error("fit", exc), "fit")
    assert type(got.error) is cls and str(got.error) == text


def test_an_error_outside_the_worker_errors_is_not_sent() -> None:
    with pytest.raises(wc.CodecError, match="KeyError is not an error a worker sends back"):
        wc.encode_error("fit", KeyError("x"))
    bad = _message({"reply": "fit", "error": {"type": "SystemExit", "message": "bye"}})
    with pytest.raises(wc.CodecError, match="unknown error type 'SystemExit'"):
        wc.decode_reply(bad, "fit")


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "data,match",
    [
        (pickle.dumps(("fit", (1, {}, [0]))), "bad magic"),
        (b"FCW", "bad magic"),
        (wc.MAGIC + struct.pack(">I", 50) + b"{}", "points past the end"),
        (wc.MAGIC + struct.pack(">I", wc.MAX_HEADER_BYTES + 1), "header of .* exceeds the limit"),
        (_message(None, raw=b"{not json"), "not JSON"),
        (_message(None, raw=b"[" * 100_000), "not JSON"),
        (_message([1, 2]), "not a JSON object"),
        (_message({"method": "fit"}), "header has keys"),
        (_message({"method": "__import__", "fields": {}}), "unknown worker method '__import__'"),
        (_message({"method": "stop", "fields": {"x": 1}}), "stop call: x: Extra inputs"),
        (_message({"method": "fit", "fields": {"round": True, "shared": {}, "indices": []}}), "round"),
        (_message({"method": "fit", "fields": {"round": 1, "shared": {}, "indices": [-1]}}), "indices.0"),
        (_message({"method": "evaluate", "fields": {"shared": {"w": "0"}}}), "names tensor 0, which"),
        (_message({"method": "evaluate", "fields": {"shared": {"w": "01"}}}), "should match pattern"),
        (_message({"method": "evaluate", "fields": {"shared": {"w": "0", "v": "0"}}}, {"0": torch.ones(1)}),
         "names twice"),
        (_message({"method": "stop", "fields": {}}, {"0": torch.ones(1)}), "header does not use: 0"),
        (_message({"method": "init", "fields": {"settings": {"lr": -1}, "global_state": {}, "vectorize": 1,
                                                 "threads": 1}}), "settings do not validate"),
        (_message({"method": "stop", "fields": {}})[:-3], "tensor section is malformed"),
    ],
    ids=["pickle", "short", "past-end", "huge-header", "not-json", "deep-json", "array", "keys", "method",
         "extra-field", "bool-round", "negative-index", "missing-tensor", "bad-ref", "tensor-twice",
         "unused-tensor", "bad-settings", "truncated-tensors"],
)
def test_a_malformed_call_is_refused_with_a_reason(data: bytes, match: str) -> None:
    with pytest.raises(wc.CodecError, match=match):
        wc.decode_call(data)


def test_malformed_client_data_is_refused() -> None:
    datas = load_federated(_settings())[:1]
    method, header, named = _split(wc.encode_call("add", (datas,)))
    rows_ref = header["fields"]["clients"][0]["train"]["rows"]
    bad = dict(named, **{rows_ref: torch.tensor([0, 10**6])})
    with pytest.raises(wc.CodecError, match="client 0 train rows are outside"):
        wc.decode_call(_message(header, bad))
    bad = dict(named, **{rows_ref: named[rows_ref].to(torch.int32)})
    with pytest.raises(wc.CodecError, match="client 0 train rows has dtype torch.int32"):
        wc.decode_call(_message(header, bad))
    header["fields"]["clients"][0]["label_counts"] = [[1, 2], [1, 3]]
    with pytest.raises(wc.CodecError, match="name a label twice"):
        wc.decode_call(_message(header, named))


def _split(message: bytes) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    (n,) = struct.unpack(">I", message[4:8])
    header = json.loads(message[8 : 8 + n])
    return header.get("method"), header, tensors.decode(message[8 + n :], require_finite=False)


def test_an_answer_to_another_call_is_refused() -> None:
    with pytest.raises(wc.CodecError, match="an answer to 'add' came for a fit call"):
        wc.decode_reply(wc.encode_reply("add", None), "fit")


def test_an_oversized_or_cut_frame_is_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        wc.send_frame(a, b"x" * 1000)
        with pytest.raises(wc.CodecError, match="a message of 1000 bytes exceeds the limit of 100"):
            wc.recv_frame(b, limit=100)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">Q", 10) + b"abc")
        a.close()
        with pytest.raises(EOFError, match="mid-frame"):
            wc.recv_frame(b)


def test_a_message_over_the_limit_is_not_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wc, "MAX_MESSAGE_BYTES", 1000)
    with pytest.raises(wc.CodecError, match="a fit answer message of .* exceeds the limit of 1000"):
        wc.encode_reply("fit", [FitOutcome(0, {"w": torch.zeros(1000)}, TrainResult(0.0, 1, 0.0))])


# ---------------------------------------------------------------- a worker in a thread


@pytest.fixture
def threaded_runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ProcessRunner, threading.Thread]]:
    """A one-shard ProcessRunner whose worker is ``_worker_main`` in a thread."""
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # only the main thread may set one
    s = _settings()
    model = build_model(s.model, s.dataset)
    runner = ProcessRunner(s, model.state_dict(), workers=1)
    parent, child = socket.socketpair()
    worker = threading.Thread(target=_worker_main, args=(child,), daemon=True)
    worker.start()
    runner._socks, runner._started = [parent], True
    yield runner, worker
    runner.close()
    worker.join(timeout=10)
    child.close()


def test_a_call_before_init_is_refused_and_the_worker_serves_on(
    threaded_runner: tuple[ProcessRunner, threading.Thread],
) -> None:
    runner, worker = threaded_runner
    with pytest.raises(wc.CodecError, match="a fit call before init"):
        runner._call_all({0: ("fit", (1, {}, [0]))})
    assert worker.is_alive()


def test_an_answer_that_cannot_be_read_is_worker_failed() -> None:
    s = _settings()
    runner = ProcessRunner(s, build_model(s.model, s.dataset).state_dict(), workers=1)
    parent, child = socket.socketpair()
    runner._socks, runner._started = [parent], True
    with child:
        wc.send_frame(child, b"not a message")  # what the "worker" answers
        with pytest.raises(WorkerFailed, match="simulation worker 0 sent an answer that cannot be read: .*magic"):
            runner._call_all({0: ("set_global", ({},))})
        runner.close()


def test_a_threaded_worker_trains_as_the_serial_loop_and_reraises_errors(
    threaded_runner: tuple[ProcessRunner, threading.Thread],
) -> None:
    runner, worker = threaded_runner
    s = runner.settings
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="Missing key"):  # load_state_dict in the worker
        runner._call_all({0: ("init", (s, {"w": torch.zeros(1)}, 1, threads))})
    assert worker.is_alive()  # an error is an answer, not a crash
    runner._call_all({0: ("init", (s, runner.global_state, 1, threads))})
    datas = load_federated(s)
    runner._call_all({0: ("add", (datas,))})
    strategy = strategy_from_settings(s)
    model = build_model(s.model, s.dataset)
    model.load_state_dict(runner.global_state)
    shared = {k: runner.global_state[k] for k in strategy.bind(model)}
    (outcomes,) = runner._call_all({0: ("fit", (1, shared, [2, 0]))}).values()

    serial = LocalRunner(s, strategy, model, runner.global_state, device=torch.device("cpu"))
    for d in datas:
        serial.add(d)
    want = serial.fit(1, shared, [2, 0])
    assert [o.index for o in outcomes] == [2, 0]
    for a, b in zip(want, outcomes, strict=True):
        _same_state(a.state, b.state)
        assert (a.result.loss, a.result.samples) == (b.result.loss, b.result.samples)
    (evaluated,) = runner._call_all({0: ("evaluate", (shared,))}).values()
    assert evaluated == serial.evaluate(shared)
    # the heads come back as the serial loop's, and a head sent in is the one kept
    (heads,) = runner._call_all({0: ("heads", ())}).values()
    want_heads = serial.personal_states()
    assert list(heads) == list(want_heads)
    for i in heads:
        _same_state(want_heads[i], heads[i])
    swapped = {0: heads[2], 2: heads[0]}
    runner._call_all({0: ("set_heads", (swapped,))})
    (back,) = runner._call_all({0: ("heads", ())}).values()
    _same_state(back[0], heads[2])
    _same_state(back[2], heads[0])


def test_a_worker_refuses_garbage_and_serves_on(threaded_runner: tuple[ProcessRunner, threading.Thread]) -> None:
    runner, worker = threaded_runner
    sock = runner._socks[0]
    wc.send_frame(sock, pickle.dumps(("init", ())))
    answer = wc.decode_reply(wc.recv_frame(sock), "init")
    assert type(answer.error) is wc.CodecError and "bad magic" in str(answer.error)
    wc.send_frame(sock, _message({"method": "os.system", "fields": {}}))
    answer = wc.decode_reply(wc.recv_frame(sock), "init")
    assert type(answer.error) is wc.CodecError and "unknown worker method 'os.system'" in str(answer.error)
    assert worker.is_alive()
