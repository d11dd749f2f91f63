"""Refusing to mix two runs in one output directory.

The arguments that define a run (everything but ``OPERATIONAL_ARGS``) are written to
``<output_dir>/aha_training_args.json`` when it starts. A later start in the same directory must either
resume that run with the same arguments, or pass ``--overwrite_output_dir``.
"""

from __future__ import annotations

import argparse
import json
import os

from .arguments import OPERATIONAL_ARGS, public_args
from .checkpointing import latest_checkpoint

RUN_ARGS_FILE = "aha_training_args.json"


def run_args(args: argparse.Namespace) -> dict:
    """The JSON-able arguments that define the run."""
    return json.loads(json.dumps({k: v for k, v in public_args(args).items() if k not in OPERATIONAL_ARGS}))


def check_output_dir(args: argparse.Namespace) -> None:
    """Raise ValueError when ``args.output_dir`` already holds something other than the run being resumed."""
    path = os.path.join(args.output_dir, RUN_ARGS_FILE)
    if args.overwrite_output_dir or not os.path.isdir(args.output_dir) or not os.listdir(args.output_dir):
        if args.resume_from_checkpoint == "latest":
            raise ValueError(f"--resume_from_checkpoint latest: {args.output_dir} holds no run to resume")
        return
    if not os.path.exists(path):
        raise ValueError(
            f"{args.output_dir} is not empty and holds no aha training run ({RUN_ARGS_FILE}); choose another "
            "--output_dir or pass --overwrite_output_dir"
        )
    with open(path) as handle:
        previous = json.load(handle)
    current = run_args(args)
    differing = sorted(k for k in previous.keys() | current.keys() if previous.get(k) != current.get(k))
    if differing:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in differing)
        raise ValueError(
            f"{args.output_dir} holds a different run ({details}); choose another --output_dir or pass "
            "--overwrite_output_dir"
        )
    if args.resume_from_checkpoint is None and latest_checkpoint(args.output_dir) is not None:
        raise ValueError(
            f"{args.output_dir} holds checkpoints of this run; pass --resume_from_checkpoint latest to continue it "
            "or --overwrite_output_dir to start again"
        )


def write_run_args(args: argparse.Namespace) -> None:
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, RUN_ARGS_FILE), "w") as handle:
        json.dump(run_args(args), handle, indent=2, sort_keys=True)
