"""Your own model, dataset and strategy: specs, the loader interface, the registry, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedchain.shared.config import ConfigError, Settings, load_settings
from fedchain.shared.fl import data as D
from fedchain.shared.fl.engine import EngineOptions
from fedchain.shared.fl.models import build_model, initial_model
from fedchain.shared.fl.simulation import Simulation, run_simulation
from fedchain.shared.fl.specs import SpecError, spec_of
from fedchain.shared.fl.strategy import STRATEGIES, FedPer, register_strategy, strategy_from_settings
from fedchain.shared.net.federation import apply_fl_config
from tests.conftest import isolate_from_fedchain_env
from tests.shared.fl import custom_kit as kit

K = kit.KIT
QUICK = dict(clients=3, rounds=2, local_epochs=1, batch_size=32, lr=0.05, device="cpu")


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_fedchain_env(monkeypatch, tmp_path)


def test_custom_model_trains_and_fedper_keeps_its_head_personal() -> None:
    s = load_settings(model=f"{K}:TinyNet", dataset=f"{K}:blobs", algorithm="fedper", **QUICK)
    with Simulation(s) as sim:
        initial_head = {k: v.clone() for k, v in sim.global_state.items() if k.startswith("head.")}
        assert sorted(initial_head) == ["head.bias", "head.weight"]
        assert not any(k.startswith("head.") for k in sim.shared_keys)  # the head never leaves
        for d in D.load_federated(s):
            sim.add_client(d)
        first = sim.run_round()
        last = sim.run_round()
        heads = [c.personal_state() for c in sim.clients]
    assert last.accuracy is not None and last.accuracy > 0.8 and last.train_loss < first.train_loss
    for k, v in initial_head.items():
        assert torch.equal(sim.global_state[k], v)  # the server never averages a head
        assert not torch.equal(heads[0][k], heads[1][k])  # each client trained its own
    assert sim.global_state["head.weight"].shape == (3, 16)


def test_factory_gets_the_builtin_datasets_classes_and_shape() -> None:
    kit.CALLS.clear()
    model = build_model(f"{K}:TinyNet", "mnist-sample")
    assert kit.CALLS == [(10, (1, 28, 28))]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_custom_loader_of_three_classes_partitions_and_feeds_a_builtin_model() -> None:
    s = load_settings(dataset=f"{K}:squares", model="mnist-cnn", partition="pathological",
                      classes_per_client=2, **QUICK)
    assert D.dataset_info(s.dataset) == D.DatasetInfo(3, (1, 16, 16))
    shares = D.load_federated(s)
    assert all(len(c.label_counts) == 2 and set(c.label_counts) <= {0, 1, 2} for c in shares)
    assert sum(sum(c.label_counts.values()) for c in shares) == 300
    x, _ = shares[0].train.batch(torch.arange(2))  # type: ignore[attr-defined]
    assert x.dtype == torch.float32 and float(x.max()) == pytest.approx((250 / 255 - 0.3) / 0.4)
    assert initial_model(s).fc.out_features == 3  # type: ignore[union-attr]
    result = run_simulation(s.model_copy(update={"partition": "iid"}))
    assert result.final_accuracy is not None and result.final_accuracy > 0.5


def test_custom_strategy_selected_by_spec_is_used() -> None:
    kit.CountingFedPer.updates = 0
    s = load_settings(model=f"{K}:TinyNet", dataset=f"{K}:blobs", algorithm=f"{K}:CountingFedPer", **QUICK)
    assert isinstance(strategy_from_settings(s), kit.CountingFedPer)
    result = run_simulation(s)
    assert kit.CountingFedPer.updates == 6  # 3 clients x 2 rounds through its partial hook
    assert result.algorithm == "counting-fedper"
    other = run_simulation(s.model_copy(update={"algorithm": f"{K}:EveryOther", "rounds": 1}))
    assert other.rounds[0].participants == [0, 2]


def test_registered_strategy_by_name_and_the_strategy_alias() -> None:
    register_strategy(kit.CountingFedPer)
    try:
        assert load_settings(strategy="counting-fedper").algorithm == "counting-fedper"
        assert isinstance(strategy_from_settings(load_settings(algorithm="counting-fedper")), FedPer)
        register_strategy(kit.CountingFedPer)  # the same class again: fine
        with pytest.raises(ConfigError, match="needs a name"):
            register_strategy(kit.NoName)
    finally:
        STRATEGIES.pop("counting-fedper", None)
    assert load_settings(strategy="fedavg").algorithm == "fedavg"
    with pytest.raises(ConfigError, match="unknown algorithm"):
        load_settings(algorithm="counting-fedper")


@pytest.mark.parametrize(
    ("flags", "flag", "reason"),
    [
        ({"model": "nosuch_pkg.nets:Net"}, "--model", "cannot import module 'nosuch_pkg.nets' (No module named"),
        ({"model": f"{K}:Missing"}, "--model", f"module '{K}' has no attribute 'Missing'"),
        ({"model": f"{K}:KIT"}, "--model", "str object is not callable"),
        ({"model": "not a spec:"}, "--model", "not a spec of the form package.module:attribute"),
        ({"dataset": "nosuch_pkg:load"}, "--dataset", "cannot import module 'nosuch_pkg'"),
        ({"dataset": f"{K}:nothing"}, "--dataset", f"module '{K}' has no attribute 'nothing'"),
        ({"algorithm": "nosuch_pkg:S"}, "--algorithm", "cannot import module 'nosuch_pkg'"),
        ({"algorithm": f"{K}:TinyNet"}, "--algorithm", "TinyNet is not a subclass of fedchain.shared.fl.strategy"),
        ({"strategy": f"{K}:Nope"}, "--algorithm", f"module '{K}' has no attribute 'Nope'"),
        ({"algorithm": "fedprox"}, "--algorithm", "unknown algorithm (use fedavg, fedper or package.module:Class)"),
    ],
)
def test_a_spec_that_cannot_be_used_is_refused_in_one_line(flags: dict[str, str], flag: str, reason: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(**flags)
    message, value = str(exc.value), next(iter(flags.values()))
    assert message.startswith(f"invalid value for '{flag}': {reason}"), message
    assert message.endswith(f"(got {value!r})") and "\n" not in message


def test_a_bad_spec_from_a_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('strategy = "nosuch_pkg:S"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^.*run\.toml: invalid value for 'algorithm': cannot import"):
        load_settings(config)


@pytest.mark.parametrize(
    ("model", "dataset", "message"),
    [
        (f"{K}:not_a_model", "mnist-sample",
         f"--model '{K}:not_a_model': the factory returned str, not a torch.nn.Module"),
        ("auto", f"{K}:not_a_dataset", f"--dataset '{K}:not_a_dataset': the loader returned list, not a CustomDataset"),
        ("auto", f"{K}:bad_labels", f"--dataset '{K}:bad_labels': labels must lie in 0..2"),
        ("auto", f"{K}:failing_loader",
         f"--dataset '{K}:failing_loader': the loader raised FileNotFoundError: no data"),
        ("mnist-cnn", f"{K}:blobs", "--model mnist-cnn needs square images (C, H, H)"),
    ],
)
def test_a_factory_or_loader_returning_the_wrong_thing_is_refused_before_training(
    model: str, dataset: str, message: str
) -> None:
    s = load_settings(model=model, dataset=dataset, **QUICK)  # the names import: accepted here
    with pytest.raises(SpecError if "needs square" not in message else ConfigError) as exc:
        run_simulation(s)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_an_edge_node_refuses_a_federation_model_it_cannot_import() -> None:
    with pytest.raises(ConfigError) as exc:
        apply_fl_config(Settings(), {"model": "entry_only_pkg.nets:Net", "clients": 3})
    assert str(exc.value) == (
        "the entry sent a federation config this node cannot use: model 'entry_only_pkg.nets:Net': "
        "cannot import module 'entry_only_pkg.nets' (No module named 'entry_only_pkg')"
    )
    adopted = apply_fl_config(Settings(), {"model": f"{K}:TinyNet", "algorithm": f"{K}:CountingFedPer"})
    assert adopted.model == f"{K}:TinyNet" and adopted.algorithm == f"{K}:CountingFedPer"


def test_worker_processes_train_a_custom_model_and_dataset_as_the_serial_loop() -> None:
    s = load_settings(dataset=f"{K}:blobs", model=f"{K}:TinyNet", torch_threads=1, **QUICK)
    serial = run_simulation(s, engine=EngineOptions(workers=0))
    parallel = run_simulation(s, engine=EngineOptions(workers=2))  # 1 thread each, as the serial loop
    assert [r.accuracy for r in parallel.rounds] == [r.accuracy for r in serial.rounds]
    assert [r.loss for r in parallel.rounds] == [r.loss for r in serial.rounds]


def test_spec_of_names_top_level_objects_only() -> None:
    assert spec_of(kit.TinyNet) == f"{K}:TinyNet"

    def local() -> None: ...

    with pytest.raises(SpecError, match="no importable name"):
        spec_of(local)


def test_the_cli_takes_specs_and_refuses_a_bad_one_before_starting() -> None:
    from typer.testing import CliRunner

    from fedchain.services.cli.main import app

    runner = CliRunner()
    args = ["simulate", "--clients", "3", "--rounds", "1", "--local-epochs", "1", "--threads", "1",
            "--device", "cpu", "--model", f"{K}:TinyNet", "--dataset", f"{K}:blobs"]
    ok = runner.invoke(app, [*args, "--strategy", f"{K}:CountingFedPer"])
    assert ok.exit_code == 0, ok.output
    assert "final accuracy" in ok.output
    bad = runner.invoke(app, [*args, "--strategy", f"{K}:TinyNet"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        f"fedchain simulate: invalid value for '--algorithm': TinyNet is not a subclass of "
        f"fedchain.shared.fl.strategy.Strategy (got '{K}:TinyNet')"
    ]
