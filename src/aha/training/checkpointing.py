"""Training checkpoints: complete or absent, never half-written, and never unpickled.

A checkpoint ``checkpoints/step_<N>`` holds only safetensors and JSON files:

- ``model.safetensors``: the explainer's trained weights, without the frozen classifier (as in a
  decoder-only save: every key but ``classifier.*``);
- ``optimizer.safetensors``: the optimiser's per-parameter tensors; its header metadata holds the
  parameter groups and any non-tensor state as JSON (:mod:`aha.training.optimizer_state`);
- ``training_state.json``: the steps completed, the data position, the learning-rate scheduler, the
  gradient scaler, accelerate's micro-step counter, the number of processes and the fingerprint of the
  classifier the run trains against (see :func:`aha.persistence.fingerprints.weights_fingerprint`);
- ``rng_state_<rank>.json``: each process's generator of the objective's random draws, and its Python, NumPy,
  torch CPU and accelerator RNG states (:mod:`aha.training.rng_state`).

Why not ``accelerator.save_state`` / ``load_state``: they write the optimiser, scheduler, RNG states and
registered objects as pickles, and resuming reads registered objects back without torch's weights-only guard
(a crafted file runs code), swallows unreadable RNG states, and restores the frozen classifier from the
checkpoint (a checkpoint of another run silently swaps it). Here the classifier is never stored: a resume
checks its fingerprint and refuses a checkpoint made for another classifier or another decoder shape.

Every file is read and every restored value checked before any state is changed: the format, the classifier,
the decoder's shapes, finite tensors (safetensors files with NaN or infinities are refused as they are read), the
counters against this run (``1 <= completed_steps <= max_train_steps``, the folder's step, the data position within
the batches those steps consumed), the optimiser's and the scheduler's options against the live ones (the
learning rate within ``[0, initial lr]``, the same betas, eps, weight decay, schedule), the moments' shapes, and the
RNG states (each restored into a scratch generator first). A message names the file and the field
(:mod:`aha.training.state_checks`).
Files are written into ``checkpoints/.tmp-step_<N>``, flushed to disk, and only then is the folder renamed
to ``checkpoints/step_<N>`` (a rename within one file system is atomic), all through
:mod:`aha.persistence.atomic_writer`. A crash mid-write leaves a
``.tmp-`` folder, which is never taken for a checkpoint and is cleared by the next save. When the
accelerator's ``ProjectConfiguration`` has a ``total_limit`` (``--checkpoints_total_limit``), the oldest
checkpoints beyond it are deleted after each save. (Accelerate's own naming and rotation,
``automatic_checkpoint_naming``, live inside ``save_state``, which writes pickles; the names here stay
``step_<N>``, the step itself.)
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from ..data import TrainingBatches
from ..modeling.modeling_aha import AHAExplainer
from ..persistence.atomic_writer import (
    fresh_staging_folder,
    publish_folder,
    refuse_symlink,
    staging_name,
    write_json,
    write_safetensors,
)
from ..persistence.explainer_saving import own_weights
from ..persistence.fingerprints import short_fingerprint
from ..persistence.safe_readers import read_json, read_safetensors, safetensors_header
from ..validation import check_number
from .optimizer_state import check_optimizer_values, read_optimizer, write_optimizer
from .rng_state import checked_rng_states, rng_states, set_rng_states
from .state_checks import checked_values


CHECKPOINTS_DIR = "checkpoints"
FORMAT_VERSION = 2  # 2: a SequentialLR schedule and the objective's generator (1 cannot be resumed exactly)
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "training_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, CHECKPOINTS_DIR, f"step_{step}")


def rng_file(rank: int) -> str:
    return f"rng_state_{rank}.json"


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


def trainable_state_dict(model: AHAExplainer) -> dict[str, torch.Tensor]:
    """The explainer's weights without the frozen classifier: what a checkpoint stores."""
    return own_weights(model.state_dict())


@dataclass
class TrainingState:
    """Everything a resume restores, and the classifier it must be restored against.

    Attributes:
        accelerator: the run's accelerator (its micro-step counter and gradient scaler are saved).
        model: the unwrapped explainer.
        optimizer, lr_scheduler: as prepared by the accelerator.
        batches: the training batches (their position is saved).
        classifier_fingerprint: :func:`~aha.persistence.fingerprints.weights_fingerprint` of the frozen classifier.
        completed_steps: optimiser steps completed so far.
        generator: the generator of the objective's random draws (grid size, reference, Gumbel noise).
        max_train_steps: optimiser steps of the whole run: a resumed ``completed_steps`` must not exceed it
            (None: no upper bound).
    """

    accelerator: Accelerator
    model: AHAExplainer
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    batches: TrainingBatches
    classifier_fingerprint: str
    completed_steps: int = 0
    generator: torch.Generator | None = None
    max_train_steps: int | None = None

    def write(self, directory: str) -> None:
        """Write the state into ``directory`` (which must exist); every process must call it."""
        accelerator = self.accelerator
        position = self.batches.state_dict()  # a collective call
        if accelerator.is_main_process:
            write_safetensors(
                os.path.join(directory, MODEL_FILE),
                trainable_state_dict(self.model),
                {"classifier_fingerprint": self.classifier_fingerprint},
            )
            write_optimizer(os.path.join(directory, OPTIMIZER_FILE), self.optimizer.state_dict())
            write_json(
                os.path.join(directory, STATE_FILE),
                {
                    "format_version": FORMAT_VERSION,
                    "completed_steps": self.completed_steps,
                    "num_processes": accelerator.num_processes,
                    "classifier_fingerprint": self.classifier_fingerprint,
                    "data_position": position,
                    "lr_scheduler": self.lr_scheduler.state_dict(),
                    "grad_scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                    "accelerator_step": accelerator.step,
                },
            )
        rng_path = os.path.join(directory, rng_file(accelerator.process_index))
        write_json(rng_path, rng_states(accelerator.device, self.generator), indent=None)

    def read(self, directory: str) -> None:
        """Restore the state saved in ``directory``, after checking every file it reads.

        Raises:
            FileNotFoundError: a file of the checkpoint is missing (e.g. a checkpoint written by an older
                version through ``accelerator.save_state``, whose pickles are never read).
            ValueError: a file is damaged or not what it should be; the checkpoint was made for another
                classifier, another decoder shape, other optimiser or schedule options or another number of
                processes; a restored value is out of range or not finite (naming the file and the field). These are
                found before anything is restored.
        """
        state_path, state = self._read_state_file(directory)
        current, weights = self._read_weights(directory)
        completed_steps, accelerator_step = self._check_counters(directory, state_path, state)
        optimizer_path = _require(directory, OPTIMIZER_FILE)
        optimizer_state = read_optimizer(optimizer_path, self.optimizer.state_dict())
        check_optimizer_values(optimizer_path, optimizer_state, self.optimizer, completed_steps)
        accelerator = self.accelerator
        rng_path = _require(directory, rng_file(accelerator.process_index))
        rng = checked_rng_states(read_json(rng_path), accelerator.device, self.generator, rng_path)
        scheduler_state = self._checked_scheduler_state(state_path, state, completed_steps)
        self._check_grad_scaler(directory, state_path, state)
        _check_data_position(state.get("data_position"), self.batches, completed_steps, f"{state_path}: data_position")

        try:
            with torch.no_grad():
                for key, value in current.items():
                    value.copy_(weights[key])
            self.optimizer.load_state_dict(optimizer_state)
            self.lr_scheduler.load_state_dict(scheduler_state)
            if accelerator.scaler is not None:
                accelerator.scaler.load_state_dict(state["grad_scaler"])
            self.batches.load_state_dict(state["data_position"])
            set_rng_states(rng, accelerator.device, self.generator)
            accelerator.step = accelerator_step
            self.completed_steps = completed_steps
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{directory} holds a training state that does not fit this run: {error!r}") from error

    def _read_state_file(self, directory: str) -> tuple[str, dict]:
        """``(path, content)`` of the checkpoint's training state, after checking its format version, the
        classifier it records and the number of processes that wrote it."""
        state_path = _require(directory, STATE_FILE)
        state = read_json(state_path)
        if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{state_path} is not a training state of format version {FORMAT_VERSION} "
                "(a checkpoint of an older aha-explain, whose schedule and random draws differ, cannot be resumed exactly)"
            )
        _check_classifier(directory, state.get("classifier_fingerprint"), self.classifier_fingerprint)
        if state.get("num_processes") != self.accelerator.num_processes:
            raise ValueError(
                f"{directory} was written by {state.get('num_processes')} processes; resume it with the same number "
                f"of processes (this run has {self.accelerator.num_processes}), or the data position would not match"
            )
        return state_path, state

    def _read_weights(self, directory: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(current, saved)``: the explainer's trainable weights (to be overwritten) and the checkpoint's, after
        checking the classifier the weights file records, the decoder's shapes and that every value is finite."""
        model_path = _require(directory, MODEL_FILE)
        current = trainable_state_dict(self.model)
        saved_shapes, metadata = safetensors_header(model_path)
        _check_classifier(model_path, metadata.get("classifier_fingerprint"), self.classifier_fingerprint)
        _check_shapes(model_path, saved_shapes, current)
        weights, _ = read_safetensors(model_path)  # refuses NaN and infinities, naming the tensor
        return current, weights

    def _checked_scheduler_state(self, state_path: str, state: dict, completed_steps: int) -> dict:
        """The saved learning-rate scheduler's state, checked against the live one: the same options, counters
        within the steps done, learning rates within ``[0, initial lr]``."""
        scheduler_steps = completed_steps * self.accelerator.num_processes  # accelerate steps it once per process
        highest_lr = max(group.get("initial_lr", group["lr"]) for group in self.optimizer.param_groups)
        return checked_values(
            state.get("lr_scheduler"),
            self.lr_scheduler.state_dict(),
            f"{state_path}: lr_scheduler",
            {
                "last_epoch": dict(integer=True, minimum=-1, maximum=scheduler_steps),
                "_step_count": dict(integer=True, minimum=0, maximum=scheduler_steps + 1),
                "_last_lr": dict(minimum=0, maximum=highest_lr * (1 + 1e-6)),
                "_is_initial": None,
                "_get_lr_called_within_step": None,
            },
        )

    def _check_grad_scaler(self, directory: str, state_path: str, state: dict) -> None:
        """Refuse a checkpoint written with a gradient scaler by a run without one (or the reverse), and a saved
        scaler whose scale is not positive or whose growth tracker is not a non-negative integer."""
        scaler = self.accelerator.scaler
        if (state.get("grad_scaler") is None) != (scaler is None):
            raise ValueError(
                f"{directory} was written {'with' if state.get('grad_scaler') is not None else 'without'} a gradient "
                "scaler (fp16 mixed precision); resume it with the same --mixed_precision"
            )
        if scaler is not None:
            checked_values(
                state["grad_scaler"],
                scaler.state_dict(),
                f"{state_path}: grad_scaler",
                {
                    "scale": dict(above=0),
                    "_growth_tracker": dict(integer=True, minimum=0),
                },
            )

    def _check_counters(self, directory: str, state_path: str, state: dict) -> tuple[int, int]:
        """``(completed_steps, accelerator_step)`` of ``state``, after checking them: ``1 <= completed_steps <=
        max_train_steps`` and the step of a ``step_<N>`` folder; the micro-step counter a multiple of the
        accumulation steps, at most ``completed_steps`` times them."""
        completed = state.get("completed_steps")
        check_number(
            f"{state_path}: completed_steps", completed, integer=True, minimum=1, maximum=self.max_train_steps
        )
        folder = _STEP_DIR.match(os.path.basename(os.path.normpath(directory)))
        if folder and int(folder.group(1)) != completed:
            raise ValueError(
                f"{state_path}: completed_steps is {completed}, but the checkpoint's folder says step "
                f"{folder.group(1)}: the file was edited or moved"
            )
        accumulation = self.accelerator.gradient_accumulation_steps
        micro_step = state.get("accelerator_step")
        check_number(
            f"{state_path}: accelerator_step", micro_step, integer=True, minimum=0, maximum=completed * accumulation
        )
        if micro_step % accumulation:
            raise ValueError(
                f"{state_path}: accelerator_step must be a multiple of the gradient accumulation steps "
                f"({accumulation}) at a checkpoint, got {micro_step}"
            )
        return completed, micro_step


def _require(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{directory} has no {name}: it is not a checkpoint of this version of aha train (checkpoints hold "
            f"{MODEL_FILE}, {OPTIMIZER_FILE}, {STATE_FILE} and {rng_file(0)}; older ones written through "
            "accelerate's save_state hold pickles and are never read)"
        )
    return path


def _check_classifier(where: str, saved: str | None, current: str) -> None:
    if saved != current:
        raise ValueError(
            f"{where} was made for another classifier: the checkpoint's classifier has the weights fingerprint "
            f"{short_fingerprint(saved)}, this run's classifier (--model_name_or_path) has {short_fingerprint(current)}"
        )


def _check_shapes(path: str, saved: dict, current: dict[str, torch.Tensor]) -> None:
    """Refuse weights of another decoder shape, naming both shapes."""
    problems = []
    for key in sorted(saved.keys() | current.keys()):
        if key not in current:
            problems.append(f"{key} is in the checkpoint but not in this run's explainer")
        elif key not in saved:
            problems.append(f"{key} {tuple(current[key].shape)} of this run's explainer is not in the checkpoint")
        elif saved[key] != (current[key].dtype, tuple(current[key].shape)):
            dtype, shape = saved[key]
            problems.append(
                f"{key}: checkpoint {shape} {dtype}, this run's explainer {tuple(current[key].shape)} {current[key].dtype}"
            )
    if problems:
        raise ValueError(
            f"{path} holds an explainer of another shape than this run's ({len(problems)} differences: "
            f"{'; '.join(problems[:4])}); resume with the explainer options of the run that wrote it"
        )


def _check_data_position(position, batches: TrainingBatches, completed_steps: int, where: str) -> None:
    """Refuse a data position that the ``completed_steps`` optimiser steps could not have reached: each consumed
    at most ``gradient_accumulation_steps`` micro-batches of this process, and an epoch of a map-style dataset
    has ``len(dataloader)`` of them. A stream holds one position per process (a dict, every number in it a
    non-negative integer; ``datasets`` reads the rest); a map-style dataset None per process."""
    keys = ["batches_in_epoch", "epoch", "stream_states"]
    if not isinstance(position, dict) or sorted(position) != keys:
        raise ValueError(f"{where} should have the keys {keys}, got {position!r:.200}")
    most = completed_steps * batches.accelerator.gradient_accumulation_steps
    check_number(f"{where}.epoch", position["epoch"], integer=True, minimum=0, maximum=most)
    per_epoch = None if batches.streaming else len(batches.dataloader)
    check_number(
        f"{where}.batches_in_epoch",
        position["batches_in_epoch"],
        integer=True,
        minimum=0,
        maximum=most if per_epoch is None else min(most, per_epoch),
    )
    if per_epoch is not None and position["epoch"] * per_epoch + position["batches_in_epoch"] > most:
        raise ValueError(
            f"{where}: epoch {position['epoch']} and batches_in_epoch {position['batches_in_epoch']} are more "
            f"micro-batches ({per_epoch} per epoch) than the {completed_steps} completed steps consumed (at most {most})"
        )
    states, processes = position["stream_states"], batches.accelerator.num_processes
    if (
        not isinstance(states, list)
        or len(states) != processes
        or not all(isinstance(state, dict) if batches.streaming else state is None for state in states)
    ):
        kind = "a stream position (a dict)" if batches.streaming else "None (a map-style dataset)"
        raise ValueError(
            f"{where}.stream_states should hold {kind} for each of {processes} processes, got {states!r:.200}"
        )

    def check(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                check(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                check(item, f"{path}[{index}]")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            check_number(path, value, integer=True, minimum=0)

    check(states, f"{where}.stream_states")


def save_checkpoint(state: TrainingState, output_dir: str, step: int) -> str:
    """Write ``state`` for ``step`` atomically; every process must call it. Returns the checkpoint folder."""
    accelerator = state.accelerator
    final = checkpoint_dir(output_dir, step)
    if accelerator.is_main_process:
        fresh_staging_folder(final, root=output_dir)  # never follows a link planted in the run's folder
    accelerator.wait_for_everyone()
    state.write(staging_name(final))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        publish_folder(staging_name(final), final)  # replaces the same step saved before (a re-run)
        _rotate(output_dir, accelerator.project_configuration.total_limit)
    accelerator.wait_for_everyone()
    return final


def _rotate(output_dir: str, total_limit: int | None) -> None:
    """Delete the oldest complete checkpoints beyond the newest ``total_limit`` (None: keep all)."""
    if total_limit is None:
        return
    root = os.path.join(output_dir, CHECKPOINTS_DIR)
    steps = sorted(int(m.group(1)) for name in os.listdir(root) if (m := _STEP_DIR.match(name)))
    for step in steps[: max(len(steps) - total_limit, 0)]:
        refuse_symlink(checkpoint_dir(output_dir, step))
        shutil.rmtree(checkpoint_dir(output_dir, step))
