"""`fedchain init-env`: write the secrets of a deployment into a ``.env``, random, mode 0600.

fedchain has no built-in token or password. This command makes them: the SN and EN join
tokens, the API token and the two MariaDB passwords of ``docker-compose.yml``. Every
``fedchain`` command run in that directory and ``docker compose`` read the file.

It also makes the entry's signing key, ``fedchain-entry.key`` beside the file (PEM, mode
0600; the compose file mounts it as the msn service's node key), and writes its public key
as ``FEDCHAIN_LEDGER_ENTRY_KEY``: the ledger then takes a genesis from that key only, and
the SNs and ENs take only a join reply it signed. An existing key file is kept (even with
``--force``: a new key would not match the chain's genesis).

- No file at ``--path``: a new one, every setting documented (commented out, at its default)
  below the secrets.
- A file without any secret set (the repository's documented ``.env``): its secret lines
  get values, every other line stays as it is.
- A file that already sets a secret is left alone unless ``--force``: new values replace the
  old ones, every other line stays (a MariaDB volume made with the old password keeps it).

The values are never printed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from fedchain.services.cli.run_tokens import new_token
from fedchain.shared.config import TOKEN_FIELDS, ConfigError, Settings, token_variable
from fedchain.shared.crypto import NodeKey

DATABASE_SECRETS: dict[str, str] = {
    "FC_MYSQL_PASSWORD": "docker compose: password of the database user `fedchain`",
    "FC_MYSQL_ROOT_PASSWORD": "docker compose: the database's root password",
}
TOKEN_DOCS: dict[str, str] = {
    "sn_join_token": "Token a super node presents to join (the entry checks it).",
    "en_join_token": "Token an edge node presents to join; differs from the SN token.",
    "api_token": "Bearer token of the control API's POST endpoints (train, pause, save, eval).",
}
SECRETS: tuple[str, ...] = (*(token_variable(name) for name in TOKEN_FIELDS), *DATABASE_SECRETS)
"""Every variable init-env fills in, in the order it writes them."""

ENTRY_KEY_FILE = "fedchain-entry.key"
"""The entry's signing key, beside the .env (docker-compose.yml mounts it into msn)."""
ENTRY_KEY_VARIABLE = token_variable("ledger_entry_key")
"""Where init-env writes the entry's public key (the ledger's --entry-key)."""
CONTAINER_UID = 10001
"""The user the fedchain image runs as (Dockerfile): it must be able to read the key file."""

_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def secrets_set(lines: list[str]) -> list[str]:
    """The secrets that active (uncommented) lines give a non-empty value."""
    found = []
    for line in lines:
        m = _LINE.match(line.strip())
        if m and not m["comment"] and m["name"] in SECRETS and m["value"].strip() not in {"", '""', "''"}:
            found.append(m["name"])
    return found


def fill_secrets(lines: list[str], values: dict[str, str]) -> list[str]:
    """``lines`` with each secret's first line (commented or not) set to its value and its
    other lines dropped; secrets the file has no line for are appended."""
    out: list[str] = []
    done: set[str] = set()
    for line in lines:
        m = _LINE.match(line.strip())
        name = m["name"] if m else ""
        if name in values:
            if name not in done:
                out.append(f"{name}={values[name]}")
                done.add(name)
            continue
        out.append(line)
    missing = [name for name in values if name not in done]
    if missing:
        out += ["", "# ---- secrets (fedchain init-env) ----"]
        out += [f"{name}={values[name]}" for name in missing]
    return out


def template() -> list[str]:
    """A new ``.env``: the secrets, then every other setting documented at its default."""
    lines = [
        "# fedchain settings: FEDCHAIN_* variables, read by every `fedchain` command run in this",
        "# directory and by docker compose. Written by `fedchain init-env`; keep it secret (0600).",
        "# Precedence, lowest first: defaults < config file (--config) < this file and the",
        "# environment < command-line flags. Uncomment a line to change a setting.",
        "",
        "# ---- secrets: none is built in ----",
    ]
    for name in TOKEN_FIELDS:
        lines += [f"# {TOKEN_DOCS[name]}", f"{token_variable(name)}="]
    for variable, doc in DATABASE_SECRETS.items():
        lines += [f"# {doc}.", f"{variable}="]
    lines += ["", "# ---- every other setting, at its default ----"]
    for name, field in Settings.model_fields.items():
        if name in TOKEN_FIELDS:
            continue
        default = field.default
        shown = "" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        if field.description:
            lines.append(f"# {field.description}.")
        lines.append(f"# {token_variable(name)}={shown}")
    return lines


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def init_env(path: Path, force: bool = False) -> list[str]:
    """Write random secrets into ``path`` (see the module doc); return the secrets written."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; --path names the .env file to write")
    if path.exists():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} cannot be read: {exc}".splitlines()[0]) from exc
        already = secrets_set(lines)
        if already and not force:
            raise ConfigError(
                f"{path} already sets {', '.join(already)}; pass --force to replace them with new "
                "random values (its other lines are kept)"
            )
    else:
        if not path.parent.is_dir():
            raise ConfigError(f"{path.parent} does not exist")
        lines = template()
    values = {name: new_token() for name in SECRETS}
    entry = entry_key(path.parent / ENTRY_KEY_FILE)
    lines = fill_secrets(lines, {**values, ENTRY_KEY_VARIABLE: entry.public_hex})
    write_private(path, "\n".join(lines) + "\n")
    return list(values)


def entry_key(path: Path) -> NodeKey:
    """The entry's key at ``path``: kept when there, else made (mode 0600, readable by the
    image's user when this runs as root)."""
    existed = path.exists()
    try:
        key = NodeKey.load_or_create(path)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"the entry key {path}: {exc}".splitlines()[0]) from None
    if not existed and os.geteuid() == 0:
        os.chown(path, CONTAINER_UID, -1)
    return key


def command(
    path: Annotated[Path, typer.Option("--path", help="the .env file to write")] = Path(".env"),
    force: Annotated[bool, typer.Option("--force", help="replace secrets the file already sets")] = False,
) -> None:
    """Write random join tokens, API token and database passwords into a .env (mode 0600),
    and the entry's signing key beside it."""
    key_file = path.parent / ENTRY_KEY_FILE
    kept = key_file.exists()
    written = init_env(path, force)
    print(f"wrote {len(written)} random secrets ({', '.join(written)}) to {path} (mode 0600)")
    print(
        f"{'kept' if kept else 'made'} the entry's key {key_file} (mode 0600); "
        f"{ENTRY_KEY_VARIABLE} in {path} names its public key"
    )


def register(app: typer.Typer) -> None:
    """Add ``fedchain init-env``."""
    app.command("init-env")(command)
