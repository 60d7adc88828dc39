"""`fedchain up`: a whole federation on this machine in one command; `fedchain down` stops one left up.

`up` starts the ledger (SQLite in --state-dir, or MySQL with --db-url), the entry M-SN on
--port (HTTP --port+1000), --sns super nodes and --ens edge nodes as child processes,
trains --rounds rounds while printing each round, verifies the chain, saves the model,
and stops every child. SIGINT (Ctrl-C) and SIGTERM are handled alike, however `up` was
started: every child is stopped, `up` says so and exits 130 / 143. Without --keep each
child watches `up` and stops within seconds if `up` itself is killed. With --keep the
network stays up for the console; the children's pids and ports are recorded in
``<state-dir>/network.json`` and `fedchain down` stops them, together with any node or
ledger found running on a state dir inside --state-dir (one restarted by hand, say).
With --tls the run is TLS end to end: `fedchain certs` into ``<state-dir>/certs`` (reused
on the next run), mutual TLS on every gRPC hop with each node enrolled at join, and HTTPS
on every HTTP API; `up` says where the CA is (the console's ``--ca``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from fedchain.services.cli.errors import error_line
from fedchain.services.cli.options import SettingsFlags, settings_options
from fedchain.services.cli.run_tokens import token_env, with_run_tokens, write_tokens
from fedchain.shared import processes
from fedchain.shared.config import (
    FEDERATION_FIELDS,
    ConfigError,
    Settings,
    load_settings,
    settings_to_flags,
)
from fedchain.shared.node.process import load_key

UP_DEFAULTS: dict[str, Any] = {"local_epochs": 1, "lr": 0.05}
START_TIMEOUT = 180.0
STATUS_POLL_S = 0.1
"""How often `up` asks the entry's /status while it waits for nodes to join (a local GET)."""
NETWORK_FILE = "network.json"
STOP_GRACE = 15.0


ACTIVE_TRAINING = frozenset({"training", "pausing"})
"""Entry states in which a run is in progress (`up` adopts it rather than starting another)."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while `up` was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def handle_stop_signals() -> None:
    """SIGINT and SIGTERM both raise :class:`Interrupted` (whatever was inherited)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupted)


@dataclass
class Recorded:
    """One child as ``network.json`` records it."""

    name: str
    pid: int
    grpc_port: int
    http_port: int
    log: str


def save_network(state_dir: Path, children: list[processes.Child]) -> None:
    """Record ``children`` in ``<state_dir>/network.json`` (atomically)."""
    rows = [{"name": c.name, "pid": c.pid, "grpc_port": c.grpc_port, "http_port": c.http_port,
             "log": str(c.log)} for c in children]
    path = state_dir / NETWORK_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_network(state_dir: Path) -> list[Recorded]:
    """The children recorded in ``state_dir`` (empty when none)."""
    path = state_dir / NETWORK_FILE
    if not path.is_file():
        return []
    try:
        return [Recorded(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a network file written by fedchain up: {exc}") from None


def running_nodes(state_dir: Path) -> dict[int, str]:
    """pid -> name of every live node or ledger of ``state_dir``: the recorded ones still
    running fedchain, and any other found with its --state-dir inside ``state_dir``."""
    found = {c.pid: c.name for c in read_network(state_dir) if processes.is_fedchain_process(c.pid)}
    for proc in processes.fedchain_processes(under=state_dir):
        found.setdefault(proc.pid, f"pid {proc.pid}")
    return found


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
    env.pop("FEDCHAIN_ATTACK", None)  # only the ENs `up --attackers` names attack
    for name in ("tls_cert", "tls_key", "tls_ca", "http_tls_cert", "http_tls_key"):
        value = getattr(settings, name)
        if value is not None:
            env[f"FEDCHAIN_{name.upper()}"] = str(Path(value).resolve())
    return env


def _attack_option(attackers: int, attack: str | None, ens: int) -> str | None:
    """The attack of `up --attackers K --attack A` (canonical text), or None; ConfigError when
    only one is given or K is not below the number of ENs."""
    if not attackers and attack is None:
        return None
    if not attackers or attack is None:
        raise ConfigError("--attackers and --attack go together (e.g. --attackers 1 --attack scale:10)")
    if attackers >= ens:
        raise ConfigError(f"--attackers {attackers}: at least one of the {ens} edge nodes must be honest")
    from fedchain.shared.fl.attacks import parse_attack

    return str(parse_attack(attack))


CERTS_DIR = "certs"
"""Where ``up --tls`` keeps the run's CA and certificates, inside the state dir."""


def tls_certs(state_dir: Path) -> Path:
    """The CA and certificates of ``up --tls`` in ``state_dir/certs``: made once, then reused."""
    from fedchain.services.cli.certs import FILES, make_certs

    out = state_dir / CERTS_DIR
    if not all((out / name).is_file() for name in FILES):
        make_certs(out, ("localhost", "127.0.0.1"))  # refuses to replace part of a set
    return out


def with_tls(settings: Settings, certs: Path) -> Settings:
    """``settings`` with mutual TLS on gRPC (enrollment at join) and HTTPS on every API."""
    return settings.model_copy(update={
        "tls_ca": certs / "ca.pem", "tls_cert": certs / "enroll.pem", "tls_key": certs / "enroll.key",
        "http_tls_cert": certs / "http.pem", "http_tls_key": certs / "http.key",
    })


def _fl_flags(settings: Settings) -> list[str]:
    """The federation's settings as flags for the entry child (it sends them to every node)."""
    return settings_to_flags(settings, FEDERATION_FIELDS)


class UpRun:
    """One `fedchain up`: start, train, report, stop."""

    def __init__(
        self, settings: Settings, sns: int, ens: int, rounds: int, keep: bool,
        attackers: int = 0, attack: str | None = None, certs: Path | None = None,
    ) -> None:
        from rich.console import Console

        self.settings = settings
        self.certs = certs  # --tls: the folder of fedchain certs' files
        self.sns, self.ens, self.rounds, self.keep = sns, ens, rounds, keep
        self.attackers, self.attack = attackers, attack
        self.state_dir = Path(settings.state_dir).resolve()
        self.console = Console(highlight=False, soft_wrap=True)
        self.group = processes.ProcessGroup(self.state_dir / "logs", env=_child_env(settings),
                                            new_session=True)
        from fedchain.shared.net.https import HttpClientTls

        self.http = HttpClientTls.from_settings(settings)
        self.verify = self.http.verify()
        self.entry_http = self.http.url(f"127.0.0.1:{settings.effective_http_port}")
        self.headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}

    def _start(
        self, name: str, args: list[str], grpc_port: int, http_port: int, env: dict[str, str] | None = None
    ) -> processes.Child:
        """Start child ``name`` (watching `up` unless --keep) and record it in network.json."""
        child = self.group.start_fedchain(name, args, watch_parent=not self.keep, grpc_port=grpc_port,
                                          http_port=http_port, env=env)
        save_network(self.state_dir, self.group.children)
        return child

    def _wait_healthy(self, child: processes.Child) -> None:
        self.check_alive()
        try:
            url = f"{self.http.url(f'127.0.0.1:{child.http_port}')}/health"
            self.group.wait_healthy(child, START_TIMEOUT, url=url, verify=self.verify, interval=STATUS_POLL_S)
        except (processes.ChildExited, processes.NotHealthy) as exc:
            raise ConfigError(str(exc)) from None

    def check_alive(self) -> None:
        """Raise ConfigError naming the first child that exited (with its log)."""
        try:
            self.group.check_alive()
        except processes.ChildExited as exc:
            raise ConfigError(str(exc)) from None

    def start(self) -> None:
        free_port = processes.free_port
        s, sd = self.settings, self.state_dir
        lport, lhttp = free_port(), free_port()
        say = self.console.print
        db = s.db_url or f"sqlite:///{sd / 'ledger' / 'ledger.db'}"
        # the entry's key is made first: the ledger takes a genesis only from it, SNs and ENs
        # take a join reply only signed by it
        entry_key = load_key(s.model_copy(update={"state_dir": sd / "entry", "node_key": None})).public_hex
        pin = ["--entry-key", entry_key]
        ledger_args = ["ledger", "--state-dir", str(sd / "ledger"), "--port", str(lport), "--http-port", str(lhttp),
                       *pin]
        # the database URL may hold a password: it goes by environment, never on a command line
        ledger_env = {**_child_env(s), "FEDCHAIN_DB_URL": s.db_url} if s.db_url else None
        entry_tls: list[str] = []
        say(f"[bold]fedchain up[/]: {self.sns} SNs, {self.ens} ENs, {self.rounds} rounds of {s.algorithm} "
            f"on {s.dataset} (state in {sd})")
        say(f"  tokens      {write_tokens(sd, s)} (mode 0600; FEDCHAIN_API_TOKEN there drives the console)")
        if self.certs is not None:
            certs = self.certs.resolve()
            ledger_env = {**(ledger_env or _child_env(s)), "FEDCHAIN_TLS_CERT": str(certs / "ledger.pem"),
                          "FEDCHAIN_TLS_KEY": str(certs / "ledger.key")}
            entry_tls = ["--tls-ca-key", str(certs / "ca.key")]  # the entry enrolls every node
            say(f"  TLS         CA {certs / 'ca.pem'} (mutual TLS on gRPC, HTTPS APIs; "
                f"fedchain console --ca {certs / 'ca.pem'})")
        ledger = self._start("ledger", ledger_args, lport, lhttp, env=ledger_env)
        self._wait_healthy(ledger)
        say(f"  ledger      127.0.0.1:{lport}  ({_redact(db)})")
        common = ["--host", "127.0.0.1"]
        entry = self._start(
            "entry",
            ["node", "--nt", "SN", "-z", "--port", str(s.port), "--http-port", str(s.effective_http_port),
             "--ledger", f"127.0.0.1:{lport}", "--state-dir", str(sd / "entry"), *common, *entry_tls,
             *_fl_flags(s)],
            s.port, s.effective_http_port,
        )
        # nodes start once the entry is healthy: its gRPC port answers joins before genesis is
        # written, and a join answered then names no chain (the node refuses the entry)
        self._wait_healthy(entry)
        say(f"  entry M-SN  127.0.0.1:{s.port}  (HTTP {s.effective_http_port})")
        entry_addr = f"127.0.0.1:{s.port}"
        for i in range(1, self.sns + 1):
            g, h = free_port(), free_port()
            self._start(
                f"sn-{i}",
                ["node", "--nt", "SN", "--entry", entry_addr, "--port", str(g), "--http-port", str(h),
                 "--state-dir", str(sd / f"sn-{i}"), *common, *pin],
                g, h,
            )
        if self.sns:
            self._wait_status(lambda st: st["sns"] >= 1 + self.sns, f"{self.sns} super nodes to join")
            say(f"  {self.sns} super node(s) joined")
        if self.attack is not None and self.attackers:
            say(f"  [bold red]ATTACK (experiment): en-1..en-{self.attackers} send {self.attack} "
                f"updates; aggregator {s.aggregator}[/]")
        for i in range(1, self.ens + 1):
            g, h = free_port(), free_port()
            poison = ["--attack", self.attack] if self.attack is not None and i <= self.attackers else []
            self._start(
                f"en-{i}",
                ["node", "--nt", "EN", "--entry", entry_addr, "--port", str(g), "--http-port", str(h),
                 "--state-dir", str(sd / f"en-{i}"), *common, *pin, *poison],
                g, h,
            )
        self._wait_status(lambda st: st["ens"] >= self.ens, f"{self.ens} edge nodes to load their data and join")
        say(f"  {self.ens} edge node(s) joined")

    def _get(self, path: str, **kw: Any) -> Any:
        import httpx

        r = httpx.get(self.entry_http + path, timeout=30, verify=self.verify, **kw)
        if r.status_code >= 400:
            raise ConfigError(f"GET {path}: {r.json().get('detail', r.text)}")
        return r.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        import httpx

        r = httpx.post(self.entry_http + path, json=body, headers=self.headers, timeout=120,
                       verify=self.verify)
        if r.status_code >= 400:
            raise ConfigError(f"POST {path}: {r.json().get('detail', r.text)}")
        return r.json()

    def _wait_status(self, ok: Any, what: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                st = self._get("/status")
                if ok(st):
                    return st
            except httpx.HTTPError:
                pass
            time.sleep(STATUS_POLL_S)
        raise ConfigError(f"timed out after {timeout:.0f} s waiting for {what}; logs are in {self.state_dir / 'logs'}")

    def _start_or_adopt(self) -> tuple[int, int]:
        """Start ``--rounds`` rounds, or adopt the training the entry is already running.

        On a state dir whose last run was cut off the entry resumes that run's training by
        itself, and a ``train()`` from a console may arrive while `up` starts: either way `up`
        follows the run in progress to its target instead of refusing itself.
        """
        st = self._get("/status")
        if st["state"] not in ACTIVE_TRAINING:
            reply = self._post_or_conflict("/train", {"rounds": self.rounds, "algorithm": self.settings.algorithm})
            if reply is not None:
                first, target = int(reply["start_round"]), int(reply["target_round"])
                self.console.print(f"training rounds {first}..{target}")
                return first, target
            st = self._get("/status")
        first, target = int(st["round"]) + 1, int(st["target_round"])
        self.console.print(
            f"training rounds {first}..{target}: adopted the training already running on this state dir "
            "(a cut-off run resumed, or a train() sent while up started)"
        )
        return first, target

    def _post_or_conflict(self, path: str, body: dict[str, Any]) -> Any:
        """POST, or None when the entry answers 409 (training already running)."""
        import httpx

        r = httpx.post(self.entry_http + path, json=body, headers=self.headers, timeout=120,
                       verify=self.verify)
        if r.status_code == 409:
            return None
        if r.status_code >= 400:
            raise ConfigError(f"POST {path}: {r.json().get('detail', r.text)}")
        return r.json()

    def train(self) -> None:
        from rich.table import Table

        first, target = self._start_or_adopt()
        shown: set[int] = set()
        t0 = time.monotonic()
        budget = (self.settings.round_timeout + 60) * max(1, target - first + 1)
        table = Table("round", "accuracy", "loss", "participants", "rejected", "height", "seconds")
        while True:
            self.check_alive()
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
                           else "verify  fedchain verify --db-url URL --blobs "
                           + str(self.state_dir / "ledger" / "blobs"))

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop every child (newest first), say how many, forget network.json."""
        self.console.print("stopping the network…")
        killed = self.group.stop(grace)
        (self.state_dir / NETWORK_FILE).unlink(missing_ok=True)
        note = f" ({', '.join(killed)} needed SIGKILL)" if killed else ""
        self.console.print(f"stopped {len(self.group.children)} processes{note}")


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
    attackers: int = typer.Option(
        0, "--attackers", min=0, help="experiment: how many ENs attack (en-1..en-K; needs --attack)"
    ),
    attack: str | None = typer.Option(
        None, help="experiment: sign-flip, scale:λ, gaussian:σ, label-flip or nan (needs --attackers)"

    ),
    tls: bool = typer.Option(
        False, "--tls",
        help="mutual TLS on gRPC and HTTPS APIs, with certificates from fedchain certs in STATE_DIR/certs",
    ),
) -> None:
    """Start a whole local federation, train, verify the chain, and stop (or --keep it running)."""
    flags: dict[str, Any] = {
        "port": port,
        "http_port": http_port,
        "state_dir": state_dir,
        "db_url": db_url,
        "clients": ens,
        **learning,  # --clients, when given, beats --ens
    }
    settings = load_settings(config, **flags)
    attack = _attack_option(attackers, attack, ens)
    extra = {k: v for k, v in UP_DEFAULTS.items() if k not in settings.model_fields_set}
    if "rounds" not in settings.model_fields_set:
        extra["rounds"] = 3
    if extra:
        settings = Settings(**{**settings.model_dump(), **extra})
    settings = with_run_tokens(settings)  # generated for every token not set
    sd = Path(settings.state_dir).resolve()
    if running_nodes(sd):
        raise ConfigError(f"a network is already running from {sd}; stop it with: fedchain down --state-dir {sd}")
    certs = tls_certs(sd) if tls else None
    if certs is not None:
        settings = with_tls(settings, certs)
    for p in (settings.port, settings.effective_http_port):
        if not processes.port_is_free(p):
            raise ConfigError(f"port {p} is in use; stop what uses it or pass --port")
    handle_stop_signals()
    run = UpRun(settings, sns, ens, settings.rounds, keep, attackers, attack, certs)
    code = 0
    try:
        run.start()
        run.train()
        run.report()
    except Interrupted as exc:
        run.console.print(f"interrupted ({exc.name})")
        code = 128 + exc.signum
        run.keep = False
    except ConfigError as exc:
        typer.echo(error_line(str(exc)), err=True)
        code = 1
        run.keep = False
    finally:
        if run.keep:
            ca = f" --ca {(certs / 'ca.pem').resolve()}" if certs is not None else ""
            run.console.print(
                "\nthe network is up. Connect:  fedchain console --ip 127.0.0.1 "
                f"--port {settings.effective_http_port}{ca}\n"
                f"Stop it:     fedchain down --state-dir {sd}\nLogs:        {sd / 'logs'}"
            )
        else:
            try:
                run.stop()
            except Interrupted:  # a second signal: do not wait for a graceful stop
                run.stop(grace=2)
    if code:
        raise typer.Exit(code)


def down(
    state_dir: Path | None = typer.Option(None, help="state dir of the network (default ./.fedchain)"),
) -> None:
    """Stop a network started with `fedchain up --keep` (and nodes restarted by hand on its state dir)."""
    import psutil

    sd = Path(state_dir or load_settings(None).state_dir).resolve()
    recorded = read_network(sd)
    nodes = running_nodes(sd)
    if not recorded and not nodes:
        raise ConfigError(f"no network recorded in {sd} (nothing to stop)")
    order = [c.pid for c in reversed(recorded) if c.pid in nodes]
    order = [p for p in nodes if p not in order] + order  # unrecorded first, then newest first
    procs = []
    for pid in order:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            nodes.pop(pid)
    killed = [nodes[p.pid] for p in processes.stop_processes(procs, STOP_GRACE)]
    (sd / NETWORK_FILE).unlink(missing_ok=True)
    names = ", ".join(nodes[p] for p in order if p in nodes)
    note = f" ({', '.join(killed)} needed SIGKILL)" if killed else ""
    print(f"stopped {len(nodes)} processes from {sd}{': ' + names if names else ''}{note}")


def register(app: typer.Typer) -> None:
    """Add ``fedchain up`` and ``fedchain down``."""
    app.command("up")(up)
    app.command("down")(down)
