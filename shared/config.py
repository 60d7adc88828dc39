"""One settings object for every fedchain command.

Precedence, lowest first: defaults < config file (``--config``, JSON/YAML/TOML)
< environment (``FEDCHAIN_*`` variables and ``.env``) < command-line flags.

Environment: ``FEDCHAIN_<FIELD>`` (any case; e.g. ``FEDCHAIN_CLIENTS=5``), read from the
process environment over a ``.env`` file in the working directory; other variables in
either are ignored.

The seed project's keys are accepted as aliases in config files, flags and environment:
``client.amount`` -> ``clients``, ``local_epoch`` -> ``local_epochs``,
``local_OpenEval`` -> ``local_eval``, ``gobal_epoch`` -> ``rounds``, ``openEval`` -> ``eval``,
``dataset``, ``learn_rate`` -> ``lr``, ``BATCH_SIZE`` -> ``batch_size``.
The defaults are the seed's: 10 clients, 2 local epochs, 20 global epochs, lr 0.01, batch 64.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SEED_ALIASES: dict[str, str] = {
    "client.amount": "clients",
    "local_epoch": "local_epochs",
    "local_OpenEval": "local_eval",
    "gobal_epoch": "rounds",
    "global_epoch": "rounds",
    "openEval": "eval",
    "learn_rate": "lr",
    "BATCH_SIZE": "batch_size",
}

Algorithm = Literal["fedper", "fedavg"]
DatasetName = Literal["mnist", "fmnist", "cifar10", "mnist-sample"]
Partition = Literal["iid", "dirichlet", "pathological"]


class ConfigError(ValueError):
    """A user-caused configuration problem; its message is one line a person can act on."""


class Settings(BaseSettings):
    """Every knob of fedchain. Field docs are the reference for config files and flags."""

    model_config = SettingsConfigDict(
        env_prefix="FEDCHAIN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_assignment=True,
        populate_by_name=True,
    )

    # ---- learning ----
    algorithm: Algorithm = Field("fedper", description="fedper (base averaged, head personal) or fedavg")
    dataset: DatasetName = Field("mnist-sample", description="mnist, fmnist, cifar10 or mnist-sample")
    data_dir: Path = Field(Path("./data"), description="torchvision on-disk layout root")
    download: bool = Field(False, description="download a missing dataset (needs internet)")
    model: str = Field("auto", description="auto, mnist-cnn, cifar-cnn or resnet18")
    clients: int = Field(10, ge=1, le=10_000, description="number of clients (ENs)")
    rounds: int = Field(20, ge=1, le=100_000, description="global epochs")
    local_epochs: int = Field(2, ge=1, le=1_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(0.01, gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1)
    partition: Partition = Field("iid")
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration")
    classes_per_client: int = Field(2, ge=1, description="pathological split: classes per client")
    client_fraction: float = Field(1.0, gt=0, le=1, description="FedAvg: fraction of clients per round")
    personal_layers: int = Field(1, ge=0, description="FedPer: last N parameterised layers stay local")
    train_fraction: float = Field(0.75, gt=0, lt=1, description="per-client train/test split")
    max_samples: int | None = Field(
        None, ge=10, description="use a seeded random subset of this many samples (quick runs)"
    )
    seed: int = Field(0, ge=0)
    local_eval: bool = Field(True, description="seed's local_OpenEval: evaluate on each client")
    eval: bool = Field(True, description="seed's openEval: evaluate every round")

    # ---- network ----
    port: int = Field(8080, ge=1, le=65535, description="gRPC port")
    http_port: int | None = Field(None, ge=1, le=65535, description="HTTP port, default port+1000")
    host: str = Field("127.0.0.1", description="address to bind")
    advertise_host: str | None = Field(None, description="address peers use to reach this node")
    nt: Literal["SN", "EN"] | None = Field(None, description="node type")
    entry: str | None = Field(None, description="HOST:PORT of the entry super node")
    ledger: str | None = Field(None, description="HOST:PORT of the ledger gRPC service")
    state_dir: Path = Field(Path("./.fedchain"), description="keys, chain, blobs, personal layers")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in state_dir")
    join_token: str = Field("fedchain-dev-join", min_length=1)
    api_token: str = Field("fedchain-dev-api", min_length=1)
    quorum: float = Field(0.5, gt=0, le=1, description="fraction of ENs a round needs")
    round_timeout: float = Field(300.0, gt=0, description="seconds an EN may take per round")
    heartbeat_interval: float = Field(2.0, gt=0)
    heartbeat_timeout: float = Field(10.0, gt=0)
    max_message_mb: int = Field(64, ge=1, le=2048, description="largest gRPC message / blob")
    chunk_kb: int = Field(1024, ge=16, le=4096, description="tensor stream chunk size")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_lower(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().lower()
            return {"fashion-mnist": "fmnist", "fashionmnist": "fmnist", "cifar-10": "cifar10"}.get(v, v)
        return v

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.partition == "pathological" and self.classes_per_client > 10:
            raise ValueError("classes_per_client must be at most the number of classes (10)")
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
        # FEDCHAIN_* variables come from the environment over ``.env`` (FedchainEnvSource)
        return (init_settings, FedchainEnvSource(settings_cls))


ENV_PREFIX = "FEDCHAIN_"


def env_field_name(variable: str) -> str | None:
    """The field a ``FEDCHAIN_*`` variable sets (seed aliases too), or None if it sets none.

    Matching is case-insensitive: ``FEDCHAIN_CLIENTS``, ``FEDCHAIN_LEARN_RATE`` (seed alias of
    lr), ``FEDCHAIN_CLIENT_AMOUNT`` (seed ``client.amount``).
    """
    if not variable.upper().startswith(ENV_PREFIX):
        return None
    name = variable[len(ENV_PREFIX) :].lower()
    fields = {f.lower(): f for f in Settings.model_fields}
    aliases = {a.lower().replace(".", "_"): f for a, f in SEED_ALIASES.items()}
    return fields.get(name) or aliases.get(name)


def env_values(dotenv_path: Path = Path(".env")) -> dict[str, tuple[str, str]]:
    """Field -> (value, variable) from ``.env`` (in the working directory) then the environment.

    Only ``FEDCHAIN_*`` variables that name a setting are used; anything else in ``.env``
    or the environment (other tools' variables, ``FEDCHAIN_TEST_*``) is left alone.
    """
    found: dict[str, tuple[str, str]] = {}
    layers: list[tuple[str, dict[str, str | None]]] = []
    if dotenv_path.is_file():
        layers.append((f"{dotenv_path}", dict(dotenv_values(dotenv_path))))
    layers.append(("environment", dict(os.environ)))
    for origin, variables in layers:
        for variable, value in variables.items():
            field = env_field_name(variable)
            if field is not None and value is not None:
                found[field] = (value, f"{variable} ({origin})")
    return found


class FedchainEnvSource(PydanticBaseSettingsSource):
    """Settings from ``FEDCHAIN_*`` variables: the environment over ``.env``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value = env_values().get(field_name)
        return (value[0] if value else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {name: value for name, (value, _) in env_values().items()}


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
        name = SEED_ALIASES.get(key, key.replace("-", "_"))
        if name not in fields:
            raise ConfigError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(fields))})")
        out[name] = value
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON, YAML or TOML config file into field names (aliases resolved)."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory, not a file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    kinds = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", "": "json"}
    if path.suffix.lower() not in kinds:
        raise ConfigError(
            f"config file {path}: unsupported format '{path.suffix}' (use .json, .yaml, .yml or .toml)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}".splitlines()[0]) from exc
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix.lower() in {".yaml", ".yml"}:
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        kind = kinds[path.suffix.lower()]
        raise ConfigError(f"config file {path} is not valid {kind}: {' '.join(str(exc).split())}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return normalise_keys(data, str(path))


def _format_validation(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "settings"
    return f"invalid value for '{loc}': {err.get('msg')} (got {err.get('input')!r})"


def load_settings(config_file: Path | str | None = None, **flags: Any) -> Settings:
    """Build Settings: defaults < config file < environment/.env < flags.

    ``flags`` holds only values the user actually gave (None values are dropped).
    Raises ConfigError with a one-line message on any problem.
    """
    file_values = read_config_file(Path(config_file)) if config_file else {}
    given = normalise_keys({k: v for k, v in flags.items() if v is not None}, "flag")
    try:
        env_only = Settings()  # environment and .env over defaults
    except ValidationError as exc:
        origins = env_values()
        loc = str(exc.errors()[0].get("loc", ("",))[0])
        where = origins[loc][1] if loc in origins else "environment"
        raise ConfigError(f"{where}: " + _format_validation(exc)) from exc
    env_set = env_only.model_fields_set
    merged: dict[str, Any] = dict(file_values)
    for name in env_set:
        merged[name] = getattr(env_only, name)
    merged.update(given)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc)) from exc
