"""Start-up time of the ``aha`` command: how long ``aha --help`` and friends take, and what they import.

    python benchmarks/cli_startup.py --label after [--repeats 5] [--output benchmarks/results/cli_startup.json]
    mkdir /tmp/aha-before && git archive 6705df3 src | tar -x -C /tmp/aha-before
    python benchmarks/cli_startup.py --label after --interleave before /tmp/aha-before/src --repeats 5

Each command runs ``--repeats`` times as a fresh subprocess (``python -m aha ...``, as the console script does),
wall time measured around the subprocess; the table keeps the median and the minimum. Wall time on a shared
machine measures the neighbours too: the minimum is the least disturbed run, and the load average is recorded.
Each command also reports, from inside the process, whether ``torch``, ``aha.training``, ``aha.demo``,
``aha.space``, ``aha.baselines`` and ``accelerate`` were imported. Results are appended under ``--label`` to
the JSON file, so a "before" and an "after" run sit side by side; ``--src`` runs another checkout's ``aha``
(put first on ``PYTHONPATH``), and ``--interleave`` alternates two of them command by command, so both see the
same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

from aha.persistence.atomic_writer import write_text


WATCHED = ("torch", "transformers", "aha.training", "aha.demo", "aha.space", "aha.baselines", "accelerate")
#: name -> code run in a fresh interpreter (``aha`` commands go through aha.cli.main as ``python -m aha`` does)
COMMANDS = {
    "python -c 'import aha'": "import aha",
    "aha --help": "from aha.cli import main; main(['--help'])",
    "aha --version": "from aha.cli import main; main(['--version'])",
    "aha explain --help": "from aha.cli import main; main(['explain', '--help'])",
    "aha train --help": "from aha.cli import main; main(['train', '--help'])",
    "aha demo --help": "from aha.cli import main; main(['demo', '--help'])",
    "aha explain (argument error)": "from aha.cli import main; main(['explain'])",
}
REPORT = (
    "import atexit, json, sys\n"
    f"atexit.register(lambda: print('IMPORTED=' + json.dumps([m for m in {WATCHED!r} if m in sys.modules]), file=sys.stderr))\n"
)


def run(code: str, src: str | None = None) -> tuple[float, list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", REPORT + code], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    line = next(line for line in done.stderr.splitlines() if line.startswith("IMPORTED="))
    return seconds, json.loads(line.removeprefix("IMPORTED="))


def where(src: str | None) -> str:
    """The aha package a run imports (to check that --src took effect)."""
    env = {**os.environ, "PYTHONPATH": src} if src else None
    return subprocess.run(
        [sys.executable, "-c", "import aha; print(aha.__file__)"], capture_output=True, text=True, env=env
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", required=True, help="Name of this run in the results file (e.g. before, after).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "cli_startup.json"))
    parser.add_argument(
        "--src", default=None, help="A checkout's src/ folder to import aha from (default: the installed one)."
    )
    parser.add_argument(
        "--interleave",
        nargs=2,
        metavar=("LABEL", "SRC"),
        default=None,
        help="A second checkout, run after each command of the first: recorded under LABEL.",
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    runs = {args.label: args.src, **({args.interleave[0]: args.interleave[1]} if args.interleave else {})}
    rows = {label: {} for label in runs}
    for name, code in COMMANDS.items():
        times = {label: [] for label in runs}
        imported = {}
        for _ in range(args.repeats):
            for label, src in runs.items():
                seconds, imported[label] = run(code, src)
                times[label].append(seconds)
        for label in runs:
            rows[label][name] = {
                "median_s": round(statistics.median(times[label]), 3),
                "min_s": round(min(times[label]), 3),
                "times_s": [round(t, 3) for t in times[label]],
                "imported": imported[label],
            }
            row = rows[label][name]
            print(
                f"{label:8s} {name:32s} median {row['median_s']:6.2f} s  min {row['min_s']:6.2f} s  imports {row['imported']}"
            )
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.is_file() else {}
    machine = describe()
    for label, src in runs.items():
        results[label] = {"machine": machine, "aha": where(src), "repeats": args.repeats, "commands": rows[label]}
    write_text(output, json.dumps(results, indent=2) + "\n")
    print(f"wrote {output} {list(runs)}")


if __name__ == "__main__":
    main()
