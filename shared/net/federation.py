"""The federation's learning settings as the entry hands them to joining nodes.

The entry's FL settings (dataset, partitioning, model, optimiser, seed, ...) are written
into genesis and sent to every joining node, so replicas (``--scale en=N``) need no
per-node configuration. Node-local settings (ports, dirs, tokens, TLS) never travel.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from fedchain.shared.config import FEDERATION_FIELDS, ConfigError, Settings

FL_FIELDS: tuple[str, ...] = FEDERATION_FIELDS
"""The federation-wide fields: those ``Settings`` tags with scope ``federation``."""


def fl_config(settings: Settings) -> dict[str, Any]:
    """The federation-wide learning settings of ``settings`` (JSON-friendly values)."""
    return {name: getattr(settings, name) for name in FL_FIELDS}


def apply_fl_config(local: Settings, config: dict[str, Any]) -> Settings:
    """``local`` with the federation's learning settings laid over it (unknown keys ignored)."""
    values = {k: v for k, v in config.items() if k in FL_FIELDS}
    try:
        return Settings(**{**local.model_dump(), **values})
    except ValidationError as exc:
        err = exc.errors()[0]
        if err.get("type") == "value_error":  # e.g. a model spec this node cannot import
            field = ".".join(str(p) for p in err.get("loc", ())) or "config"
            reason = str(err.get("msg", "")).removeprefix("Value error, ")
            raise ConfigError(
                f"the entry sent a federation config this node cannot use: {field} {err.get('input')!r}: {reason}"
            ) from exc
        where = ".".join(str(p) for p in err.get("loc", ())) or "config"
        raise ConfigError(f"the entry sent an invalid federation config: {where}: {err.get('msg')}") from exc
