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
