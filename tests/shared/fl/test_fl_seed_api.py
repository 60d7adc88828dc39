"""The seed's usage: Server(), add_client(Client(...)) x N, start_train() per global epoch."""

from __future__ import annotations

import pytest

from fedchain.shared.config import ConfigError, load_settings
from fedchain.shared.fl.data import load_client
from fedchain.shared.fl.seed_api import Client, Server
from fedchain.shared.fl.simulation import run_simulation


def test_seed_loop_matches_run_simulation() -> None:
    opts = dict(dataset="mnist-sample", max_samples=800, gobal_epoch=2, local_epoch=1, learn_rate=0.05, BATCH_SIZE=32)
    server = Server(**{"client.amount": 4}, **opts)
    assert server.settings.clients == 4 and server.settings.rounds == 2
    for i in range(4):
        server.add_client(Client(i))
    for _ in range(server.settings.rounds):
        server.start_train()
    hist = server.history
    assert [r.round for r in hist] == [1, 2]
    assert all(r.accuracy is not None and 0 < r.accuracy <= 1 for r in hist)
    reference = run_simulation(server.settings)
    assert [r.accuracy for r in reference.rounds] == [r.accuracy for r in hist]
    assert server.result().label_counts == reference.label_counts


def test_seed_client_without_index_takes_the_next_partition() -> None:
    server = Server(dataset="mnist-sample", clients=3, max_samples=300)
    server.add_client(Client())
    server.add_client(Client())
    assert [c.index for c in server.clients] == [0, 1]
    own = load_client(server.settings, 2)
    server.add_client(Client(data=own))
    with pytest.raises(ConfigError, match="already registered"):
        server.add_client(Client(2))
    with pytest.raises(ConfigError, match="outside"):
        server.add_client(Client(7))


def test_seed_server_without_clients_says_so() -> None:
    server = Server(load_settings(dataset="mnist-sample"))
    with pytest.raises(ConfigError, match="no clients"):
        server.start_train()


def test_a_client_joining_late_starts_from_the_initial_head() -> None:
    import torch

    from fedchain.shared.fl.data import load_federated
    from fedchain.shared.fl.simulation import Simulation

    s = load_settings(dataset="mnist-sample", clients=3, max_samples=300, local_epochs=1, lr=0.1)
    shares = load_federated(s)
    sim = Simulation(s)
    initial_head = sim.global_state["fc.weight"].clone()
    sim.add_client(shares[0])
    sim.add_client(shares[1])
    sim.run_round(evaluate=False)
    late = sim.add_client(shares[2])
    assert torch.equal(late.personal_state()["fc.weight"], initial_head)
    assert not torch.equal(sim.clients[0].personal_state()["fc.weight"], initial_head)
    base = {k: v for k, v in late.model.state_dict().items() if k in late.shared_keys}
    assert all(torch.equal(base[k], sim.global_state[k]) for k in base)
