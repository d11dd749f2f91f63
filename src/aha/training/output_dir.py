"""Refusing to mix two runs in one output directory.

The arguments that define a run (everything but ``OPERATIONAL_ARGS`` and the secrets) are written to
``<output_dir>/aha_training_args.json`` when its training starts, after every check of the arguments, the
classifier and the data. Once the directory holds a checkpoint or a saved explainer, a later start in it
must either resume that run with the same arguments, or pass ``--overwrite_output_dir``; a run that saved
neither (it failed before its first checkpoint) does not lock the directory.
"""

from __future__ import annotations

import json
import os

from ..persistence.atomic_writer import refuse_symlink, write_json
from ..persistence.safe_readers import read_json
from .arguments import OPERATIONAL_ARGS, public_values
from .checkpointing import CHECKPOINTS_DIR, latest_checkpoint


RUN_ARGS_FILE = "aha_training_args.json"


def run_args(*arguments) -> dict:
    """The JSON-able values of the argument dataclasses (resolved for the processes) that define the run."""
    return json.loads(json.dumps({k: v for k, v in public_values(*arguments).items() if k not in OPERATIONAL_ARGS}))


def check_output_dir(output_dir: str, current: dict, overwrite: bool, resume_from_checkpoint: str | None) -> None:
    """Raise ValueError when ``output_dir`` already holds something other than the run being resumed (``current``:
    its :func:`run_args`), or a symbolic link where the run writes and deletes checkpoints (files the run writes at
    links are replaced by :mod:`aha.persistence.atomic_writer`, never followed). ``overwrite``: ``--overwrite_output_dir``."""
    path = os.path.join(output_dir, RUN_ARGS_FILE)
    refuse_symlink(os.path.join(output_dir, CHECKPOINTS_DIR))  # checkpoints are written and deleted in there
    empty = not os.path.isdir(output_dir) or not os.listdir(output_dir)
    saved = latest_checkpoint(output_dir) is not None or os.path.exists(os.path.join(output_dir, "config.json"))
    never_saved = os.path.exists(path) and not saved  # a run that failed before saving: its arguments are replaced
    if overwrite or empty or never_saved:
        if resume_from_checkpoint == "latest":
            raise ValueError(f"--resume_from_checkpoint latest: {output_dir} holds no checkpoint to resume")
        return
    if not os.path.exists(path):
        raise ValueError(
            f"{output_dir} is not empty and holds no aha training run ({RUN_ARGS_FILE}); choose another "
            "--output_dir or pass --overwrite_output_dir"
        )
    previous = read_json(path)
    differing = sorted(k for k in previous.keys() | current.keys() if previous.get(k) != current.get(k))
    if differing:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in differing)
        raise ValueError(
            f"{output_dir} holds a different run ({details}); choose another --output_dir or pass "
            "--overwrite_output_dir"
        )
    if resume_from_checkpoint is None and latest_checkpoint(output_dir) is not None:
        raise ValueError(
            f"{output_dir} holds checkpoints of this run; pass --resume_from_checkpoint latest to continue it "
            "or --overwrite_output_dir to start again"
        )


def write_run_args(output_dir: str, recorded: dict) -> None:
    """Write :func:`run_args` (taken when the run was checked) into ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, RUN_ARGS_FILE), recorded)
