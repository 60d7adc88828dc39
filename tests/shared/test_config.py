"""Settings: precedence, the seed's aliases and defaults, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedchain.shared.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in an empty directory (no .env) with no FEDCHAIN_* settings in the environment."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("FEDCHAIN_") and not name.upper().startswith("FEDCHAIN_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_seeds() -> None:
    s = load_settings()
    assert (s.clients, s.local_epochs, s.rounds, s.lr, s.batch_size) == (10, 2, 20, 0.01, 64)
    assert s.algorithm == "fedper" and s.personal_layers == 1 and s.train_fraction == 0.75


def test_precedence_defaults_file_env_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"clients": 4, "rounds": 3, "lr": 0.2, "batch_size": 16}))
    s = load_settings(cfg)
    assert (s.clients, s.rounds, s.lr, s.batch_size) == (4, 3, 0.2, 16)
    (tmp_path / ".env").write_text("FEDCHAIN_ROUNDS=7\nFEDCHAIN_LR=0.3\nUNRELATED=x\n")
    s = load_settings(cfg)
    assert (s.clients, s.rounds, s.lr) == (4, 7, 0.3)
    monkeypatch.setenv("FEDCHAIN_LR", "0.4")
    s = load_settings(cfg)
    assert (s.rounds, s.lr) == (7, 0.4)  # the environment beats .env
    s = load_settings(cfg, lr=0.5, clients=None)  # a flag not given (None) overrides nothing
    assert (s.clients, s.rounds, s.lr, s.batch_size) == (4, 7, 0.5, 16)


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_seed_aliases_in_every_file_format(tmp_path: Path, suffix: str) -> None:
    body = {
        ".json": '{"client": {"amount": 6}, "local_epoch": 3, "gobal_epoch": 9, "learn_rate": 0.05,'
        ' "BATCH_SIZE": 32, "local_OpenEval": false, "openEval": false, "dataset": "Fashion-MNIST"}',
        ".yaml": "client.amount: 6\nlocal_epoch: 3\ngobal_epoch: 9\nlearn_rate: 0.05\nBATCH_SIZE: 32\n"
        "local_OpenEval: false\nopenEval: false\ndataset: fmnist\n",
        ".toml": 'local_epoch = 3\ngobal_epoch = 9\nlearn_rate = 0.05\nBATCH_SIZE = 32\n'
        'local_OpenEval = false\nopenEval = false\ndataset = "fmnist"\n[client]\namount = 6\n',
    }[suffix]
    cfg = tmp_path / f"seed{suffix}"
    cfg.write_text(body)
    s = load_settings(cfg)
    assert (s.clients, s.local_epochs, s.rounds, s.lr, s.batch_size) == (6, 3, 9, 0.05, 32)
    assert s.local_eval is False and s.eval is False and s.dataset == "fmnist"


def test_aliases_in_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDCHAIN_LEARN_RATE", "0.07")
    monkeypatch.setenv("FEDCHAIN_CLIENT_AMOUNT", "3")
    monkeypatch.setenv("FEDCHAIN_TEST_SOMETHING", "ignored")
    s = load_settings(**{"gobal_epoch": 4, "data-dir": "/tmp/x"})
    assert (s.lr, s.clients, s.rounds, str(s.data_dir)) == (0.07, 3, 4, "/tmp/x")
    assert Settings().lr == 0.07  # direct construction reads the same variables


@pytest.mark.parametrize(
    "content,suffix,match",
    [
        ('{"bogus": 1}', ".json", "unknown key 'bogus'"),
        ('{"clients": 0}', ".json", "invalid value for 'clients'"),
        ('{"lr": "fast"}', ".json", "invalid value for 'lr'"),
        ('{"partition": "sorted"}', ".json", "invalid value for 'partition'"),
        ("{not json", ".json", "is not valid json"),
        ("[1, 2]", ".yaml", "must hold a mapping"),
        ('{"partition": "pathological", "classes_per_client": 11}', ".json", "classes_per_client"),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, content: str, suffix: str, match: str) -> None:
    cfg = tmp_path / f"bad{suffix}"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=match) as err:
        load_settings(cfg)
    assert "\n" not in str(err.value)


def test_bad_flag_env_and_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        load_settings(colour="red")
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.setenv("FEDCHAIN_BATCH_SIZE", "lots")
    with pytest.raises(ConfigError, match="FEDCHAIN_BATCH_SIZE \\(environment\\): invalid value for 'batch_size'"):
        load_settings()


def test_an_unknown_name_in_dotenv_is_refused_naming_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OTHER_TOOL=1\nFEDCHAIN_ROUND=3\n")
    with pytest.raises(
        ConfigError, match=r"^\.env: unknown setting FEDCHAIN_ROUND \(did you mean FEDCHAIN_ROUNDS\?\)$"
    ):
        load_settings()
    with pytest.raises(ConfigError, match="FEDCHAIN_ROUND"):
        Settings()  # direct construction refuses it too
    (tmp_path / ".env").write_text("OTHER_TOOL=1\nfedchain_rounds=3\nFEDCHAIN_MAX_SAMPLES=\n")
    s = load_settings()  # names in any case; an empty value leaves the default
    assert s.rounds == 3 and s.max_samples is None


def test_unknown_fedchain_names_in_the_environment_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDCHAIN_TEST_ANYTHING", "x")
    monkeypatch.setenv("FEDCHAIN_ROUND", "3")
    assert load_settings().rounds == 20


def test_a_bad_value_names_where_it_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("client.amount: 0\n")
    with pytest.raises(ConfigError, match=r"^.*run\.yaml: invalid value for 'clients'"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match=r"^invalid value for '--client-fraction'"):
        load_settings(client_fraction=2)
    (tmp_path / ".env").write_text("FEDCHAIN_LR=fast\n")
    with pytest.raises(ConfigError, match=r"^FEDCHAIN_LR \(\.env\): invalid value for 'lr'"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [("FEDCHAIN_TORCH_THREADS", "3", 3), ("FEDCHAIN_LOG_LEVEL", "debug", "DEBUG"), ("FEDCHAIN_HOME", "/h", Path("/h"))],
)
def test_process_variables_are_settings(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), variable.removeprefix("FEDCHAIN_").lower()) == expected


@pytest.mark.parametrize(("variable", "value"), [("FEDCHAIN_TORCH_THREADS", "0"), ("FEDCHAIN_LOG_LEVEL", "loud")])
def test_bad_process_variables_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^{variable} \\(environment\\): invalid value"):
        load_settings()


def test_the_federation_fields_are_the_learning_settings_that_travel() -> None:
    from fedchain.shared.config import FEDERATION_FIELDS, LEARNING_FIELDS
    from fedchain.shared.net.federation import FL_FIELDS, apply_fl_config, fl_config

    assert FL_FIELDS == FEDERATION_FIELDS
    assert {"lr", "momentum", "personal_layers", "client_fraction", "seed", "eval"} <= set(FEDERATION_FIELDS)
    assert not {"port", "state_dir", "sn_join_token", "api_token", "data_dir", "rounds", "torch_threads"} & set(
        FEDERATION_FIELDS
    )
    assert set(LEARNING_FIELDS) == set(FEDERATION_FIELDS) | {"rounds", "data_dir", "download"}
    entry = load_settings(lr=0.3, momentum=0.5, personal_layers=2, port=9000, eval=False)
    node = apply_fl_config(load_settings(port=7000, data_dir="/d"), fl_config(entry))
    assert (node.lr, node.momentum, node.personal_layers, node.eval) == (0.3, 0.5, 2, False)
    assert (node.port, str(node.data_dir)) == (7000, "/d")  # node-local settings stay the node's


def test_settings_to_flags_round_trip_through_load_settings() -> None:
    from fedchain.shared.config import FEDERATION_FIELDS, settings_to_flags

    s = load_settings(lr=0.125, local_eval=False, max_samples=100, partition="dirichlet", alpha=0.25)
    flags = settings_to_flags(s, FEDERATION_FIELDS)
    assert "--no-local-eval" in flags and "--eval" in flags
    assert flags[flags.index("--lr") + 1] == "0.125"
    assert "--max-samples" in settings_to_flags(s, ["max_samples"])
    assert settings_to_flags(load_settings(), ["max_samples"]) == []  # None is left out


def test_an_edge_node_does_not_default_to_the_entrys_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDCHAIN_PORT", raising=False)
    entry, edge = Settings(nt="SN"), Settings(nt="EN")
    assert (entry.port, entry.effective_http_port) == (8080, 9080)
    assert (edge.port, edge.effective_http_port) == (8081, 9081)
    assert Settings(nt="EN", port=8080).port == 8080  # a port given is kept
    monkeypatch.setenv("FEDCHAIN_PORT", "7001")
    assert Settings(nt="EN").port == 7001
