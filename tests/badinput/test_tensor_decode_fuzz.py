"""Property-based fuzzing of ``fedchain.shared.tensors.decode``: garbage only ever raises TensorError
(never another exception, never a crash), and every valid state dict round-trips exactly."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.shared.tensors import TensorError, decode, encode

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
]
SAFETENSORS_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "XX", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def decode_or_tensor_error(data: bytes, **kw: object) -> dict[str, torch.Tensor] | None:
    """decode(data); None when it raised TensorError. Any other exception propagates (a finding)."""
    try:
        return decode(data, **kw)  # type: ignore[arg-type]
    except TensorError as exc:
        assert str(exc), "TensorError without a message"
        return None


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_tensor_error(data: bytes) -> None:
    decode_or_tensor_error(data)


@FUZZ
@given(
    header=st.dictionaries(
        st.text(max_size=10),
        st.fixed_dictionaries(
            {},
            optional={
                "dtype": st.sampled_from(SAFETENSORS_DTYPES) | json_values,
                "shape": st.lists(st.integers(-3, 2**40), max_size=4) | json_values,
                "data_offsets": st.lists(st.integers(-3, 2**40), max_size=3) | json_values,
            },
        )
        | json_values,
        max_size=3,
    ),
    body=st.binary(max_size=256),
    lie=st.integers(-16, 16),
)
def test_forged_headers_raise_only_tensor_error(header: dict[str, object], body: bytes, lie: int) -> None:
    raw = json.dumps(header).encode()
    length = max(0, len(raw) + lie) if lie % 3 == 0 else len(raw)
    decode_or_tensor_error(struct.pack("<Q", length) + raw + body)


@FUZZ
@given(positions=st.lists(st.integers(0, 10_000), min_size=1, max_size=8), values=st.binary(min_size=8, max_size=8))
def test_mutated_valid_payload_raises_only_tensor_error(positions: list[int], values: bytes) -> None:
    data = bytearray(encode({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(3)}))
    for i, pos in enumerate(positions):
        data[pos % len(data)] = values[i % len(values)]
    out = decode_or_tensor_error(bytes(data))
    if out is not None:  # a flip inside the tensor bytes still decodes, and then it is finite
        assert all(bool(torch.isfinite(t).all()) for t in out.values() if t.is_floating_point())


@FUZZ
@given(cut=st.integers(0, 10_000), tail=st.binary(max_size=64))
def test_truncated_or_padded_payload(cut: int, tail: bytes) -> None:
    valid = encode({"x": torch.zeros(4, 4), "y": torch.arange(5)})
    assert decode_or_tensor_error(valid[: cut % len(valid)]) is None  # every truncation is refused
    decode_or_tensor_error(valid + tail)


@st.composite
def state_dicts(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True), min_size=1, max_size=4, unique=True))
    out: dict[str, torch.Tensor] = {}
    for name in names:
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(st.lists(st.integers(0, 5), max_size=3))
        seed = draw(st.integers(0, 2**31 - 1))
        gen = torch.Generator().manual_seed(seed)
        if dtype.is_floating_point:
            t = (torch.randn(shape, generator=gen, dtype=torch.float32) * 100).to(dtype)
        elif dtype == torch.bool:
            t = torch.randint(0, 2, shape, generator=gen).bool()
        else:
            info = torch.iinfo(dtype)
            t = torch.randint(max(info.min, -(2**31)), min(info.max, 2**31 - 1), shape, generator=gen, dtype=dtype)
        out[name] = t
    return out


@FEW
@given(state_dicts())
def test_valid_state_dicts_round_trip(state: dict[str, torch.Tensor]) -> None:
    back = decode(encode(state), expected=state)
    assert set(back) == set(state)
    for name, t in state.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape
        assert torch.equal(back[name], t)


@FEW
@given(state_dicts(), st.sampled_from([float("nan"), float("inf"), float("-inf")]))
def test_non_finite_values_are_refused(state: dict[str, torch.Tensor], bad: float) -> None:
    floats = [n for n, t in state.items() if t.is_floating_point() and t.numel() > 0]
    if not floats:
        return
    poisoned = dict(state)
    t = poisoned[floats[0]].clone()
    t.view(-1)[0] = bad
    poisoned[floats[0]] = t
    with pytest.raises(TensorError, match="NaN or Inf"):
        decode(encode(poisoned))
    assert decode(encode(poisoned), require_finite=False)[floats[0]].isfinite().sum() == t.isfinite().sum()


@FEW
@given(state_dicts(), st.data())
def test_shape_or_dtype_mismatch_is_refused(state: dict[str, torch.Tensor], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(state)))
    expected = dict(state)
    if data.draw(st.booleans()):
        expected[name] = torch.zeros((*state[name].shape, 2), dtype=state[name].dtype)
    else:
        other = torch.float64 if state[name].dtype != torch.float64 else torch.int32
        expected[name] = torch.zeros(state[name].shape, dtype=other)
    with pytest.raises(TensorError, match=name.replace(".", r"\.")):
        decode(encode(state), expected=expected)


def test_size_bound_is_enforced_before_parsing() -> None:
    data = encode({"x": torch.zeros(1000)})
    with pytest.raises(TensorError, match="exceeds the limit"):
        decode(data, max_bytes=len(data) - 1)


def _with_header(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deeply_nested_header_is_a_clear_refusal(opener: str) -> None:
    depth = 200_000  # far past Python's recursion limit: json.loads raised RecursionError
    closer = "]" if opener == "[" else "}"
    header = (opener * depth + "0" + closer * depth).encode()
    with pytest.raises(TensorError, match="nested too deeply"):
        decode(_with_header(header))


def test_the_header_names_what_is_wrong_with_a_tensor() -> None:
    cases = {
        b'{"x": 1}': "not described by a JSON object",
        b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}': "bad offsets",
        b'{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}': "bad shape",
        b'{"x": {"shape": [1], "data_offsets": [0, 4]}}': "no dtype",
        b'{"__metadata__": {"a": 1}}': "__metadata__",
        b"[]": "not a JSON object",
    }
    for header, reason in cases.items():
        with pytest.raises(TensorError, match=reason):
            decode(_with_header(header, b"\0" * 4))


def test_the_ledger_and_the_console_use_the_same_header_check(tmp_path: Path) -> None:
    from fedchain.services.console.client import _check_safetensors
    from fedchain.services.console.errors import ConsoleError
    from fedchain.services.ledger.blobs import check_safetensors
    from fedchain.shared.ledger.errors import InvalidBlob

    nested = _with_header(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(InvalidBlob, match="not a safetensors file .*nested too deeply"):
        check_safetensors(nested)
    path = tmp_path / "model.safetensors"
    path.write_bytes(nested)
    with pytest.raises(ConsoleError, match="not a safetensors file .*nested too deeply"):
        _check_safetensors(path)
    path.write_bytes(encode({"w": torch.ones(3)}))
    _check_safetensors(path)
    check_safetensors(path.read_bytes())


def test_finiteness_is_checked_for_every_float_dtype_and_empty_tensors() -> None:
    from fedchain.shared.tensors import is_finite

    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        assert is_finite(torch.zeros(5, dtype=dtype)) and is_finite(torch.zeros(0, dtype=dtype))
        for bad in (float("nan"), float("inf"), float("-inf")):
            t = torch.zeros(5, dtype=dtype)
            t[3] = bad
            assert not is_finite(t), (dtype, bad)
    assert is_finite(torch.tensor([2**40], dtype=torch.int64))
