"""Training checkpoints that are complete or absent, never half-written.

``accelerator.save_state`` writes into ``checkpoints/.tmp-step_<N>``; the files are flushed to disk and
only then is the folder renamed to ``checkpoints/step_<N>`` (a rename within one file system is atomic).
A crash mid-write leaves a ``.tmp-`` folder, which is never taken for a checkpoint and is cleared by the
next save.
"""

from __future__ import annotations

import os
import re
import shutil

from accelerate import Accelerator

CHECKPOINTS_DIR = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, CHECKPOINTS_DIR, f"step_{step}")


def latest_checkpoint(output_dir: str) -> str | None:
    """The complete checkpoint with the highest step in ``output_dir``, or None."""
    root = os.path.join(output_dir, CHECKPOINTS_DIR)
    if not os.path.isdir(root):
        return None
    steps = [int(m.group(1)) for name in os.listdir(root) if (m := _STEP_DIR.match(name))]
    return checkpoint_dir(output_dir, max(steps)) if steps else None


def resolve_checkpoint(resume_from_checkpoint: str, output_dir: str) -> str:
    """``"latest"`` -> the newest checkpoint of ``output_dir``; a path -> itself. Raises when absent."""
    path = latest_checkpoint(output_dir) if resume_from_checkpoint == "latest" else resume_from_checkpoint
    if path is None or not os.path.isdir(path):
        where = f"in {os.path.join(output_dir, CHECKPOINTS_DIR)}" if path is None else f"at {path}"
        raise FileNotFoundError(f"no checkpoint to resume from {where}")
    return path


def _fsync_tree(path: str) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())


def save_checkpoint(accelerator: Accelerator, output_dir: str, step: int) -> str:
    """Save the full training state (model, optimiser, scheduler, RNGs, registered objects) for ``step``
    atomically; every process must call it. Returns the checkpoint folder."""
    final = checkpoint_dir(output_dir, step)
    temporary = os.path.join(os.path.dirname(final), f".tmp-step_{step}")
    if accelerator.is_main_process and os.path.exists(temporary):
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _fsync_tree(temporary)
        if os.path.exists(final):  # the same step saved again (a re-run from an earlier checkpoint)
            shutil.rmtree(final)
        os.replace(temporary, final)
    accelerator.wait_for_everyone()
    return final


class StepCounter:
    """Optimiser steps completed so far; registered with ``accelerator.register_for_checkpointing``."""

    def __init__(self):
        self.completed_steps = 0

    def state_dict(self) -> dict:
        return {"completed_steps": self.completed_steps}

    def load_state_dict(self, state: dict) -> None:
        self.completed_steps = state["completed_steps"]
