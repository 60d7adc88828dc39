"""The federated-learning core, used by the simulation and by the networked nodes alike.

Modules, in the order a round uses them:

* ``models``     -- ``build_model(name, dataset)`` (a name or a factory spec
  ``package.module:factory``, given the dataset's classes and input shape);
  ``initial_model(settings)`` is the run's initial global model:
  ``torch.manual_seed(settings.seed)`` then ``build_model``. Every engine starts from it.
* ``data``       -- datasets on disk (or a custom loader, ``loaders``) ->
  ``load_federated(settings)`` / ``load_client(settings, i)`` (the same share i in both);
  ``dataset_info`` gives the classes and input shape; ``partition`` holds the iid /
  dirichlet / pathological splits.
* ``specs``      -- ``package.module:attribute`` specs of ``--model``, ``--dataset`` and
  ``--algorithm`` (your own code), imported and checked, refused in one line.
* ``split``      -- FedPer's base/head split of any ``nn.Module`` (``head_keys``, ``base_keys``).
* ``client``     -- ``LocalClient``: ``set_shared`` -> ``fit(round)`` -> (shared update, result);
  the head never leaves it. Training seeds come from ``seeding.round_seed(seed, round, i)``.
* ``strategy``   -- ``FedAvg`` / ``FedPer`` (or yours: a registered name or a spec): the one
  place that decides the shared keys
  (``shared_keys`` / ``bind``), checks updates (``check_update``, ``check_state``) and
  aggregates them in two composable steps: ``partial(round, updates)`` -> float64
  weighted sums + total weight (``aggregate.Partial``), ``finish(round, partials)`` ->
  the new shared state; ``aggregate`` = ``finish([partial(updates)])``. Weights are
  training sample counts.
* ``robust``     -- the aggregation rules beside the mean (median, trimmed mean, Krum,
  Multi-Krum, Bulyan, the ``clip:τ`` norm bound; ``robust_spec`` parses their names):
  ``Aggregator(spec)(updates, global_shared)`` -> ``Aggregation`` (state + ``Decision`` list);
  the strategy runs them over the full list of updates (``aggregate_with_decisions``).
* ``attacks``    -- poisoning attacks for experiments (``AttackPlan``: who attacks, how).
* ``training``   -- ``train_local`` / ``evaluate`` (SGD, cross-entropy).
* ``simulation`` -- ``run_simulation(settings)``: all clients in one process.
* ``seed_api``   -- the seed project's ``Server`` / ``Client`` / ``start_train()`` usage.
* ``api``        -- ``fedchain.simulate(...)``: the simulation from Python (docs/custom.md).

A networked engine that wants the simulation's numbers does the same steps with the same
inputs: initial model from ``initial_model``, client i's data from ``load_client``,
client selection from ``random.Random(seeding.selection_seed(seed, round))`` passed to
``Strategy.select_clients`` over the sorted client indices, ``LocalClient.fit(round)``,
``Strategy.aggregate`` over the updates in client-index order -- or, split over several
aggregators, ``Strategy.partial`` on each group and ``Strategy.finish`` over the partials,
which gives the same state up to float32 rounding (the network: super nodes send their
partials as float64 safetensors, the entry finishes).
"""
