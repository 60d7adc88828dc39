"""Memory of processes and of the machine, in KiB (psutil)."""

from __future__ import annotations

import psutil


def memory_kib(pid: int) -> dict[str, int]:
    """RSS, PSS and USS of ``pid`` in KiB; zeros when it is gone."""
    try:
        full = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return {"rss": 0, "pss": 0, "uss": 0}
    return {"rss": int(full.rss) // 1024, "pss": int(getattr(full, "pss", 0)) // 1024,
            "uss": int(full.uss) // 1024}


def mem_available_kib() -> int:
    """Memory available to new processes on this machine, in KiB."""
    return int(psutil.virtual_memory().available) // 1024


def mem_total_kib() -> int:
    """Physical memory of this machine, in KiB."""
    return int(psutil.virtual_memory().total) // 1024
