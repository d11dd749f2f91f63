"""Training checkpoints: complete or absent, never half-written, and never unpickled.

A checkpoint ``checkpoints/step_<N>`` holds only safetensors and JSON files:

- ``model.safetensors``: the explainer's trained weights, without the frozen classifier (as in a
  decoder-only save: every key but ``classifier.*``);
- ``optimizer.safetensors``: the optimiser's per-parameter tensors; its header metadata holds the
  parameter groups and any non-tensor state as JSON;
- ``training_state.json``: the steps completed, the data position, the learning-rate scheduler, the
  gradient scaler, accelerate's micro-step counter, the number of processes and the fingerprint of the
  classifier the run trains against (see :func:`aha.persistence.fingerprints.weights_fingerprint`);
- ``rng_state_<rank>.json``: each process's generator of the objective's random draws, and its Python, NumPy,
  torch CPU and accelerator RNG states.

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
RNG states (each restored into a scratch generator first). A message names the file and the field.
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

import json
import os
import random
import re
import shutil
from dataclasses import dataclass

import numpy as np
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
        _check_optimizer_values(optimizer_path, optimizer_state, self.optimizer, completed_steps)
        accelerator = self.accelerator
        rng_path = _require(directory, rng_file(accelerator.process_index))
        rng = _checked_rng_states(read_json(rng_path), accelerator.device, self.generator, rng_path)
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
        return _checked_values(
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
            _checked_values(
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


def _checked_values(saved, fresh, where: str, varying: dict):
    """``saved`` (checked like ``fresh`` by :func:`_checked_like`) when every value equals ``fresh``'s but those
    under the keys of ``varying`` (at any depth), which must pass ``check_number(**varying[key])`` (each element
    of a list; None: any value of ``fresh``'s type). Raises a ValueError naming the field otherwise."""
    saved = _checked_like(saved, fresh, where)

    def check(value, fresh_value, path: str) -> None:
        if isinstance(fresh_value, dict):
            for key in fresh_value:
                if key in varying:
                    rule = varying[key]
                    values = value[key] if isinstance(value[key], (list, tuple)) else [value[key]]
                    for index, element in enumerate(values if rule is not None else ()):
                        suffix = f"[{index}]" if isinstance(value[key], (list, tuple)) else ""
                        check_number(f"{path}.{key}{suffix}", element, **rule)
                else:
                    check(value[key], fresh_value[key], f"{path}.{key}")
        elif isinstance(fresh_value, (list, tuple)) and any(isinstance(v, dict) for v in fresh_value):
            for index, (element, fresh_element) in enumerate(zip(value, fresh_value)):
                check(element, fresh_element, f"{path}[{index}]")
        elif value != fresh_value:
            raise ValueError(
                f"{path} is {value!r:.100}, this run's is {fresh_value!r:.100}: the checkpoint was written with other "
                "optimiser or schedule options (or edited); resume with the options of the run that wrote it"
            )

    check(saved, fresh, where)
    return saved


def _checked_like(saved, fresh, where: str):
    """``saved`` when it has the structure of ``fresh`` (same keys, same JSON types), else a ValueError."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or saved.keys() != fresh.keys():
            raise ValueError(f"{where} should have the keys {sorted(fresh)}, got {saved!r:.200}")
        return {key: _checked_like(saved[key], fresh[key], f"{where}.{key}") for key in fresh}
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            raise ValueError(f"{where} should be a list of {len(fresh)} values, got {saved!r:.200}")
        return type(fresh)(_checked_like(s, f, f"{where}[{i}]") for i, (s, f) in enumerate(zip(saved, fresh)))
    number = (int, float)
    if isinstance(fresh, bool) or fresh is None or isinstance(fresh, str):
        ok = type(saved) is type(fresh)
    else:
        ok = isinstance(saved, number) and not isinstance(saved, bool) and isinstance(fresh, number)
    if not ok:
        raise ValueError(f"{where} should be like {fresh!r}, got {saved!r:.200}")
    return saved


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


# ------------------------------------------------------------------------------------------------ optimiser
def write_optimizer(path: str, state_dict: dict) -> None:
    """An optimiser's ``state_dict()`` as safetensors: tensors as ``state.<param>.<name>``, the rest as JSON
    in the header metadata (``param_groups``; ``scalars``: non-tensor per-parameter values)."""
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    write_safetensors(
        path,
        tensors,
        {
            "param_groups": json.dumps(state_dict["param_groups"], allow_nan=False),
            "scalars": json.dumps(scalars, allow_nan=False),
        },
    )


def read_optimizer(path: str, fresh: dict) -> dict:
    """The optimiser ``state_dict`` stored by :func:`write_optimizer`, checked against ``fresh`` (the
    state_dict of the optimiser it will be loaded into: same groups, options and parameters)."""
    tensors, metadata = read_safetensors(path)
    try:
        groups = json.loads(metadata["param_groups"])
        scalars = json.loads(metadata["scalars"])
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path} holds no optimiser parameter groups ({error!r}): it is damaged") from error
    groups = _checked_like(groups, fresh["param_groups"], f"{path}: param_groups")
    parameters = {index for group in fresh["param_groups"] for index in group["params"]}
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *(("state." + k, v) for k, v in scalars.items())]:
        _, index, name = key.split(".", 2)
        if not index.isdigit() or int(index) not in parameters:
            raise ValueError(f"{path} holds the state of an unknown parameter ({key})")
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}


#: what AdamW keeps per parameter: a step count and moments shaped like the parameter (non-negative second moments)
_MOMENTS = {"exp_avg": False, "exp_avg_sq": True, "max_exp_avg_sq": True}


def _check_optimizer_values(
    path: str, state_dict: dict, optimizer: torch.optim.Optimizer, completed_steps: int
) -> None:
    """Check the values of an optimiser ``state_dict`` read by :func:`read_optimizer` against the live
    ``optimizer``: options (betas, eps, weight decay, initial lr, ...) equal to the live ones, the learning rate in
    [0, initial lr], per parameter a step count in [0, completed_steps] and moments of the parameter's shape and
    dtype (second moments >= 0). Tensors were checked finite as they were read."""
    fresh_groups = optimizer.state_dict()["param_groups"]
    for index, (group, fresh) in enumerate(zip(state_dict["param_groups"], fresh_groups)):
        ceiling = fresh.get("initial_lr", fresh["lr"]) * (1 + 1e-6)
        _checked_values(group, fresh, f"{path}: param_groups[{index}]", {"lr": dict(minimum=0, maximum=ceiling)})
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    for index, values in state_dict["state"].items():
        parameter = parameters[index]
        for name, value in values.items():
            where = f"{path}: state.{index}.{name}"
            if not isinstance(value, torch.Tensor) or (name != "step" and name not in _MOMENTS):
                raise ValueError(f"{where} is not part of an AdamW state (step, {', '.join(_MOMENTS)} tensors)")
            if name == "step":
                steps = value.item() if value.numel() == 1 and value.ndim == 0 else None
                if steps is None or steps != int(steps):
                    raise ValueError(f"{where} must be one integer step count, got shape {tuple(value.shape)}")
                check_number(where, int(steps), integer=True, minimum=0, maximum=completed_steps)
            elif value.shape != parameter.shape or value.dtype != parameter.dtype:
                raise ValueError(
                    f"{where} is {tuple(value.shape)} {value.dtype}, this run's parameter is {tuple(parameter.shape)} "
                    f"{parameter.dtype}: the checkpoint belongs to another explainer"
                )
            elif _MOMENTS[name] and (value < 0).any():
                raise ValueError(f"{where} holds negative values: a second moment is never negative")


# ------------------------------------------------------------------------------------------------ RNGs
def rng_states(device: torch.device, generator: torch.Generator | None = None) -> dict:
    """This process's RNG states as JSON values: ``generator``'s (the objective's), Python's, NumPy's, torch's
    CPU one and, on an accelerator with per-device generators (CUDA, XPU, ...), every device's."""
    version, internal, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss_next],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
        "device": None,
        "objective": generator.get_state().tolist() if generator is not None else None,
    }
    module = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(module, "get_rng_state_all"):
        states["device"] = {"type": device.type, "states": [s.tolist() for s in module.get_rng_state_all()]}
    return states


def _checked_rng_states(states, device: torch.device, generator: torch.Generator | None, where: str) -> dict:
    """``states`` when :func:`set_rng_states` can restore them: shaped like this process's (:func:`rng_states`),
    bytes in [0, 255], and accepted by scratch generators of each kind (nothing global is touched)."""
    states = _checked_like(states, rng_states(device, generator), where)

    def check_bytes(values, name):
        for index, value in enumerate(values):
            check_number(f"{where}: {name}[{index}]", value, integer=True, minimum=0, maximum=255)
        return torch.tensor(values, dtype=torch.uint8)

    _, _, position, has_gauss, cached = states["numpy"]
    check_number(f"{where}: numpy[2] (position)", position, integer=True, minimum=0, maximum=624)
    check_number(f"{where}: numpy[3] (has_gauss)", has_gauss, integer=True, minimum=0, maximum=1)
    check_number(f"{where}: numpy[4] (cached gaussian)", cached)
    try:
        version, internal, gauss_next = states["python"]
        random.Random().setstate((version, tuple(internal), gauss_next))
        name, keys, position, has_gauss, cached = states["numpy"]
        np.random.RandomState().set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{where}: the python or numpy RNG state cannot be restored ({error})") from error
    for name, values, scratch_device in (
        ("torch", states["torch"], "cpu"),
        ("objective", states["objective"], generator.device if generator else None),
    ):
        if values is not None:
            try:
                torch.Generator(scratch_device).set_state(check_bytes(values, name))
            except RuntimeError as error:
                raise ValueError(f"{where}: {name} is not an RNG state of this run ({error})") from error
    if states["device"] is not None:
        if states["device"]["type"] != device.type:
            raise ValueError(
                f"{where}: RNG states of {states['device']['type']} devices cannot be restored on {device.type}"
            )
        for index, values in enumerate(states["device"]["states"]):
            check_bytes(values, f"device.states[{index}]")
    return states


def set_rng_states(states: dict, device: torch.device, generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_states` returned (``generator`` keeps its state when none was saved)."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))
    if generator is not None and states.get("objective") is not None:
        generator.set_state(torch.tensor(states["objective"], dtype=torch.uint8))
    saved = states["device"]
    if saved is not None:
        if saved["type"] != device.type:
            raise ValueError(f"RNG states of {saved['type']} devices cannot be restored on {device.type}")
        getattr(torch, device.type).set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in saved["states"]])


# ------------------------------------------------------------------------------------------------ atomic save
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
