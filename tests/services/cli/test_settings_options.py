"""The learning options of `simulate`, `up` and `node` come from the Settings fields."""

from __future__ import annotations

import typer

from fedchain.services.cli.main import app
from fedchain.shared.config import FEDERATION_FIELDS, LEARNING_FIELDS, flag_name, load_settings, settings_to_flags
from fedchain.shared.net.federation import fl_config


def _command(name: str) -> typer.main.TyperCommand:
    group = typer.main.get_command(app)
    return group.commands[name]  # type: ignore[attr-defined, no-any-return]


def _flags(name: str) -> set[str]:
    return {opt for p in _command(name).params for opt in (*p.opts, *p.secondary_opts)}


def test_every_command_offers_the_same_learning_flags() -> None:
    expected = {flag_name(f) for f in LEARNING_FIELDS}
    assert expected <= _flags("simulate")
    assert expected - {"--rounds"} <= _flags("node")
    assert expected - {"--download"} <= _flags("up")
    for command in ("simulate", "node", "up"):
        assert {"--no-eval", "--no-local-eval", "--momentum", "--personal-layers", "--client-fraction"} <= _flags(
            command
        )


def test_help_shows_the_settings_description_and_default() -> None:
    by_name = {p.name: p for p in _command("node").params}
    momentum = by_name["momentum"]
    assert momentum.help == "SGD momentum (0: plain SGD)" and momentum.show_default == "0.0"
    assert {p.name: p for p in _command("up").params}["lr"].show_default == "0.05"  # up's own default


def test_what_up_passes_to_the_entry_the_node_command_reads_back() -> None:
    entry = load_settings(lr=0.125, momentum=0.5, personal_layers=2, client_fraction=0.5, local_eval=False,
                          max_samples=200, partition="pathological", classes_per_client=3)
    args = ["--nt", "SN", *settings_to_flags(entry, FEDERATION_FIELDS)]
    ctx = _command("node").make_context("node", args)
    parsed = {k: v for k, v in ctx.params.items() if k in FEDERATION_FIELDS}
    assert load_settings(**parsed).model_dump(include=set(FEDERATION_FIELDS)) == fl_config(entry)
