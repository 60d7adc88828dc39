"""The simulation workers' wire format (``workers.py``): typed messages, no code in them.

On the socket pair, a *frame* is an 8-byte big-endian length, then that many bytes (at
most ``MAX_MESSAGE_BYTES``). A frame holds one *message*:

    MAGIC (4 bytes) | header length (4 bytes, big-endian) | JSON header | safetensors bytes

The header is a call, ``{"method": M, "fields": {...}}`` (``M`` one of ``METHODS``), or
an answer, ``{"reply": M, "ok": {...}}`` or ``{"reply": M, "error": {...}}`` (``M`` null
for a call the worker could not read). Tensors are never in the JSON: they travel as one
safetensors blob and the header names them by number (``"0"``, ``"1"``, ...), so dtypes,
shapes and every bit of a float come back as they went.

What each call carries:

* ``init``: the settings (as JSON, without the tokens: a worker needs none), the global
  state, ``vectorize`` and the worker's torch threads;
* ``add``: clients (``ClientData`` whose splits are ``ImageTensors``): per pool the uint8
  images and int64 labels of the rows in use (sent once, shared by every view of the
  pool, as in the parent), per split its rows in that pool;
* ``set_global``: a state; ``fit``: the round, the shared state and client indices;
  ``evaluate``: the shared state; ``heads``: nothing; ``set_heads``: per client index, its
  personal tensors (a resumed checkpoint's); ``stop``: nothing.

Answers: ``fit`` -> ``FitOutcome`` values, ``evaluate`` -> ``{index: EvalResult}``,
``heads`` -> ``{index: personal tensors}``, the others None. An error is its type's name
(one of ``ERROR_TYPES``) and message; the parent raises the same type.

Decoding checks every bound (frame, header, tensor section, counts), validates the header
with pydantic models (strict: unknown or missing fields, wrong types refused), checks
that every tensor named exists, has the dtype and rank it must, and is used exactly
once. Any problem is a ``CodecError`` saying what is wrong; nothing in a message is
ever executed.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import torch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from fedchain.shared import tensors as tensor_codec
from fedchain.shared.config import TOKEN_FIELDS, ConfigError, Settings
from fedchain.shared.fl.data import ClientData, DatasetMissing, DatasetSpec, ImageTensors
from fedchain.shared.fl.engine import FitOutcome
from fedchain.shared.fl.training import EvalResult, TrainResult

MAGIC = b"FCW1"
"""The first bytes of every message (format version 1)."""

FRAME_LENGTH = struct.Struct(">Q")
HEADER_LENGTH = struct.Struct(">I")

MAX_MESSAGE_BYTES = 4 * 1024**3
"""Largest frame sent or accepted (4 GiB: a CIFAR-10 pool is 185 MB, a ResNet-18 state 45 MB)."""

MAX_HEADER_BYTES = 16 * 1024**2
"""Largest JSON header (10,000 clients' label counts take about 2 MB)."""

MAX_ERROR_CHARS = 10_000
"""An error message longer than this is cut."""

Method = Literal["init", "add", "set_global", "fit", "evaluate", "heads", "set_heads", "stop"]
METHODS: tuple[str, ...] = get_args(Method)
"""The calls a worker serves."""

WORKER_ERRORS = (ConfigError, ValueError, FloatingPointError, RuntimeError)
"""What a worker sends back to the parent (re-raised there) instead of dying."""


class CodecError(ValueError):
    """A worker message that cannot be encoded or is malformed; the message says why."""


ERROR_TYPES: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (CodecError, DatasetMissing, tensor_codec.TensorError, *WORKER_ERRORS)
}
"""The error types an answer may name: a worker's error is sent as the first of these in
its type's MRO (a ``torch.OutOfMemoryError`` as ``RuntimeError``), raised as that type."""


@dataclass(frozen=True)
class Answer:
    """A decoded answer: the call's value, or the error the worker sent back."""

    value: Any = None
    error: Exception | None = None


# ---------------------------------------------------------------- frames


def send_frame(sock: socket.socket, message: bytes) -> None:
    """Send one frame (``OSError`` if the peer is gone)."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise CodecError(f"message of {len(message)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    sock.sendall(FRAME_LENGTH.pack(len(message)))
    sock.sendall(message)


def _recv_exactly(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise EOFError("the peer closed the connection" + (" mid-frame" if got else ""))
        got += k
    return buf


def recv_frame(sock: socket.socket, limit: int | None = None) -> bytearray:
    """Receive one frame: ``EOFError`` at the peer's end, ``CodecError`` over ``limit``
    (default ``MAX_MESSAGE_BYTES``).

    After a ``CodecError`` the stream is not read on (its next bytes are that frame's).
    """
    limit = MAX_MESSAGE_BYTES if limit is None else limit
    (n,) = FRAME_LENGTH.unpack(_recv_exactly(sock, FRAME_LENGTH.size))
    if n > limit:
        raise CodecError(f"a message of {n} bytes exceeds the limit of {limit}")
    return _recv_exactly(sock, n)


# ---------------------------------------------------------------- tensors


class _Outgoing:
    """The tensors of a message being encoded, numbered in the order they are added."""

    def __init__(self) -> None:
        self.named: dict[str, torch.Tensor] = {}
        self._storages: set[int] = set()

    def add(self, t: Any, what: str) -> str:
        if not isinstance(t, torch.Tensor):
            raise CodecError(f"{what} is a {type(t).__name__}, not a tensor")
        if t.layout != torch.strided:
            raise CodecError(f"{what} is a {t.layout} tensor, not a dense one")
        name = str(len(self.named))
        t = t.detach().to("cpu")
        # safetensors refuses tensors sharing memory (tied weights, views): those go as copies
        storage = t.untyped_storage()
        if (
            not t.is_contiguous()
            or storage.data_ptr() in self._storages
            or storage.nbytes() != t.numel() * t.element_size()
        ):
            t = t.contiguous().clone()
            storage = t.untyped_storage()
        if t.numel():
            self._storages.add(storage.data_ptr())
        self.named[name] = t
        return name

    def state(self, state: Any, what: str) -> dict[str, str]:
        if not isinstance(state, Mapping):
            raise CodecError(f"{what} is a {type(state).__name__}, not a state dict")
        refs: dict[str, str] = {}
        for key, value in state.items():
            if not isinstance(key, str):
                raise CodecError(f"{what} has a key of type {type(key).__name__}, not str")
            refs[key] = self.add(value, f"{what}[{key!r}]")
        return refs


class _Incoming:
    """The tensors of a message being decoded; each must be taken exactly once."""

    def __init__(self, named: dict[str, torch.Tensor]) -> None:
        self._left = named

    def take(self, ref: str, what: str, dtype: torch.dtype | None = None, dim: int | None = None) -> torch.Tensor:
        t = self._left.pop(ref, None)
        if t is None:
            raise CodecError(f"{what} names tensor {ref}, which the message does not hold (or names twice)")
        if dtype is not None and t.dtype != dtype:
            raise CodecError(f"{what} has dtype {t.dtype}, expected {dtype}")
        if dim is not None and t.dim() != dim:
            raise CodecError(f"{what} has {t.dim()} dimension(s), expected {dim}")
        return t

    def state(self, refs: Mapping[str, str], what: str) -> dict[str, torch.Tensor]:
        return {key: self.take(ref, f"{what}[{key!r}]") for key, ref in refs.items()}

    def done(self) -> None:
        if self._left:
            names = ", ".join(sorted(self._left, key=int)[:5])
            raise CodecError(f"the message holds tensors its header does not use: {names}")


# ---------------------------------------------------------------- header models

Ref = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]{0,8})$")]
"""A tensor's number in the message's safetensors blob."""
State = dict[str, Ref]
Index = Annotated[int, Field(ge=0, le=10**9)]
Count = Annotated[int, Field(ge=0, le=2**62)]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Init(_Fields):
    settings: dict[str, Any]
    global_state: State
    vectorize: int = Field(ge=1, le=100_000)
    threads: int = Field(ge=1, le=4096)


class _Spec(_Fields):
    channels: int = Field(ge=0, le=64)  # 0, 0: a custom dataset's inputs (shape from the pool)
    size: int = Field(ge=0, le=65_536)
    mean: list[float] = Field(max_length=64)
    std: list[float] = Field(max_length=64)
    num_classes: int = Field(ge=2, le=1_000_000)


class _Pool(_Fields):
    spec: _Spec
    images: Ref
    labels: Ref


class _Split(_Fields):
    pool: int = Field(ge=0, le=100_000)
    rows: Ref


class _Client(_Fields):
    index: Index
    train: _Split
    test: _Split
    label_counts: list[Annotated[list[Count], Field(min_length=2, max_length=2)]] = Field(max_length=100_000)


class _Add(_Fields):
    pools: list[_Pool] = Field(max_length=100_000)
    clients: list[_Client] = Field(max_length=100_000)


class _SetGlobal(_Fields):
    state: State


class _Fit(_Fields):
    round: Index
    shared: State
    indices: list[Index] = Field(max_length=100_000)


class _Evaluate(_Fields):
    shared: State


class _Stop(_Fields):
    pass


class _Head(_Fields):
    index: Index
    state: State


class _Heads(_Fields):
    heads: list[_Head] = Field(max_length=100_000)


_CALLS: dict[str, type[_Fields]] = {
    "init": _Init, "add": _Add, "set_global": _SetGlobal, "fit": _Fit, "evaluate": _Evaluate,
    "heads": _Stop, "set_heads": _Heads, "stop": _Stop,
}


class _TrainResult(_Fields):
    loss: float
    samples: Count
    seconds: float


class _Outcome(_Fields):
    index: Index
    state: State
    result: _TrainResult


class _Eval(_Fields):
    index: Index
    correct: Count
    total: Count
    loss: float


class _None(_Fields):
    pass


class _FitDone(_Fields):
    outcomes: list[_Outcome] = Field(max_length=100_000)


class _EvalDone(_Fields):
    results: list[_Eval] = Field(max_length=100_000)


_REPLIES: dict[str, type[_Fields]] = {
    "init": _None, "add": _None, "set_global": _None, "fit": _FitDone, "evaluate": _EvalDone,
    "heads": _Heads, "set_heads": _None, "stop": _None,
}


def _encode_heads(value: Any, out: _Outgoing, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise CodecError(f"{what} is a dict of client index -> personal tensors, got a {type(value).__name__}")
    return {"heads": [
        {"index": _int(i, "a client index"), "state": out.state(st, f"client {i}'s head")}
        for i, st in value.items()
    ]}


def _decode_heads(fields: _Heads, tensors: _Incoming, what: str) -> dict[int, dict[str, torch.Tensor]]:
    heads = {h.index: tensors.state(h.state, f"client {h.index}'s head") for h in fields.heads}
    if len(heads) != len(fields.heads):
        raise CodecError(f"{what} names a client twice")
    return heads


class _Error(_Fields):
    type: str = Field(max_length=100)
    message: str = Field(max_length=MAX_ERROR_CHARS)


# ---------------------------------------------------------------- messages


def _pack(header: dict[str, Any], out: _Outgoing) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER_BYTES:
        raise CodecError(f"a header of {len(head)} bytes exceeds the limit of {MAX_HEADER_BYTES}")
    message = b"".join((MAGIC, HEADER_LENGTH.pack(len(head)), head, tensor_codec.encode(out.named)))
    if len(message) > MAX_MESSAGE_BYTES:
        what = header.get("method") or f"{header.get('reply')} answer"
        raise CodecError(
            f"a {what} message of {len(message)} bytes exceeds the limit of {MAX_MESSAGE_BYTES} "
            "(fewer clients per worker call: more workers, or --workers 0)"
        )
    return message


def _unpack(data: bytes | bytearray) -> tuple[dict[str, Any], _Incoming]:
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(f"a message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    view = memoryview(data)
    prefix = len(MAGIC) + HEADER_LENGTH.size
    if len(data) < prefix or bytes(view[: len(MAGIC)]) != MAGIC:
        raise CodecError("not a worker message (bad magic bytes)")
    (n,) = HEADER_LENGTH.unpack(view[len(MAGIC) : prefix])
    if n > MAX_HEADER_BYTES:
        raise CodecError(f"a header of {n} bytes exceeds the limit of {MAX_HEADER_BYTES}")
    if n > len(data) - prefix:
        raise CodecError("the header length points past the end of the message")
    try:
        header = json.loads(bytes(view[prefix : prefix + n]))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CodecError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise CodecError("the header is not a JSON object")
    try:
        named = tensor_codec.decode(
            bytes(view[prefix + n :]), require_finite=False, max_bytes=MAX_MESSAGE_BYTES
        )
    except tensor_codec.TensorError as exc:
        raise CodecError(f"the tensor section is malformed: {exc}") from None
    return header, _Incoming(named)


def _fields(model: type[_Fields], raw: Any, what: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise CodecError(f"{what}: {where}: {first['msg']} ({exc.error_count()} error(s))") from None


def _keys(header: dict[str, Any], *allowed: set[str]) -> None:
    if set(header) not in allowed:
        expected = " or ".join(str(sorted(a)) for a in allowed)
        raise CodecError(f"the header has keys {sorted(header)[:10]}, expected {expected}")


def _args(args: tuple[Any, ...], method: str, names: Sequence[str]) -> tuple[Any, ...]:
    if not isinstance(args, tuple) or len(args) != len(names):
        raise CodecError(f"{method} takes ({', '.join(names)}), got {len(args)} argument(s)")
    return args


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodecError(f"{what} is a {type(value).__name__}, not an int")
    return value


# ---- clients (add)


def _encode_clients(datas: Any, out: _Outgoing) -> dict[str, Any]:
    if not isinstance(datas, list | tuple):
        raise CodecError(f"add takes a list of ClientData, got a {type(datas).__name__}")
    groups: dict[tuple[int, int, DatasetSpec], list[tuple[int, str, ImageTensors]]] = {}
    for pos, data in enumerate(datas):
        if not isinstance(data, ClientData):
            raise CodecError(f"add takes ClientData values, got a {type(data).__name__}")
        for split in ("train", "test"):
            ds = getattr(data, split)
            if not isinstance(ds, ImageTensors):
                raise ConfigError(
                    f"client {data.index}'s {split} split is a {type(ds).__name__}: simulation "
                    "workers take ImageTensors datasets only (use --workers 0 for other datasets)"
                )
            images, labels = ds.pool
            groups.setdefault((id(images), id(labels), ds.spec), []).append((pos, split, ds))
    pools: list[dict[str, Any]] = []
    splits: dict[tuple[int, str], dict[str, Any]] = {}
    for views in groups.values():
        images, labels = views[0][2].pool
        spec = views[0][2].spec
        rows = [
            v.rows.cpu() if v.rows is not None else torch.arange(len(v), dtype=torch.int64)
            for _, _, v in views
        ]
        # only the rows in use go, once, shared by every view of the pool
        used, inverse = torch.unique(torch.cat(rows), sorted=True, return_inverse=True)
        used_dev = used.to(images.device)
        pools.append({
            "spec": {
                "channels": spec.channels, "size": spec.size, "mean": list(spec.mean), "std": list(spec.std),
                "num_classes": spec.num_classes,
            },
            "images": out.add(images[used_dev], "pool images"),
            "labels": out.add(labels[used_dev], "pool labels"),
        })
        start = 0
        for (pos, split, _), r in zip(views, rows, strict=True):
            part = inverse[start : start + len(r)]
            start += len(r)
            splits[(pos, split)] = {"pool": len(pools) - 1, "rows": out.add(part, "rows")}
    clients = [
        {
            "index": _int(d.index, "a client index"),
            "train": splits[(pos, "train")],
            "test": splits[(pos, "test")],
            "label_counts": [[_int(k, "a label"), _int(v, "a label count")] for k, v in d.label_counts.items()],
        }
        for pos, d in enumerate(datas)
    ]
    return {"pools": pools, "clients": clients}


def _decode_clients(fields: _Add, tensors: _Incoming) -> list[ClientData]:
    pools: list[ImageTensors] = []
    for i, p in enumerate(fields.pools):
        spec = p.spec
        images = tensors.take(p.images, f"pool {i} images")
        labels = tensors.take(p.labels, f"pool {i} labels", torch.int64, 1)
        if images.dtype == torch.uint8:  # fedchain's own images: (N, C, H, W), normalised per channel
            if images.dim() != 4 or images.shape[1] != spec.channels:
                raise CodecError(
                    f"pool {i}: uint8 images must be (N, {spec.channels}, H, W), got {tuple(images.shape)}"
                )
            if not len(spec.mean) == len(spec.std) == spec.channels:
                raise CodecError(f"pool {i}: mean and std must hold one value per channel ({spec.channels})")
        elif not (images.is_floating_point() and images.dim() >= 2):  # a custom dataset's inputs
            raise CodecError(f"pool {i} images are {images.dtype} {tuple(images.shape)}: uint8 (N, C, H, W) "
                             "or floating (N, ...) expected")
        try:
            pool = ImageTensors(
                images, labels,
                DatasetSpec(spec.channels, spec.size, tuple(spec.mean), tuple(spec.std), spec.num_classes),
            )
        except ValueError as exc:
            raise CodecError(f"pool {i}: {exc}") from None
        pools.append(pool)

    def view(split: _Split, what: str) -> ImageTensors:
        if split.pool >= len(pools):
            raise CodecError(f"{what} names pool {split.pool}, the message has {len(pools)}")
        pool = pools[split.pool]
        rows = tensors.take(split.rows, f"{what} rows", torch.int64, 1)
        if rows.numel() and not (0 <= int(rows.min()) and int(rows.max()) < len(pool)):
            raise CodecError(f"{what} rows are outside 0..{len(pool) - 1}")
        return pool.subset(rows)

    out: list[ClientData] = []
    for c in fields.clients:
        counts = {label: count for label, count in c.label_counts}
        if len(counts) != len(c.label_counts):
            raise CodecError(f"client {c.index}'s label counts name a label twice")
        what = f"client {c.index}"
        out.append(ClientData(c.index, view(c.train, f"{what} train"), view(c.test, f"{what} test"), counts))
    return out


# ---- calls


def encode_call(method: str, args: tuple[Any, ...]) -> bytes:
    """The message asking a worker for ``WorkerCore.method(*args)`` (``init``: the constructor)."""
    out = _Outgoing()
    fields: dict[str, Any]
    if method == "init":
        settings, state, vectorize, threads = _args(args, method, ("settings", "global state", "vectorize", "threads"))
        if not isinstance(settings, Settings):
            raise CodecError(f"init takes Settings, got a {type(settings).__name__}")
        fields = {
            "settings": settings.model_dump(mode="json", exclude=set(TOKEN_FIELDS)),
            "global_state": out.state(state, "the global state"),
            "vectorize": _int(vectorize, "vectorize"),
            "threads": _int(threads, "threads"),
        }
    elif method == "add":
        (datas,) = _args(args, method, ("clients",))
        fields = _encode_clients(datas, out)
    elif method == "set_global":
        (state,) = _args(args, method, ("state",))
        fields = {"state": out.state(state, "the global state")}
    elif method == "fit":
        server_round, shared, indices = _args(args, method, ("round", "shared state", "indices"))
        if not isinstance(indices, list | tuple):
            raise CodecError(f"fit takes a list of indices, got a {type(indices).__name__}")
        fields = {
            "round": _int(server_round, "the round"),
            "shared": out.state(shared, "the shared state"),
            "indices": [_int(i, "a client index") for i in indices],
        }
    elif method == "evaluate":
        (shared,) = _args(args, method, ("shared state",))
        fields = {"shared": out.state(shared, "the shared state")}
    elif method == "set_heads":
        (states,) = _args(args, method, ("heads",))
        fields = _encode_heads(states, out, "a set_heads call")
    elif method in ("heads", "stop"):
        _args(args, method, ())
        fields = {}
    else:
        raise CodecError(f"unknown worker method {method[:40]!r} (one of {', '.join(METHODS)})")
    return _pack({"method": method, "fields": fields}, out)


def decode_call(data: bytes | bytearray) -> tuple[str, tuple[Any, ...]]:
    """``(method, args)`` of a call message, checked (``CodecError`` says what is wrong)."""
    header, tensors = _unpack(data)
    _keys(header, {"method", "fields"})
    method = header["method"]
    if not isinstance(method, str) or method not in _CALLS:
        shown = method[:40] if isinstance(method, str) else type(method).__name__
        raise CodecError(f"unknown worker method {shown!r} (one of {', '.join(METHODS)})")
    fields = _fields(_CALLS[method], header["fields"], f"{method} call")
    args: tuple[Any, ...]
    if isinstance(fields, _Init):
        try:
            settings = Settings.model_validate(fields.settings)
        except ValidationError as exc:
            raise CodecError(f"init call: the settings do not validate: {exc.errors()[0]['msg']}") from None
        args = (settings, tensors.state(fields.global_state, "the global state"), fields.vectorize, fields.threads)
    elif isinstance(fields, _Add):
        args = (_decode_clients(fields, tensors),)
    elif isinstance(fields, _SetGlobal):
        args = (tensors.state(fields.state, "the global state"),)
    elif isinstance(fields, _Fit):
        args = (fields.round, tensors.state(fields.shared, "the shared state"), list(fields.indices))
    elif isinstance(fields, _Evaluate):
        args = (tensors.state(fields.shared, "the shared state"),)
    elif isinstance(fields, _Heads):
        args = (_decode_heads(fields, tensors, "a set_heads call"),)
    else:
        args = ()
    tensors.done()
    return method, args


# ---- answers


def encode_reply(method: str, value: Any) -> bytes:
    """The answer to a ``method`` call that returned ``value``."""
    out = _Outgoing()
    ok: dict[str, Any]
    if method == "fit":
        if not isinstance(value, list):
            raise CodecError(f"a fit answer is a list of FitOutcome, got a {type(value).__name__}")
        outcomes = []
        for o in value:
            if not isinstance(o, FitOutcome) or not isinstance(o.result, TrainResult):
                raise CodecError(f"a fit answer holds a {type(o).__name__}, not a FitOutcome")
            outcomes.append({
                "index": _int(o.index, "a client index"),
                "state": out.state(o.state, f"client {o.index}'s state"),
                "result": {
                    "loss": float(o.result.loss), "samples": _int(o.result.samples, "samples"),
                    "seconds": float(o.result.seconds),
                },
            })
        ok = {"outcomes": outcomes}
    elif method == "evaluate":
        if not isinstance(value, dict) or not all(isinstance(r, EvalResult) for r in value.values()):
            raise CodecError("an evaluate answer is a dict of EvalResult")
        ok = {"results": [
            {"index": _int(i, "a client index"), "correct": _int(r.correct, "correct"),
             "total": _int(r.total, "total"), "loss": float(r.loss)}
            for i, r in value.items()
        ]}
    elif method == "heads":
        ok = _encode_heads(value, out, "a heads answer")
    elif method in _REPLIES:
        if value is not None:
            raise CodecError(f"a {method} answer is None, got a {type(value).__name__}")
        ok = {}
    else:
        raise CodecError(f"unknown worker method {method[:40]!r} (one of {', '.join(METHODS)})")
    return _pack({"reply": method, "ok": ok}, out)


def error_type(exc: BaseException) -> type[Exception] | None:
    """The type ``exc`` is sent as: the first of ``ERROR_TYPES`` in its MRO (None: none)."""
    for cls in type(exc).__mro__:
        if ERROR_TYPES.get(cls.__name__) is cls:
            return ERROR_TYPES[cls.__name__]
    return None


def encode_error(method: str | None, exc: BaseException) -> bytes:
    """The answer to a ``method`` call (None: one not read) that raised ``exc``."""
    cls = error_type(exc)
    if cls is None:
        raise CodecError(f"a {type(exc).__name__} is not an error a worker sends back")
    message = str(exc)
    if type(exc) is not cls:
        message = f"{message} ({type(exc).__name__})"
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + "..."
    return _pack({"reply": method, "error": {"type": cls.__name__, "message": message}}, _Outgoing())


def decode_reply(data: bytes | bytearray, method: str) -> Answer:
    """The answer to a ``method`` call: its value, or the error to raise in the parent."""
    header, tensors = _unpack(data)
    _keys(header, {"reply", "ok"}, {"reply", "error"})
    reply = header["reply"]
    if "error" in header:
        if reply is not None and reply != method:
            raise CodecError(f"an error answer to {str(reply)[:40]!r} came for a {method} call")
        err = _fields(_Error, header["error"], "error answer")
        cls = ERROR_TYPES.get(err.type)
        if cls is None:
            raise CodecError(f"an error answer names an unknown error type {err.type!r}")
        tensors.done()
        return Answer(error=cls(err.message))
    if reply != method:
        raise CodecError(f"an answer to {str(reply)[:40]!r} came for a {method} call")
    if method not in _REPLIES:
        raise CodecError(f"unknown worker method {method[:40]!r} (one of {', '.join(METHODS)})")
    fields = _fields(_REPLIES[method], header["ok"], f"{method} answer")
    value: Any = None
    if isinstance(fields, _FitDone):
        value = [
            FitOutcome(
                o.index, tensors.state(o.state, f"client {o.index}'s state"),
                TrainResult(loss=o.result.loss, samples=o.result.samples, seconds=o.result.seconds),
            )
            for o in fields.outcomes
        ]
    elif isinstance(fields, _EvalDone):
        value = {r.index: EvalResult(correct=r.correct, total=r.total, loss=r.loss) for r in fields.results}
        if len(value) != len(fields.results):
            raise CodecError("an evaluate answer names a client twice")
    elif isinstance(fields, _Heads):
        value = _decode_heads(fields, tensors, "a heads answer")
    tensors.done()
    return Answer(value=value)
