"""``aha demo --world all --jobs N``: the worlds side by side, each in its own ``aha demo --world WORLD`` process.

A world in its own process keeps a core busy without sharing a thread pool. Measured on 2 idle cores
(benchmarks/RESULTS.md, "`aha demo --quick`"): ``--jobs 2`` took 0.70 of the time of the quick preset's three worlds
one after the other on one thread, about what a second thread gives one world (``--threads 2``: 0.66 on AHA Shapes'
quick world); so on 2 cores the two ways tie, and side by side is for the cores a world's threads cannot use (not
measured here). Each process writes its world's report and per-image scores as a one-world run does, and its output
to ``OUTPUT/demo-WORLD.log``; the macro table is built from the scores they wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..persistence.atomic_writer import refuse_symlink
from ..threads import choose_threads


def world_command(world: str, output: Path, preset: str, seed: int, threads: int) -> list[str]:
    """The one-world ``aha demo`` run of ``world`` into ``output``, as a fresh interpreter."""
    options = ["--world", world, "--preset", preset, "--seed", str(seed), "--threads", str(threads)]
    return [sys.executable, "-m", "aha", "demo", *options, "--output", str(output)]


def run_side_by_side(worlds: list[str], output: Path, preset: str, seed: int, jobs: int, threads: int | None) -> None:
    """Run each of ``worlds`` in its own ``aha demo`` process, ``jobs`` at a time, each with ``threads`` torch
    threads (None: the free cores shared among the processes running at once); raises ``SystemExit`` naming the
    worlds that failed and their logs."""
    jobs = min(jobs, len(worlds))
    threads, why = choose_threads(threads, processes=jobs)
    os.makedirs(output, exist_ok=True)  # the user's --output, which may itself be a link (as for the macro report)
    for world in worlds:  # before any work starts
        refuse_symlink(str(output / f"demo-{world}.log"))
    print(f"[aha demo] {len(worlds)} worlds, {jobs} at a time, each process with {threads} torch thread(s) ({why})")

    def run(world: str) -> int:
        log = output / f"demo-{world}.log"
        print(f"[aha demo] {world}: started, output in {log}", flush=True)
        # the log never follows a link, even one put in its place since the check above
        handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with open(handle, "w") as stream:
            code = subprocess.run(
                world_command(world, output, preset, seed, threads), stdout=stream, stderr=subprocess.STDOUT
            ).returncode
        print(f"[aha demo] {world}: {'done' if code == 0 else f'FAILED (exit {code})'}", flush=True)
        return code

    with ThreadPoolExecutor(jobs) as pool:
        codes = dict(zip(worlds, pool.map(run, worlds)))
    failed = [world for world, code in codes.items() if code]
    if failed:
        logs = ", ".join(str(output / f"demo-{world}.log") for world in failed)
        raise SystemExit(f"[aha demo] {', '.join(failed)} failed: see {logs}")
