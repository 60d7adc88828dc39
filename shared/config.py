"""One settings object for every fedchain command.

Precedence, lowest first: defaults < config file (``--config``, JSON/YAML/TOML)
< environment (``FEDCHAIN_*`` variables and ``.env``) < command-line flags.

Environment: ``FEDCHAIN_<FIELD>`` (any case; e.g. ``FEDCHAIN_CLIENTS=5``), read from the
process environment over a ``.env`` file in the working directory (both through
pydantic-settings' own sources). A ``FEDCHAIN_*`` name in ``.env`` or a key in a config file
that is no setting is refused; other variables, and ``FEDCHAIN_*`` names in the process
environment that are no setting (``FEDCHAIN_TEST_*``), are left alone.

The seed project's keys are accepted as aliases in config files, flags and environment:
``client.amount`` -> ``clients``, ``local_epoch`` -> ``local_epochs``,
``local_OpenEval`` -> ``local_eval``, ``gobal_epoch`` -> ``rounds``, ``openEval`` -> ``eval``,
``dataset``, ``learn_rate`` -> ``lr``, ``BATCH_SIZE`` -> ``batch_size``; and ``strategy`` ->
``algorithm`` (``--strategy``, ``FEDCHAIN_STRATEGY``).
The defaults are the seed's: 10 clients, 2 local epochs, 20 global epochs, lr 0.01, batch 64.

Every field has a *scope* (``json_schema_extra={"scope": ...}``), the one place that says
where a setting goes:

- ``federation``: learning settings the entry records in genesis and sends to every joining
  node (:data:`FEDERATION_FIELDS`); ``fedchain up`` passes them to its node children.
- ``run``: learning settings of one run that stay on the machine (rounds, dataset root,
  download). Together with the federation fields they are :data:`LEARNING_FIELDS`: the
  learning options of ``simulate``, ``up`` and ``node`` and the ``config`` of a results file.
- ``node``: everything else (ports, addresses, tokens, TLS, process knobs).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

if TYPE_CHECKING:
    from fedchain.shared.ledger.retention import KeepUpdates

SEED_ALIASES: dict[str, str] = {
    "client.amount": "clients",
    "local_epoch": "local_epochs",
    "local_OpenEval": "local_eval",
    "gobal_epoch": "rounds",
    "global_epoch": "rounds",
    "openEval": "eval",
    "learn_rate": "lr",
    "BATCH_SIZE": "batch_size",
    "strategy": "algorithm",  # not the seed's: the name of the custom-strategy docs
}

Algorithm = Literal["fedper", "fedavg"]
"""fedchain's own algorithms; ``algorithm`` also takes a registered name or ``module:Class``."""
DatasetName = Literal["mnist", "fmnist", "cifar10", "mnist-sample"]
"""fedchain's own datasets; ``dataset`` also takes a loader ``package.module:loader``."""
DATASET_NAMES: tuple[str, ...] = ("mnist", "fmnist", "cifar10", "mnist-sample")
ALGORITHM_NAMES: tuple[str, ...] = ("fedper", "fedavg")
MODEL_NAMES: tuple[str, ...] = ("auto", "mnist-cnn", "cifar-cnn", "resnet18")
"""fedchain's own models; ``model`` also takes a factory ``package.module:factory``."""
Partition = Literal["iid", "dirichlet", "pathological"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Scope = Literal["federation", "run", "node"]

ENV_PREFIX = "FEDCHAIN_"


class ConfigError(ValueError):
    """A user-caused configuration problem; its message is one line a person can act on."""


TOKEN_FIELDS: tuple[str, ...] = ("sn_join_token", "en_join_token", "api_token")
"""The secrets among the settings: no default, never printed (``SecretStr``), never flags."""

TOKEN_MIN_LENGTH = 16
"""The shortest token accepted (``secrets.token_urlsafe(32)``, what fedchain makes, has 43)."""

RETIRED_VARIABLES: dict[str, str] = {
    "FEDCHAIN_JOIN_TOKEN": "set FEDCHAIN_SN_JOIN_TOKEN and FEDCHAIN_EN_JOIN_TOKEN instead "
    "(two different values: an EN's token must not admit an SN)",
}
"""Variables fedchain no longer reads, refused with what to set instead."""


def _scope(scope: Scope) -> dict[str, Any]:
    return {"scope": scope}


FEDERATION = _scope("federation")
RUN = _scope("run")


EN_DEFAULT_PORT = 8081
"""An edge node's gRPC port when none is given (a super node's, the entry's, is 8080)."""


class Settings(BaseSettings):
    """Every knob of fedchain. Field docs are the reference for config files and flags."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="forbid",
        validate_assignment=True,
        populate_by_name=True,
    )

    # ---- learning ----
    algorithm: str = Field(
        default="fedper", json_schema_extra=FEDERATION,
        description="fedper (base averaged, head personal), fedavg, a registered strategy name "
        "or your own strategy class package.module:Class",
    )
    dataset: str = Field(
        default="mnist-sample", json_schema_extra=FEDERATION,
        description="mnist, fmnist, cifar10, mnist-sample or your own loader package.module:loader",
    )
    data_dir: Path = Field(
        default=Path("./data"), json_schema_extra=RUN,
        description="dataset root (torchvision on-disk layout)",
    )
    download: bool = Field(
        default=False, json_schema_extra=RUN, description="download a missing dataset (needs internet)"
    )
    model: str = Field(
        default="auto", json_schema_extra=FEDERATION,
        description="auto, mnist-cnn, cifar-cnn, resnet18 or your own factory package.module:factory",
    )
    clients: int = Field(
        default=10, ge=1, le=10_000, json_schema_extra=FEDERATION,
        description="number of clients (data partitions, one per EN)",
    )
    rounds: int = Field(
        default=20, ge=1, le=100_000, json_schema_extra=RUN, description="global epochs (rounds) to train"
    )
    local_epochs: int = Field(
        default=2, ge=1, le=1_000, json_schema_extra=FEDERATION, description="local epochs per round"
    )
    batch_size: int = Field(
        default=64, ge=1, le=65_536, json_schema_extra=FEDERATION, description="local mini-batch size"
    )
    lr: float = Field(default=0.01, gt=0, le=10, json_schema_extra=FEDERATION, description="SGD learning rate")
    momentum: float = Field(
        default=0.0, ge=0, lt=1, json_schema_extra=FEDERATION, description="SGD momentum (0: plain SGD)"
    )
    partition: Partition = Field(
        default="iid", json_schema_extra=FEDERATION,
        description="how the data is split over clients: iid, dirichlet or pathological",
    )
    alpha: float = Field(
        default=0.5, gt=0, json_schema_extra=FEDERATION, description="dirichlet split: concentration"
    )
    classes_per_client: int = Field(
        default=2, ge=1, json_schema_extra=FEDERATION, description="pathological split: classes per client"
    )
    client_fraction: float = Field(
        default=1.0, gt=0, le=1, json_schema_extra=FEDERATION,
        description="FedAvg: fraction of clients trained per round",
    )
    personal_layers: int = Field(
        default=1, ge=0, json_schema_extra=FEDERATION,
        description="FedPer: last N parameterised layers stay local",
    )
    train_fraction: float = Field(
        default=0.75, gt=0, lt=1, json_schema_extra=FEDERATION,
        description="per-client train share (the rest is its test set)",
    )
    max_samples: int | None = Field(
        default=None, ge=10, json_schema_extra=FEDERATION,
        description="use a seeded random subset of this many samples (quick runs)",
    )
    seed: int = Field(
        default=0, ge=0, json_schema_extra=FEDERATION,
        description="seed for partitioning, initial weights and shuffling",
    )
    local_eval: bool = Field(
        default=True, json_schema_extra=FEDERATION,
        description="evaluate on each client's own test split (seed: local_OpenEval)",
    )
    eval: bool = Field(
        default=True, json_schema_extra=FEDERATION, description="evaluate every round (seed: openEval)"
    )
    aggregator: str = Field(
        default="mean", json_schema_extra=FEDERATION,
        description="aggregation rule: mean, median, trimmed:β, krum:f, multikrum:f[,m], bulyan:f; "
        "clip:τ bounds update norms alone or with a rule (clip:2+krum:1)",
    )

    attack: str | None = Field(
        default=None,
        description="experiment, edge node only: send poisoned updates (sign-flip, scale:λ, "
        "gaussian:σ, label-flip or nan); off by default, announced at start-up and in /status",
    )

    # ---- network ----
    port: int = Field(
        default=8080, ge=1, le=65535, description=f"gRPC port (an EN's default: {EN_DEFAULT_PORT})"
    )
    http_port: int | None = Field(default=None, ge=1, le=65535, description="HTTP port, default port+1000")
    host: str = Field(default="127.0.0.1", description="address to bind")
    advertise_host: str | None = Field(default=None, description="address peers use to reach this node")
    nt: Literal["SN", "EN"] | None = Field(default=None, description="node type")
    entry: str | None = Field(default=None, description="HOST:PORT of the entry super node")
    ledger: str | None = Field(default=None, description="HOST:PORT of the ledger gRPC service")
    state_dir: Path = Field(
        default=Path("./.fedchain"), description="keys, chain, blobs, personal layers"
    )
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in state_dir")
    sn_join_token: SecretStr = Field(
        default=SecretStr(""), description="secret a super node presents to join (unset: none admitted)"
    )
    en_join_token: SecretStr = Field(
        default=SecretStr(""), description="secret an edge node presents to join (unset: none admitted)"
    )
    api_token: SecretStr = Field(
        default=SecretStr(""), description="bearer token of the control API's POST endpoints (unset: refused)"
    )
    quorum: float = Field(default=0.5, gt=0, le=1, description="fraction of ENs a round needs")
    round_timeout: float = Field(default=300.0, gt=0, description="seconds an EN may take per round")
    heartbeat_interval: float = Field(default=2.0, gt=0)
    heartbeat_timeout: float = Field(default=10.0, gt=0)
    max_sns: int = Field(
        default=64, ge=1, le=10_000,
        description="entry: most super nodes admitted at once (a dead one's place is freed)",
    )
    join_rate: float = Field(
        default=2.0, gt=0, le=10_000, description="entry: joins per second one source address may send"
    )
    join_burst: int = Field(
        default=32, ge=1, le=100_000, description="entry: joins one source address may send at once"
    )
    entry_key: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$",
        description="SN/EN: the entry's public key (hex); the join reply must be signed by it "
        "(unset: the first entry joined is trusted)",
    )
    ledger_entry_key: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$",
        description="ledger: the entry's public key (hex); a fresh ledger takes genesis only from it",
    )
    node_key: Path | None = Field(
        default=None, description="this node's Ed25519 key file (PEM; default node.key in state_dir)"
    )
    max_message_mb: int = Field(default=64, ge=1, le=2048, description="largest gRPC message / blob")
    chunk_kb: int = Field(default=1024, ge=16, le=4096, description="tensor stream chunk size")
    keep_updates: str = Field(
        default="all",
        description="EN update blobs the ledger keeps for `fedchain verify --deep`: all, none "
        "or last:N (the updates of the N most recent rounds)",
    )
    tls_cert: Path | None = Field(default=None, description="gRPC TLS: this node's certificate (PEM)")
    tls_key: Path | None = Field(default=None, description="gRPC TLS: its key (PEM)")
    tls_ca: Path | None = Field(
        default=None, description="the CA (PEM) peers' certificates are checked against, gRPC and HTTPS"
    )
    tls_ca_key: Path | None = Field(
        default=None, description="entry: the CA key (fedchain certs) that issues nodes' certificates"
    )
    http_tls_cert: Path | None = Field(
        default=None, description="HTTPS: certificate (PEM) of this node's HTTP API (unset: plain HTTP)"
    )
    http_tls_key: Path | None = Field(default=None, description="HTTPS: its key (PEM)")

    # ---- process ----
    torch_threads: int | None = Field(
        default=None, ge=1, le=256,
        description="torch CPU threads (default: 1 in a node, torch's own choice in simulate)",
    )
    device: str = Field(
        default="auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="where clients train: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps",
    )
    log_level: LogLevel = Field(default="INFO", description="node log level: DEBUG, INFO, WARNING, ERROR")
    home: Path | None = Field(
        default=None, description="console: folder of its history file (default: ~/.fedchain_history)"
    )

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_lower(cls, v: Any) -> Any:
        if isinstance(v, str) and ":" not in v:
            v = v.strip().lower()
            aliases = {"fashion-mnist": "fmnist", "fashionmnist": "fmnist", "cifar-10": "cifar10"}
            return aliases.get(v, v)
        return v.strip() if isinstance(v, str) else v

    @field_validator("dataset")
    @classmethod
    def _dataset_known(cls, v: str) -> str:
        if ":" in v:
            from fedchain.shared.fl.specs import checked_setting, load_callable

            checked_setting(load_callable, v, "--dataset")
        elif v not in DATASET_NAMES:
            raise ValueError(f"unknown dataset (use {', '.join(DATASET_NAMES)} or package.module:loader)")
        return v

    @field_validator("model")
    @classmethod
    def _model_known(cls, v: str) -> str:
        v = v.strip()
        if ":" in v:
            from fedchain.shared.fl.specs import checked_setting, load_callable

            checked_setting(load_callable, v, "--model")
            return v
        if v not in MODEL_NAMES:
            raise ValueError(f"unknown model (use {', '.join(MODEL_NAMES)} or package.module:factory)")
        return v

    @field_validator("algorithm", mode="before")
    @classmethod
    def _algorithm_known(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        v = v.strip()
        if v in ALGORITHM_NAMES:
            return v  # fedchain's own: no need to import torch to know them
        from fedchain.shared.fl.specs import checked_setting
        from fedchain.shared.fl.strategy import strategy_class

        checked_setting(strategy_class, v, "--algorithm")
        return v

    @field_validator("aggregator")
    @classmethod
    def _aggregator_canonical(cls, v: str) -> str:
        from fedchain.shared.fl.robust_spec import parse_aggregator

        return str(parse_aggregator(v))  # AggregatorSpecError is a ValueError: a bad value

    @field_validator("attack")
    @classmethod
    def _attack_canonical(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        from fedchain.shared.fl.attacks import parse_attack

        return str(parse_attack(v))  # ConfigError is a ValueError: a bad value
    @field_validator("keep_updates")
    @classmethod
    def _keep_updates_canonical(cls, v: str) -> str:
        from fedchain.shared.ledger.retention import parse_keep_updates

        return str(parse_keep_updates(v))  # KeepUpdatesError is a ValueError: a bad value

    @property
    def keep_updates_policy(self) -> KeepUpdates:
        """``keep_updates`` parsed (``fedchain.shared.ledger.retention``)."""
        from fedchain.shared.ledger.retention import parse_keep_updates

        return parse_keep_updates(self.keep_updates)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("sn_join_token", "en_join_token", "api_token")
    @classmethod
    def _token_format(cls, v: SecretStr) -> SecretStr:
        value = v.get_secret_value()
        if value and len(value) < TOKEN_MIN_LENGTH:
            raise ValueError(
                f"a token needs at least {TOKEN_MIN_LENGTH} characters "
                "(`fedchain init-env` writes random ones)"
            )
        if value and not all(c.isascii() and c.isprintable() and not c.isspace() for c in value):
            raise ValueError("a token is printable ASCII without spaces")
        return v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.nt == "EN" and "port" not in self.model_fields_set:
            # not the entry's 8080: an EN started beside an entry with no --port must not collide
            self.port = EN_DEFAULT_PORT
        if self.partition == "pathological" and self.classes_per_client > 10 and ":" not in self.dataset:
            raise ValueError("classes_per_client must be at most the number of classes (10)")
        values = [getattr(self, name).get_secret_value() for name in TOKEN_FIELDS]
        given = [v for v in values if v]
        if len(set(given)) != len(given):
            raise ValueError(
                "FEDCHAIN_SN_JOIN_TOKEN, FEDCHAIN_EN_JOIN_TOKEN and FEDCHAIN_API_TOKEN must all differ "
                "(an EN's token must never admit an SN or drive the API)"
            )
        return self

    @property
    def effective_http_port(self) -> int:
        return self.http_port if self.http_port is not None else self.port + 1000

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry flags (highest) merged over the config file by load_settings;
        # FEDCHAIN_* variables come from the environment over ``.env`` (``_env_file`` kept)
        env_file = dotenv_settings.env_file if isinstance(dotenv_settings, DotEnvSettingsSource) else None
        return (init_settings, SeedAliasEnvSource(settings_cls), CheckedDotEnvSource(settings_cls, env_file))


def scope_of(name: str) -> Scope:
    """The scope of a Settings field (see the module doc)."""
    extra = Settings.model_fields[name].json_schema_extra
    scope = extra.get("scope") if isinstance(extra, dict) else None
    if scope == "federation":
        return "federation"
    return "run" if scope == "run" else "node"


def fields_in(*scopes: Scope) -> tuple[str, ...]:
    """The Settings fields of the given scopes, in declaration order."""
    return tuple(name for name in Settings.model_fields if scope_of(name) in scopes)


FEDERATION_FIELDS: tuple[str, ...] = fields_in("federation")
LEARNING_FIELDS: tuple[str, ...] = fields_in("federation", "run")


def flag_name(name: str) -> str:
    """``client_fraction`` -> ``--client-fraction``."""
    return "--" + name.replace("_", "-")


def settings_to_flags(settings: Settings, fields: Iterable[str]) -> list[str]:
    """Command-line flags that give a child ``fedchain`` process these settings' values.

    Booleans become ``--name``/``--no-name``; fields whose value is None are left out.
    """
    out: list[str] = []
    for name in fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, bool):
            out.append(flag_name(name) if value else "--no-" + name.replace("_", "-"))
        else:
            out += [flag_name(name), str(value)]
    return out


# ---- tokens ----

NodeRole = Literal["entry", "SN", "EN"]

NODE_TOKENS: dict[NodeRole, tuple[str, ...]] = {
    "entry": ("sn_join_token", "en_join_token", "api_token"),
    "SN": ("sn_join_token", "api_token"),
    "EN": ("en_join_token",),
}
"""The tokens each kind of node needs: the entry checks both joins and serves the API, an SN
presents its join token and serves the API, an EN presents its join token."""


def token_variable(name: str) -> str:
    """``sn_join_token`` -> ``FEDCHAIN_SN_JOIN_TOKEN``."""
    return ENV_PREFIX + name.upper()


def token_value(settings: Settings, name: str) -> str:
    """The secret of a token field ("" when unset)."""
    secret = getattr(settings, name)
    assert isinstance(secret, SecretStr), name
    return secret.get_secret_value()


def missing_tokens(settings: Settings, role: NodeRole) -> list[str]:
    """The variables of the tokens ``role`` needs that are unset, e.g. ``['FEDCHAIN_API_TOKEN']``."""
    return [token_variable(name) for name in NODE_TOKENS[role] if not token_value(settings, name)]


def learning_summary(settings: Settings) -> dict[str, Any]:
    """The learning settings of a run, JSON-ready (paths as strings)."""
    return settings.model_dump(mode="json", include=set(LEARNING_FIELDS))


# ---- environment and .env ----

def env_field_name(variable: str) -> str | None:
    """The field a ``FEDCHAIN_*`` variable sets (seed aliases too), or None if it sets none.

    Matching is case-insensitive: ``FEDCHAIN_CLIENTS``, ``FEDCHAIN_LEARN_RATE`` (seed alias of
    lr), ``FEDCHAIN_CLIENT_AMOUNT`` (seed ``client.amount``).
    """
    if not variable.upper().startswith(ENV_PREFIX):
        return None
    name = variable[len(ENV_PREFIX) :].lower()
    fields = {f.lower(): f for f in Settings.model_fields}
    return fields.get(name) or _ENV_ALIASES.get(name)


_ENV_ALIASES: dict[str, str] = {a.lower().replace(".", "_"): f for a, f in SEED_ALIASES.items()}


class SeedAliasEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, also reading the seed aliases
    (``FEDCHAIN_LEARN_RATE`` for lr, ``FEDCHAIN_CLIENT_AMOUNT`` for clients)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if value is None:
            for alias, target in _ENV_ALIASES.items():
                found = self.env_vars.get((ENV_PREFIX + alias).lower()) if target == field_name else None
                if found is not None:
                    return found, key, is_complex
        return value, key, is_complex


class CheckedDotEnvSource(DotEnvSettingsSource, SeedAliasEnvSource):
    """pydantic-settings' ``.env`` source that refuses a ``FEDCHAIN_*`` name that is no setting.

    Other names in the file (other tools' variables) are ignored.
    """

    def __init__(self, settings_cls: type[BaseSettings], env_file: Any) -> None:
        super().__init__(settings_cls, env_file=env_file)

    def __call__(self) -> dict[str, Any]:
        for variable in self.env_vars:
            if variable.upper().startswith(ENV_PREFIX) and env_field_name(variable) is None:
                raise ConfigError(f"{self._file_name()}: {unknown_variable(variable.upper())}")
        # only the fields' own variables, not pydantic-settings' "extras from .env"
        return EnvSettingsSource.__call__(self)

    def _file_name(self) -> str:
        files = self.env_file
        if isinstance(files, (str, os.PathLike)):
            return str(files)
        return ", ".join(str(f) for f in files or ())


def unknown_variable(variable: str) -> str:
    """``unknown setting FEDCHAIN_ROUND (did you mean FEDCHAIN_ROUNDS?)``."""
    if variable in RETIRED_VARIABLES:
        return f"{variable} is no longer read: {RETIRED_VARIABLES[variable]}"
    known = [ENV_PREFIX + f.upper() for f in Settings.model_fields]
    close = difflib.get_close_matches(variable, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown setting {_shown(variable)}{hint}"


def _shown(text: str) -> str:
    """A user-written name, on one line."""
    return repr(text) if not text.isprintable() else text


# ---- config files ----

def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and full in {"client"}:
            out.update(_flatten(value, full + "."))
        else:
            out[full] = value
    return out


def normalise_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Map seed aliases and dashed names onto field names; refuse unknown keys."""
    fields = set(Settings.model_fields)
    out: dict[str, Any] = {}
    for key, value in _flatten(data).items():
        name = SEED_ALIASES.get(key, str(key).replace("-", "_"))
        if name not in fields:
            close = difflib.get_close_matches(name, sorted(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(fields))})"
            raise ConfigError(f"{source}: unknown key {key!r}{hint}")
        out[name] = value
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON, YAML or TOML config file into field names (aliases resolved)."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory, not a file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    kinds = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", "": "json"}
    suffix = path.suffix.lower()
    if suffix not in kinds:
        raise ConfigError(
            f"config file {path}: unsupported format '{path.suffix}' (use .json, .yaml, .yml or .toml)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}".splitlines()[0]) from exc
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"config file {path} is not valid {kinds[suffix]}: {reason}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return normalise_keys(data, str(path))


# ---- loading ----

def _format_validation(exc: ValidationError, origins: Mapping[str, str]) -> str:
    """One line: where the bad value came from, the setting, why, and the value."""
    err = exc.errors()[0]
    loc = err.get("loc", ())
    field = str(loc[0]) if loc else ""
    where = origins.get(field, "")
    if not loc:
        return f"invalid settings: {err.get('msg')}"
    name = ".".join(str(p) for p in loc)
    if where.startswith("--"):  # a flag: name it as the user typed it
        where, name = "", where
    shown = "a secret, not shown" if field in TOKEN_FIELDS else repr(err.get("input"))
    message = f"invalid value for '{name}': {str(err.get('msg', '')).removeprefix('Value error, ')} (got {shown})"
    return f"{where}: {message}" if where else message


def _environment_origins(dotenv_file: Path = Path(".env")) -> dict[str, str]:
    """Field -> the variable that set it, e.g. ``FEDCHAIN_LR (environment)``."""
    origins: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, str | None]]] = []
    if dotenv_file.is_file():
        try:
            layers.append((str(dotenv_file), dotenv_values(dotenv_file, encoding="utf-8")))
        except UnicodeDecodeError:
            raise ConfigError(
                f"{dotenv_file.resolve()} is not a UTF-8 text file of NAME=VALUE lines"
            ) from None
    layers.append(("environment", os.environ))
    for origin, variables in layers:
        for variable, value in variables.items():
            field = env_field_name(variable)
            if field is not None and value:
                origins[field] = f"{variable} ({origin})"
    return origins


def load_settings(config_file: Path | str | None = None, **flags: Any) -> Settings:
    """Build Settings: defaults < config file < environment/.env < flags.

    ``flags`` holds only values the user actually gave (None values are dropped).
    Raises ConfigError with a one-line message on any problem, naming where the bad value
    came from (the flag, the config file, the variable).
    """
    for variable, instead in RETIRED_VARIABLES.items():
        if variable in os.environ:
            raise ConfigError(f"{variable} (environment) is no longer read: {instead}")
    file_values = read_config_file(Path(config_file)) if config_file else {}
    given = normalise_keys({k: v for k, v in flags.items() if v is not None}, "flag")
    env_origins = _environment_origins()
    try:
        env_only = Settings()  # environment and .env over defaults
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, env_origins)) from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{Path('.env').resolve()} is not a UTF-8 text file of NAME=VALUE lines") from None
    origins: dict[str, str] = {name: str(config_file) for name in file_values}
    merged: dict[str, Any] = dict(file_values)
    for name in env_only.model_fields_set:
        merged[name] = getattr(env_only, name)
        origins[name] = env_origins.get(name, "environment")
    merged.update(given)
    origins.update({name: flag_name(name) for name in given})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, origins)) from exc

