"""Container entry point: prepare the environment a fedchain service needs, then exec it.

1. ``FC_STATE_SLOTS_DIR`` (set for scalable services such as ``en``): every replica
   shares one named volume; this claims the first free ``slot-N`` directory in it with an
   exclusive ``flock`` held for the life of the service (the locked descriptor survives
   ``exec``), and sets ``FEDCHAIN_STATE_DIR`` to it. A restarted or re-created replica takes
   a free slot again, so node keys and personal layers persist across restarts and two
   live replicas never share a state directory.
2. When the service binds every interface (``FEDCHAIN_HOST=0.0.0.0``) and no
   ``FEDCHAIN_ADVERTISE_HOST`` is given, peers are told this container's IP address.

The command then replaces this process (signals such as SIGTERM reach it directly).
Standard library only.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from collections.abc import MutableMapping
from pathlib import Path

MAX_SLOTS = 1024


class EntrypointError(RuntimeError):
    """A problem with the container's environment, explained in one line."""


def claim_slot(base: Path, max_slots: int = MAX_SLOTS) -> tuple[Path, int]:
    """Lock the first free ``slot-N`` under ``base``; return its directory and the locked fd."""
    base.mkdir(parents=True, exist_ok=True)
    for index in range(max_slots):
        lock_path = base / f"slot-{index}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        slot = base / f"slot-{index}"
        slot.mkdir(mode=0o700, exist_ok=True)
        return slot, fd
    raise EntrypointError(f"all {max_slots} state slots under {base} are in use")


def own_address() -> str:
    """This container's IP address on its network (what peers can dial)."""
    return socket.gethostbyname(socket.gethostname())


def prepare(env: MutableMapping[str, str]) -> int | None:
    """Apply steps 1 and 2 to ``env``; return the lock descriptor to keep open, if any."""
    lock_fd: int | None = None
    slots_dir = env.get("FC_STATE_SLOTS_DIR")
    if slots_dir:
        try:
            slot, lock_fd = claim_slot(Path(slots_dir))
        except OSError as exc:
            raise EntrypointError(f"cannot use state slots in {slots_dir}: {exc}") from exc
        env["FEDCHAIN_STATE_DIR"] = str(slot)
    if env.get("FEDCHAIN_HOST") == "0.0.0.0" and not env.get("FEDCHAIN_ADVERTISE_HOST"):
        env["FEDCHAIN_ADVERTISE_HOST"] = own_address()
    return lock_fd


def main(argv: list[str]) -> int:
    """Prepare, then exec ``argv``; exit 2 with one line if that is impossible."""
    if not argv:
        print("entrypoint: no command given", file=sys.stderr)
        return 2
    try:
        lock_fd = prepare(os.environ)
    except EntrypointError as exc:
        print(f"entrypoint: {exc}", file=sys.stderr)
        return 2
    if lock_fd is not None:
        os.set_inheritable(lock_fd, True)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"entrypoint: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
