"""LocalClient: what leaves it, what it keeps, and that its training is reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedchain.shared import tensors
from fedchain.shared.config import load_settings
from fedchain.shared.fl.client import LocalClient
from fedchain.shared.fl.data import load_federated
from fedchain.shared.fl.models import initial_model

SETTINGS = dict(dataset="mnist-sample", clients=10, max_samples=600, local_epochs=1, batch_size=32, lr=0.05)


def _clients(algorithm: str, shared_model: bool = True) -> list[LocalClient]:
    s = load_settings(algorithm=algorithm, **SETTINGS)
    data = load_federated(s)[:2]
    model = initial_model(s)
    return [LocalClient(s, d, model if shared_model else initial_model(s)) for d in data]


def test_fedper_update_never_holds_the_head() -> None:
    client = _clients("fedper")[0]
    update, result = client.fit(1)
    assert "fc.weight" not in update and "fc.bias" not in update
    assert set(update) == set(client.shared_keys)
    assert result.samples == len(client.data.train) and result.loss > 0
    assert set(client.personal_state()) == {"fc.weight", "fc.bias"}


def test_fedavg_update_is_the_whole_model() -> None:
    client = _clients("fedavg")[0]
    update, _ = client.fit(1)
    assert set(update) == set(client.model.state_dict())
    assert client.personal_state() == {}


def test_heads_stay_personal_when_clients_share_one_model_object() -> None:
    a, b = _clients("fedper", shared_model=True)
    a.fit(1)
    b.fit(1)
    head_a, head_b = a.personal_state(), b.personal_state()
    assert not torch.equal(head_a["fc.weight"], head_b["fc.weight"])
    a.evaluate()  # loads a's head into the shared model object
    assert torch.equal(a.model.state_dict()["fc.weight"], head_a["fc.weight"])
    b.set_shared({k: v for k, v in a.model.state_dict().items() if k in b.shared_keys})
    assert torch.equal(b.personal_state()["fc.weight"], head_b["fc.weight"])


def test_same_round_same_update_whatever_the_model_object() -> None:
    one = _clients("fedper", shared_model=True)[0]
    other = _clients("fedper", shared_model=False)[0]
    u1, r1 = one.fit(3)
    u2, r2 = other.fit(3)
    assert r1.loss == r2.loss
    assert all(torch.equal(u1[k], u2[k]) for k in u1)
    u3, _ = _clients("fedper")[0].fit(4)  # another round: another batch order
    assert not torch.equal(u1["conv1.0.weight"], u3["conv1.0.weight"])


def test_set_shared_refuses_wrong_tensors() -> None:
    client = _clients("fedper")[0]
    state = client.model.state_dict()
    good = {k: state[k] for k in client.shared_keys}
    with pytest.raises(ValueError, match="unexpected fc.weight"):
        client.set_shared(dict(good, **{"fc.weight": state["fc.weight"]}))
    with pytest.raises(ValueError, match="missing"):
        client.set_shared({k: v for k, v in good.items() if k != "conv1.0.bias"})
    with pytest.raises(ValueError, match="expected"):
        client.set_shared(dict(good, **{"conv1.0.bias": torch.zeros(3)}))


def test_personal_layers_round_trip_as_safetensors(tmp_path: Path) -> None:
    client = _clients("fedper")[0]
    client.fit(1)
    path = client.save_personal(tmp_path / "head.safetensors")
    saved = tensors.decode(path.read_bytes())
    assert set(saved) == {"fc.weight", "fc.bias"}
    before = client.evaluate()
    fresh = _clients("fedper")[0]
    assert fresh.evaluate().correct != before.correct or fresh.evaluate().loss != before.loss
    fresh.load_personal(path)
    fresh.set_shared({k: v for k, v in client._shared.items()})
    after = fresh.evaluate()
    assert (after.correct, after.total) == (before.correct, before.total)
    (tmp_path / "bad.safetensors").write_bytes(tensors.encode({"fc.weight": torch.zeros(2, 2)}))
    with pytest.raises(tensors.TensorError):
        fresh.load_personal(tmp_path / "bad.safetensors")
