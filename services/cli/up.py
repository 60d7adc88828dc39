"""`fedchain up`: a whole federation on this machine in one command; `fedchain down` stops one left up.

`up` starts the ledger (SQLite in --state-dir, or MySQL with --db-url), the entry M-SN on
--port (HTTP --port+1000), --sns super nodes and --ens edge nodes as child processes,
trains --rounds rounds while printing each round, verifies the chain, saves the model,
and stops every child (also on Ctrl-C). With --keep the network stays up for the console.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer

from fedchain.services.cli.options import SettingsFlags, settings_options
from fedchain.services.cli.run_tokens import token_env, with_run_tokens, write_tokens
from fedchain.shared.config import (
    FEDERATION_FIELDS,
    ConfigError,
    Settings,
    load_settings,
    settings_to_flags,
)

UP_DEFAULTS: dict[str, Any] = {"local_epochs": 1, "lr": 0.05}
START_TIMEOUT = 180.0


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(token_env(settings))  # the run's tokens: environment only, never argv
    env.update(
        FEDCHAIN_HEARTBEAT_INTERVAL=str(settings.heartbeat_interval),
        FEDCHAIN_HEARTBEAT_TIMEOUT=str(settings.heartbeat_timeout),
        FEDCHAIN_ROUND_TIMEOUT=str(settings.round_timeout),
        FEDCHAIN_QUORUM=str(settings.quorum),
        FEDCHAIN_MAX_MESSAGE_MB=str(settings.max_message_mb),
        FEDCHAIN_CHUNK_KB=str(settings.chunk_kb),
        FEDCHAIN_DATA_DIR=str(Path(settings.data_dir).resolve()),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("FEDCHAIN_TORCH_THREADS", "1")
    for name in ("tls_cert", "tls_key", "tls_ca"):
        value = getattr(settings, name)
        if value is not None:
            env[f"FEDCHAIN_{name.upper()}"] = str(Path(value).resolve())
    return env


def _fl_flags(settings: Settings) -> list[str]:
    """The federation's settings as flags for the entry child (it sends them to every node)."""
    return settings_to_flags(settings, FEDERATION_FIELDS)


class UpRun:
    """One `fedchain up`: start, train, report, stop."""

    def __init__(self, settings: Settings, sns: int, ens: int, rounds: int, keep: bool) -> None:
        from rich.console import Console

        from fedchain.services.sn.launcher import Network

        self.settings = settings
        self.sns, self.ens, self.rounds, self.keep = sns, ens, rounds, keep
        self.state_dir = Path(settings.state_dir).resolve()
        self.console = Console(highlight=False, soft_wrap=True)
        self.net = Network(self.state_dir, _child_env(settings))
        self.entry_http = f"http://127.0.0.1:{settings.effective_http_port}"
        self.headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}

    def start(self) -> None:
        from fedchain.services.sn.launcher import free_port

        s, sd = self.settings, self.state_dir
        lport, lhttp = free_port(), free_port()
        say = self.console.print
        db = s.db_url or f"sqlite:///{sd / 'ledger' / 'ledger.db'}"
        ledger_args = ["ledger", "--state-dir", str(sd / "ledger"), "--port", str(lport), "--http-port", str(lhttp)]
        if s.db_url:
            ledger_args += ["--db-url", s.db_url]
        say(f"[bold]fedchain up[/]: {self.sns} SNs, {self.ens} ENs, {self.rounds} rounds of {s.algorithm} "
            f"on {s.dataset} (state in {sd})")
        say(f"  tokens      {write_tokens(sd, s)} (mode 0600; FEDCHAIN_API_TOKEN there drives the console)")
        ledger = self.net.start("ledger", ledger_args, lport, lhttp)
        self.net.wait_http(ledger, START_TIMEOUT)
        say(f"  ledger      127.0.0.1:{lport}  ({_redact(db)})")
        common = ["--host", "127.0.0.1"]
        entry = self.net.start(
            "entry",
            ["node", "--nt", "SN", "-z", "--port", str(s.port), "--http-port", str(s.effective_http_port),
             "--ledger", f"127.0.0.1:{lport}", "--state-dir", str(sd / "entry"), *common, *_fl_flags(s)],
            s.port, s.effective_http_port,
        )
        self.net.wait_http(entry, START_TIMEOUT)
        say(f"  entry M-SN  127.0.0.1:{s.port}  (HTTP {s.effective_http_port})")
        entry_addr = f"127.0.0.1:{s.port}"
        for i in range(1, self.sns + 1):
            g, h = free_port(), free_port()
            self.net.start(
                f"sn-{i}",
                ["node", "--nt", "SN", "--entry", entry_addr, "--port", str(g), "--http-port", str(h),
                 "--state-dir", str(sd / f"sn-{i}"), *common],
                g, h,
            )
        if self.sns:
            self._wait_status(lambda st: st["sns"] >= 1 + self.sns, f"{self.sns} super nodes to join")
            say(f"  {self.sns} super node(s) joined")
        for i in range(1, self.ens + 1):
            g, h = free_port(), free_port()
            self.net.start(
                f"en-{i}",
                ["node", "--nt", "EN", "--entry", entry_addr, "--port", str(g), "--http-port", str(h),
                 "--state-dir", str(sd / f"en-{i}"), *common],
                g, h,
            )
        self._wait_status(lambda st: st["ens"] >= self.ens, f"{self.ens} edge nodes to load their data and join")
        say(f"  {self.ens} edge node(s) joined")

    def _get(self, path: str, **kw: Any) -> Any:
        import httpx

        r = httpx.get(self.entry_http + path, timeout=30, **kw)
        if r.status_code >= 400:
            raise ConfigError(f"GET {path}: {r.json().get('detail', r.text)}")
        return r.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        import httpx

        r = httpx.post(self.entry_http + path, json=body, headers=self.headers, timeout=120)
        if r.status_code >= 400:
            raise ConfigError(f"POST {path}: {r.json().get('detail', r.text)}")
        return r.json()

    def _wait_status(self, ok: Any, what: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.net.check_alive()
            try:
                st = self._get("/status")
                if ok(st):
                    return st
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ConfigError(f"timed out after {timeout:.0f} s waiting for {what}; logs are in {self.state_dir / 'logs'}")

    def train(self) -> None:
        from rich.table import Table

        started = self._post("/train", {"rounds": self.rounds, "algorithm": self.settings.algorithm})
        first, target = started["start_round"], started["target_round"]
        self.console.print(f"training rounds {first}..{target}")
        shown: set[int] = set()
        t0 = time.monotonic()
        budget = (self.settings.round_timeout + 60) * self.rounds
        table = Table("round", "accuracy", "loss", "participants", "rejected", "height", "seconds")
        while True:
            self.net.check_alive()
            st = self._get("/status")
            for r in self._get("/rounds"):
                if r["round"] >= first and r["round"] not in shown:
                    shown.add(r["round"])
                    acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
                    loss = "-" if r["loss"] is None else f"{r['loss']:.4f}"
                    row = [str(r["round"]), acc, loss, str(len(r["participants"])), str(len(r["rejected"])),
                           str(r["height"]), f"{r['seconds']:.1f}"]
                    table.add_row(*row)
                    self.console.print(
                        f"  round {r['round']}/{target}: accuracy {acc}, {len(r['participants'])} participants, "
                        f"{len(r['rejected'])} rejected, block height {r['height']} ({r['seconds']:.1f} s)"
                    )
            if st["round"] >= target and st["state"] != "training":
                break
            if st["state"] == "idle" and st["round"] < target:
                raise ConfigError(f"training stopped early: {st.get('error') or 'see the entry log'}")
            if time.monotonic() - t0 > budget:
                raise ConfigError(f"training did not finish within {budget:.0f} s")
            time.sleep(0.5)
        self.console.print(table)

    def report(self) -> None:
        v = self._get("/verify")
        if v["ok"]:
            self.console.print(f"chain verified: {v['checked']} blocks, tip height {v['height']}")
        else:
            raise ConfigError(f"chain verification FAILED at height {v['height']}: {v['reason']}")
        saved = self._post("/save", {"name": "model"})  # under the entry's models folder
        s = self.settings
        chain = _redact(s.db_url) if s.db_url else str(self.state_dir / "ledger" / "ledger.db")
        self.console.print(f"model   v{saved['version']} -> {saved['path']} (sha256 {saved['digest'][:16]}…)")
        self.console.print(f"chain   {chain} (blobs in {self.state_dir / 'ledger' / 'blobs'})")
        self.console.print(f"verify  fedchain verify --state-dir {self.state_dir / 'ledger'}" if not s.db_url
                           else "verify  fedchain verify --db-url URL --blobs " + str(self.state_dir / "ledger" / "blobs"))

    def stop(self) -> None:
        self.console.print("stopping the network…")
        self.net.stop()


def _redact(url: str) -> str:
    from fedchain.services.ledger.store import redact

    return redact(url)


UP_LEARNING_FIELDS: tuple[str, ...] = ("rounds", "data_dir", *FEDERATION_FIELDS)
"""`up`'s learning options (``download`` is left out: the EN children would not see it)."""


@settings_options(
    UP_LEARNING_FIELDS,
    shown_defaults={"rounds": "3", "clients": "--ens", **{k: str(v) for k, v in UP_DEFAULTS.items()}},
)
def up(
    *,
    sns: int = typer.Option(2, "--sns", min=0, max=64, help="super nodes besides the entry"),
    ens: int = typer.Option(4, "--ens", min=1, max=256, help="edge nodes (one data partition each)"),
    port: int | None = typer.Option(None, help="entry gRPC port (default 8080; HTTP is port+1000)"),
    http_port: int | None = typer.Option(None, help="entry HTTP port (default port+1000)"),
    state_dir: Path | None = typer.Option(None, help="where everything is kept (default ./.fedchain)"),
    db_url: str | None = typer.Option(None, help="MySQL URL for the chain (default SQLite in the state dir)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="config file (JSON, YAML or TOML)"),
    learning: SettingsFlags,
    keep: bool = typer.Option(False, "--keep", help="leave the network running for the console"),
) -> None:
    """Start a whole local federation, train, verify the chain, and stop (or --keep it running)."""
    flags: dict[str, Any] = {
        "port": port, "http_port": http_port, "state_dir": state_dir, "db_url": db_url, "clients": ens,
        **learning,  # --clients, when given, beats --ens
    }
    settings = load_settings(config, **flags)
    extra = {k: v for k, v in UP_DEFAULTS.items() if k not in settings.model_fields_set}
    if "rounds" not in settings.model_fields_set:
        extra["rounds"] = 3
    if extra:
        settings = Settings(**{**settings.model_dump(), **extra})
    settings = with_run_tokens(settings)  # generated for every token not set
    from fedchain.services.sn.launcher import port_is_free, read_network

    sd = Path(settings.state_dir).resolve()
    running = [c for c in read_network(sd) if _alive(c.pid)]
    if running:
        raise ConfigError(f"a network is already running from {sd}; stop it with: fedchain down --state-dir {sd}")
    for p in (settings.port, settings.effective_http_port):
        if not port_is_free(p):
            raise ConfigError(f"port {p} is in use; stop what uses it or pass --port")
    run = UpRun(settings, sns, ens, settings.rounds, keep)
    code = 0
    try:
        run.start()
        run.train()
        run.report()
    except KeyboardInterrupt:
        run.console.print("interrupted")
        code = 130
        run.keep = False
    except ConfigError as exc:
        typer.echo(f"fedchain: error: {exc}", err=True)
        code = 1
        run.keep = False
    finally:
        if run.keep:
            run.console.print(
                f"\nthe network is up. Connect:  fedchain console --ip 127.0.0.1 --port {settings.effective_http_port}\n"
                f"Stop it:     fedchain down --state-dir {sd}\nLogs:        {sd / 'logs'}"
            )
        else:
            try:
                run.stop()
            except KeyboardInterrupt:
                run.net.stop(timeout=2)
    if code:
        raise typer.Exit(code)


def _alive(pid: int) -> bool:
    from fedchain.services.sn.launcher import is_fedchain_process, pid_alive

    return pid_alive(pid) and is_fedchain_process(pid)


def down(
    state_dir: Path | None = typer.Option(None, help="state dir of the network (default ./.fedchain)"),
) -> None:
    """Stop a network started with `fedchain up --keep`."""
    from fedchain.services.sn.launcher import PIDS_FILE, read_network, stop_children

    sd = Path(state_dir or load_settings(None).state_dir).resolve()
    children = read_network(sd)
    if not children:
        raise ConfigError(f"no network recorded in {sd} (nothing to stop)")
    alive = [c for c in children if _alive(c.pid)]
    killed = stop_children(alive, 15.0)
    (sd / PIDS_FILE).unlink(missing_ok=True)
    note = f" ({', '.join(killed)} needed SIGKILL)" if killed else ""
    print(f"stopped {len(alive)} processes from {sd}{note}")


def register(app: typer.Typer) -> None:
    """Add ``fedchain up`` and ``fedchain down``."""
    app.command("up")(up)
    app.command("down")(down)
