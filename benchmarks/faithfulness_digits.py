"""Faithfulness of AHA against the baselines on real digits (the "Faithfulness (digits)" section of RESULTS.md).

    python benchmarks/faithfulness_digits.py            # the recorded run: examples/demo_digits.py --full

Runs the offline demo (examples/demo_digits.py) with its benchmark settings, writes the figure to
benchmarks/figures/digits_comparison.png and prints the markdown section to paste into RESULTS.md
(command, hardware, run time, classifier accuracy, table). Any demo flag may be added, e.g. --seed 1.
"""

import os
import platform
import sys

import torch


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from demo_digits import parse_args, run  # noqa: E402


FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "digits_comparison.png")


def hardware() -> str:
    """CPU model, logical cores, torch threads used."""
    model = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def main(argv: list[str]) -> None:
    args = parse_args(["--full", "--output_dir", "aha-digits-benchmark", "--figure", FIGURE, *argv])
    outcome = run(args)
    command = " ".join(["python", "benchmarks/faithfulness_digits.py", *argv])
    print("\n## Faithfulness (digits)\n")
    print(f"`{command}` (= `python examples/demo_digits.py --full`), {hardware()}, {args.threads} torch thread(s): "
          f"{outcome['seconds'] / 60:.1f} min end to end. Classifier test accuracy {outcome['accuracy']:.4f}; "
          f"{args.eval_images} held-out digits, predicted class, mean AUC ± standard error.\n")
    print(outcome["table"])


if __name__ == "__main__":
    main(sys.argv[1:])
