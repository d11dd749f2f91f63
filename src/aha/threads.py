"""How many CPU threads torch uses in ``aha train`` and ``aha demo``: enough to use the cores this process
may run on, never more than are free.

torch's default (one thread per core) oversubscribes a machine whose cores are shared, by the processes of one
``accelerate launch`` or by other jobs, and a busy core makes every thread wait: on a 2-core machine under
load a training step took 33 s with two threads against 11 s with one (issue 23).
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_threads(requested: int | None = None, processes: int = 1) -> tuple[int, str]:
    """(threads, why): ``requested`` if given; else ``OMP_NUM_THREADS`` if set (``torchrun`` and ``accelerate
    launch`` set it for several processes); else the free cores (cores minus the 1-minute load average, the
    work of other processes) shared among this machine's ``processes``, at least 1."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"--threads must be a whole number >= 1, got {requested!r}")
        return requested, "--threads"
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes!r}")
    variable = os.environ.get("OMP_NUM_THREADS", "")
    if variable.isdigit() and int(variable) >= 1:
        return int(variable), "OMP_NUM_THREADS"
    cores = available_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads = max(1, min(cores, round(cores - load)) // processes)
    return threads, f"{cores} cores, load average {load:.1f}, {processes} process(es) on this machine"


def set_threads(requested: int | None, processes: int = 1, announce: str | None = None) -> int:
    """Choose the thread count (:func:`choose_threads`), give it to torch, and print it after ``announce``
    (e.g. ``"[aha demo]"``; None prints nothing). Returns the count."""
    import torch

    threads, why = choose_threads(requested, processes)
    torch.set_num_threads(threads)
    if announce:
        print(f"{announce} torch CPU threads: {threads} ({why}; --threads N sets it)", flush=True)
    return threads
