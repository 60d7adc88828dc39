"""Robust aggregators against hand-computed values; the spec parser; the strategy hooks."""

from __future__ import annotations

import pytest
import torch

from fedchain.shared.config import ConfigError, load_settings
from fedchain.shared.fl.aggregate import weighted_average
from fedchain.shared.fl.robust import AggregationError, Aggregator, krum_scores, pairwise_sq_distances
from fedchain.shared.fl.robust_spec import AggregatorSpecError, parse_aggregator
from fedchain.shared.fl.strategy import FedAvg, FedPer, UpdateRejected, strategy_from_settings


def ups(*rows: list[float], weights: list[int] | None = None) -> list[tuple[dict[str, torch.Tensor], int]]:
    """One update per row: tensor ``w`` = row, buffer ``n`` = 10 * position."""
    ws = weights or [1] * len(rows)
    pairs = enumerate(zip(rows, ws, strict=True))
    return [({"w": torch.tensor(r), "n": torch.tensor(10 * i)}, w) for i, (r, w) in pairs]


# ---- the spec -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("mean", "mean"),
        (" Median ", "median"),
        ("trimmed:0.10", "trimmed:0.1"),
        ("krum:1", "krum:1"),
        ("multikrum:2", "multikrum:2"),
        ("multikrum:2,5", "multikrum:2,5"),
        ("bulyan:1", "bulyan:1"),
        ("clip:2", "clip:2"),
        ("krum:1+clip:2.5", "clip:2.5+krum:1"),
    ],
)
def test_spec_canonical_spelling(text: str, canonical: str) -> None:
    assert str(parse_aggregator(text)) == canonical
    assert parse_aggregator(text).decomposable is (canonical == "mean")


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty"),
        ("avg", "unknown rule 'avg'"),
        ("krum", "krum takes the number f"),
        ("krum:x", "'x' is not a whole number"),
        ("krum:-1", "f must be 0 or more"),
        ("trimmed:0.5", r"β must be in \[0, 0.5\)"),
        ("median:3", "median takes no parameter"),
        ("clip:0", "τ must be > 0"),
        ("krum:1+median", "two rules"),
        ("clip:1+clip:2", "clip is given twice"),
        ("multikrum:1,0", "m must be at least 1"),
    ],
)
def test_spec_errors_name_the_part(text: str, match: str) -> None:
    with pytest.raises(AggregatorSpecError, match=match):
        parse_aggregator(text)


def test_settings_field_is_canonical_federation_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedchain.shared.config import FEDERATION_FIELDS

    assert "aggregator" in FEDERATION_FIELDS
    assert load_settings().aggregator == "mean"
    monkeypatch.setenv("FEDCHAIN_AGGREGATOR", "KRUM:2 + clip:3")
    s = load_settings()
    assert s.aggregator == "clip:3+krum:2"
    assert str(strategy_from_settings(s).aggregator.spec) == "clip:3+krum:2"
    with pytest.raises(ConfigError, match="aggregator.*unknown rule 'krun'"):
        load_settings(aggregator="krun:1")


# ---- rules against hand-computed values ---------------------------------------


def test_median_odd_even_and_integer_buffers() -> None:
    out = Aggregator("median")(ups([1.0, 9.0], [2.0, 0.0], [100.0, 5.0])).state
    assert torch.equal(out["w"], torch.tensor([2.0, 5.0]))
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 10  # median of 0, 10, 20
    even = Aggregator("median")(ups([1.0], [2.0], [4.0], [100.0])).state
    assert torch.equal(even["w"], torch.tensor([3.0]))  # (2 + 4) / 2
    assert int(even["n"]) == 15  # (10 + 20) / 2 = 15, integer kept
    assert even["w"].dtype == torch.float32


def test_trimmed_mean_cuts_floor_beta_n_each_end() -> None:
    rows = [[v] for v in (-50.0, 1.0, 2.0, 3.0, 6.0, 1000.0)]
    assert torch.allclose(Aggregator("trimmed:0.2")(ups(*rows)).state["w"], torch.tensor([3.0]))  # 1,2,3,6
    assert torch.allclose(Aggregator("trimmed:0.34")(ups(*rows)).state["w"], torch.tensor([2.5]))  # 2,3
    # β so small nothing is cut: the unweighted mean
    assert torch.allclose(Aggregator("trimmed:0.1")(ups(*rows)).state["w"], torch.tensor([962 / 6]))


def test_trimmed_reports_updates_cut_in_most_coordinates_as_downweighted() -> None:
    rows = [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [2.5, 0.5], [50.0, 50.0]]
    out = Aggregator("trimmed:0.2")(ups(*rows))
    # 4 is the highest in both coordinates; 0 and 3 are each the lowest in one (half: not more)
    assert [(d.index, d.action) for d in out.decisions] == [(4, "downweighted")]
    assert out.decisions[0].reason == "trimmed:0.2: 100.0% of coordinates cut"


def test_krum_picks_the_lowest_score_and_ranks_the_rest() -> None:
    # 1-D points 0, 1, 2, 3, 10 with f = 1: each score sums n - f - 2 = 2 nearest squared distances
    # scores: 0 -> 1+4=5, 1 -> 1+1=2, 2 -> 1+1=2, 3 -> 1+4=5, 10 -> 49+64=113
    updates = ups([0.0], [1.0], [2.0], [3.0], [10.0])
    sq = pairwise_sq_distances(torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]], dtype=torch.float64))
    assert torch.allclose(krum_scores(sq, 1), torch.tensor([5.0, 2.0, 2.0, 5.0, 113.0], dtype=torch.float64))
    out = Aggregator("krum:1")(updates)
    assert torch.equal(out.state["w"], torch.tensor([1.0]))  # tie 1 vs 2: the earlier update wins
    assert int(out.state["n"]) == 10  # the chosen update's buffer
    reasons = {d.index: (d.action, d.reason) for d in out.decisions}
    assert reasons == {
        0: ("rejected", "krum: score rank 3 of 5"),
        2: ("rejected", "krum: score rank 2 of 5"),
        3: ("rejected", "krum: score rank 4 of 5"),
        4: ("rejected", "krum: score rank 5 of 5"),
    }


def test_multikrum_keeps_m_and_weights_by_samples() -> None:
    updates = ups([0.0], [1.0], [2.0], [3.0], [10.0], weights=[1, 1, 3, 1, 1])
    out = Aggregator("multikrum:1,2")(updates)
    assert torch.allclose(out.state["w"], torch.tensor([(1.0 * 1 + 2.0 * 3) / 4]))
    assert [d.index for d in out.decisions] == [0, 3, 4]
    assert out.decisions[-1].reason == "multikrum: score rank 5 of 5 (keeps 2)"
    default = Aggregator("multikrum:1")(updates)  # keeps n - f = 4: only the outlier goes
    assert [(d.index, d.reason) for d in default.decisions] == [(4, "multikrum: score rank 5 of 5 (keeps 4)")]
    assert torch.allclose(default.state["w"], torch.tensor([(0 + 1 + 6 + 3) / 6]))


def test_bulyan_selects_then_averages_closest_to_median() -> None:
    # n = 7, f = 1: theta = 5 updates selected by iterated krum, beta = 3 closest to the median averaged
    rows = [[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [100.0]]
    out = Aggregator("bulyan:1")(ups(*rows))
    rejected = sorted(d.index for d in out.decisions)
    # krum steps (neighbours max(1, m - f - 2)): 2 (ties 3, earlier wins), 3, 1 (ties 4), 4,
    # then 0 (ties 5 at 25, earlier wins): 5 and 100 are left out
    assert rejected == [5, 6]
    assert all(d.reason.startswith("bulyan: not among the 5 updates iterated krum selects") for d in out.decisions)
    assert "krum score rank 7 of 7" in next(d.reason for d in out.decisions if d.index == 6)
    # selected 0..4, median 2, the three closest: 1, 2, 3 -> 2
    assert torch.allclose(out.state["w"], torch.tensor([2.0]))
    shifted = Aggregator("bulyan:1")(ups(*[[v] for v in (0.0, 1.0, 2.0, 3.0, 7.0, 9.0, 100.0)]))
    # steps: 1, 2, 0, 3 then 7 (25 < 81): selected 0, 1, 2, 3, 7, median 2, closest 1, 2, 3 -> 2
    assert sorted(d.index for d in shifted.decisions) == [5, 6]
    assert torch.allclose(shifted.state["w"], torch.tensor([2.0]))


def test_clip_scales_distance_to_tau_times_median() -> None:
    ref = {"w": torch.tensor([0.0, 0.0]), "n": torch.tensor(0)}
    rows = [[3.0, 4.0], [0.0, 1.0], [0.0, 2.0], [30.0, 40.0]]  # distances 5, 1, 2, 50; median 3.5
    out = Aggregator("clip:1")(ups(*rows), ref)
    clipped = [(d.index, d.reason) for d in out.decisions if d.action == "clipped"]
    assert clipped == [(0, "norm 5 > bound 3.5"), (3, "norm 50 > bound 3.5")]
    # clipped mean: (0.7*(3,4)) * 2 + (0,1) + (0,2), over 4
    expected = (2 * torch.tensor([2.1, 2.8]) + torch.tensor([0.0, 3.0])) / 4
    assert torch.allclose(out.state["w"], expected)
    assert int(out.state["n"]) == 15  # integer buffers are averaged, never clipped


def test_clip_combines_with_a_rule_and_reports_both_decisions() -> None:
    ref = {"w": torch.tensor([0.0]), "n": torch.tensor(0)}
    out = Aggregator("clip:2+krum:1")(ups([1.0], [1.0], [1.5], [2.0], [100.0]), ref)
    assert (4, "clipped", "norm 100 > bound 3") in [(d.index, d.action, d.reason) for d in out.decisions]
    assert (4, "rejected") in [(d.index, d.action) for d in out.decisions]
    with pytest.raises(AggregationError, match="clip needs the global state"):
        Aggregator("clip:2")(ups([1.0], [2.0]))


def test_non_finite_updates_are_rejected_before_the_rule() -> None:
    out = Aggregator("median")(ups([1.0], [float("nan")], [3.0], [float("inf")]))
    assert torch.equal(out.state["w"], torch.tensor([2.0]))
    assert [(d.index, d.reason) for d in out.decisions] == [
        (1, "not finite: 1 NaN/Inf values"), (3, "not finite: 1 NaN/Inf values")
    ]
    with pytest.raises(AggregationError, match="every update holds NaN"):
        Aggregator("krum:0")(ups([float("nan")]))


@pytest.mark.parametrize(
    "spec,n,match",
    [
        ("krum:3", 8, "aggregator krum:3 needs at least 2f\\+3 = 9 updates, got 8"),
        ("multikrum:2", 6, "aggregator multikrum:2 needs at least 2f\\+3 = 7 updates, got 6"),
        ("bulyan:2", 10, "aggregator bulyan:2 needs at least 4f\\+3 = 11 updates, got 10"),
        ("multikrum:0,4", 3, "keeps m = 4 of only 3 updates"),
    ],
)
def test_f_too_large_names_the_rule_and_the_counts(spec: str, n: int, match: str) -> None:
    with pytest.raises(AggregationError, match=match):
        Aggregator(spec)(ups(*[[float(i)] for i in range(n)]))


def test_mean_is_the_weighted_mean_without_decisions() -> None:
    updates = ups([0.0, 4.0], [4.0, 8.0], weights=[3, 1])
    out = Aggregator("mean")(updates)
    assert out.decisions == ()
    assert torch.equal(out.state["w"], weighted_average(updates)["w"])


def test_rules_work_on_a_real_model_state_with_float_and_int_buffers() -> None:
    from fedchain.shared.fl.models import build_model

    model = build_model("mnist-cnn", "mnist")
    base = model.state_dict()
    gen = torch.Generator().manual_seed(0)
    updates = [({k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.dtype.is_floating_point else v
                 for k, v in base.items()}, 10) for _ in range(7)]
    for spec in ("median", "trimmed:0.2", "krum:1", "multikrum:1", "bulyan:1", "clip:2+median"):
        state = Aggregator(spec)(updates, base).state
        assert set(state) == set(base)
        assert all(state[k].dtype == base[k].dtype and state[k].shape == base[k].shape for k in base)


# ---- strategy hooks ----------------------------------------------------------


def test_strategy_says_whether_its_aggregator_is_decomposable() -> None:
    assert FedAvg().decomposable and not FedAvg(aggregator="median").decomposable
    updates = ups([1.0], [2.0], [30.0])
    with pytest.raises(ConfigError, match="median is not decomposable"):
        FedAvg(aggregator="median").partial(1, updates)
    assert torch.equal(FedAvg(aggregator="median").aggregate(1, updates)["w"], torch.tensor([2.0]))
    mean = FedAvg().aggregate_with_decisions(1, updates)
    assert mean.decisions == () and torch.allclose(mean.state["w"], torch.tensor([11.0]))
    with pytest.raises(ConfigError, match="unknown rule"):
        FedPer(aggregator="nope")


def test_strategy_checks_updates_and_wraps_rule_errors() -> None:
    from torch import nn

    s = FedPer(aggregator="krum:1", personal_layers=1)
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    s.bind(model)
    base = {k: v for k, v in model.state_dict().items() if k.startswith("0.")}
    with pytest.raises(UpdateRejected, match="round 3: aggregator krum:1 needs at least 2f\\+3 = 5"):
        s.aggregate_with_decisions(3, [(base, 1)] * 4, base)
    with pytest.raises(UpdateRejected, match="holds the wrong tensors: unexpected 1.bias"):
        s.aggregate_with_decisions(3, [(model.state_dict(), 1)] * 5, base)
    out = s.aggregate_with_decisions(3, [(base, 1)] * 5, base)
    assert set(out.state) == set(base)  # FedPer: only the base is aggregated
