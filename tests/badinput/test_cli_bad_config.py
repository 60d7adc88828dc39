"""Malformed config files and flags for `fedchain simulate` and `fedchain node`: exit code 2,
one line on stderr that names the problem, no traceback, nothing started or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.shared.config import ConfigError, Settings, load_settings
from tests.conftest import REPO

NODE = ["node", "--nt", "EN", "--entry", "127.0.0.1:9", "--port", "18000"]

# file name, content, words the message must contain
BAD_FILES: list[tuple[str, bytes, str]] = [
    ("broken.yaml", b"rounds: [1, 2\n", "not valid yaml"),
    ("list.json", b"[1, 2]", "mapping"),
    ("broken.toml", b"rounds = \n", "not valid toml"),
    ("unknown.yaml", b"no_such_key: 3\n", "unknown key 'no_such_key'"),
    ("type.yaml", b"rounds: many\n", "rounds"),
    ("negative.json", b'{"lr": -1}', "lr"),
    ("binary.json", b"\xff\xfe\x00\x01garbage", "cannot be read"),
    ("alias.yaml", b"gobal_epoch: -4\n", "rounds"),
    ("nested.json", b'{"clients": {"amount": "x"}}', "clients"),
]

BAD_FLAGS: list[tuple[list[str], str]] = [
    (["simulate", "--rounds", "0"], "rounds"),
    (["simulate", "--dataset", "imagenet"], "dataset"),
    (["simulate", "--lr", "-0.5"], "lr"),
    (["simulate", "--config", "/nonexistent/fedchain.yaml"], "does not exist"),
    (["node", "--nt", "XX"], "nt"),
    (["node", "--nt", "SN", "-z", "--port", "99999"], "port"),
    (["node", "--nt", "EN"], "--entry"),
    (["node", "--nt", "EN", "-z"], "-z"),
    (["node", "--nt", "SN"], "--entry"),
    (["node", "--nt", "EN", "--entry", "no-port-here"], "entry"),
    (["node", "--nt", "SN", "-z", "--port", "18001", "--http-port", "18001"], "--http-port"),
    (["node", "--nt", "SN", "-z", "--quorum", "1.5"], "quorum"),
    (["node", "--nt", "SN", "-z", "--momentum", "1"], "invalid value for '--momentum'"),
    (["node", "--nt", "EN", "--entry", "127.0.0.1:9", "--personal-layers", "-1"], "'--personal-layers'"),
    (["up", "--client-fraction", "0"], "invalid value for '--client-fraction'"),
    (["up", "--alpha", "0"], "invalid value for '--alpha'"),
    # click parses these before fedchain sees them
    (["simulate", "--rounds", "abc"], "--rounds"),
    (["simulate", "--no-such-flag"], "--no-such-flag"),
    (["node", "--port", "eighty"], "--port"),
]


def run_cli(
    args: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``fedchain ARGS`` in ``cwd`` with a clean FEDCHAIN_* environment (bounded)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "fedchain.services.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def assert_refused(done: subprocess.CompletedProcess[str], words: str) -> None:
    """Exit 2, no traceback, exactly one non-empty stderr line mentioning ``words``."""
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{done.stderr}"
    assert words.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize("command", ["simulate", "node"])
@pytest.mark.parametrize(("name", "content", "words"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
def test_malformed_config_file(tmp_path: Path, command: str, name: str, content: bytes, words: str) -> None:
    (tmp_path / name).write_bytes(content)
    args = (["simulate"] if command == "simulate" else NODE) + ["--config", name]
    assert_refused(run_cli(args, tmp_path), words)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "a refused command left files behind"


@pytest.mark.parametrize("command", ["simulate", "node"])
def test_a_bad_value_in_a_config_file_names_the_file(tmp_path: Path, command: str) -> None:
    (tmp_path / "run.yaml").write_text("gobal_epoch: 0\n")
    args = (["simulate"] if command == "simulate" else NODE) + ["--config", "run.yaml"]
    assert_refused(run_cli(args, tmp_path), "run.yaml: invalid value for 'rounds'")


@pytest.mark.parametrize("command", ["simulate", "node", "up"])
def test_a_typo_in_dotenv_is_refused(tmp_path: Path, command: str) -> None:
    """`FEDCHAIN_ROUND=3` in .env used to run 20 rounds silently."""
    (tmp_path / ".env").write_text("# comment\nOTHER_TOOL=1\nFEDCHAIN_ROUND=3\n")
    args = {"simulate": ["simulate"], "node": NODE, "up": ["up"]}[command]
    assert_refused(run_cli(args, tmp_path), ".env: unknown setting FEDCHAIN_ROUND (did you mean FEDCHAIN_ROUNDS?)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"], "a refused command left files behind"


@pytest.mark.parametrize(("args", "words"), BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags(tmp_path: Path, args: list[str], words: str) -> None:
    assert_refused(run_cli(args, tmp_path), words)
    assert list(tmp_path.iterdir()) == [], "a refused command left files behind"


KEYS = sorted(Settings.model_fields)
scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars, lambda s: st.lists(s, max_size=3) | st.dictionaries(st.text(max_size=6), s, max_size=3), max_leaves=6
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    config=st.dictionaries(
        st.sampled_from(KEYS) | st.text(st.characters(min_codepoint=32), max_size=10), values, max_size=4
    ),
    suffix=st.sampled_from([".json", ".yaml", ".yml", ".toml"]),
)
def test_random_config_files_load_or_raise_config_error(tmp_path: Path, config: dict[str, object], suffix: str) -> None:
    """Whatever a config file holds, loading it gives Settings or a one-line ConfigError, nothing else."""
    path = tmp_path / f"random{suffix}"
    if suffix == ".toml":
        import tomllib

        text = "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in config.items())
        try:
            tomllib.loads(text)
        except (tomllib.TOMLDecodeError, ValueError):
            pass  # invalid TOML is a fine input too
    else:
        text = json.dumps(config, allow_nan=True)
    path.write_text(text, encoding="utf-8")
    try:
        load_settings(path)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip(), repr(message)


def test_unknown_key_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    """A key holding a newline must not split the one-line error (found by the property test above)."""
    path = tmp_path / "newline.json"
    path.write_text(json.dumps({"rounds\nx": 1}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "\n" not in str(info.value), repr(str(info.value))
