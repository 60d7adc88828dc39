"""The tokens of one `fedchain up` run: generated when not set, handed to the children, kept 0600.

A token the user set (environment, ``.env``, ``--config``) is used as it is; every other
one is made with ``secrets.token_urlsafe``. The children get them through their environment
(never their command line, which every local user can read), and ``tokens.env`` in the
state dir keeps them, readable by the owner only, for the console of a ``--keep`` network:
``set -a; . STATE_DIR/tokens.env; set +a``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from fedchain.shared.config import TOKEN_FIELDS, Settings, token_value, token_variable

TOKENS_FILE = "tokens.env"
TOKEN_BYTES = 32
"""Random bytes per generated token (43 URL-safe characters)."""


def new_token() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def with_run_tokens(settings: Settings) -> Settings:
    """``settings`` with a generated value for every token left unset."""
    fresh = {name: SecretStr(new_token()) for name in TOKEN_FIELDS if not token_value(settings, name)}
    if not fresh:
        return settings
    return Settings(**{**settings.model_dump(), **fresh})


def token_env(settings: Settings) -> dict[str, str]:
    """The ``FEDCHAIN_*`` variables that give a child process these settings' tokens."""
    return {token_variable(name): token_value(settings, name) for name in TOKEN_FIELDS}


def write_tokens(state_dir: Path, settings: Settings) -> Path:
    """Write the run's tokens to ``state_dir/tokens.env`` (mode 0600, replaced atomically)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / TOKENS_FILE
    tmp = path.with_name(f".{TOKENS_FILE}.{os.getpid()}.tmp")
    lines = ["# Tokens of the network `fedchain up` started from this directory. Keep secret."]
    lines += [f"{variable}={value}" for variable, value in token_env(settings).items()]
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, ("\n".join(lines) + "\n").encode("ascii"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path
