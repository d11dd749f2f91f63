"""An AdamW optimiser's state in a training checkpoint, never pickled: :func:`write_optimizer` stores its
``state_dict()`` as safetensors (per-parameter tensors; the parameter groups and any non-tensor state as JSON in
the header), :func:`read_optimizer` reads it back against the live optimiser's groups, and
:func:`check_optimizer_values` checks its values (options, learning rate, step counts, moments)."""

from __future__ import annotations

import json

import torch

from ..persistence.atomic_writer import write_safetensors
from ..persistence.safe_readers import read_safetensors
from ..validation import check_number
from .state_checks import checked_like, checked_values


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
    groups = checked_like(groups, fresh["param_groups"], f"{path}: param_groups")
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


def check_optimizer_values(
    path: str, state_dict: dict, optimizer: torch.optim.Optimizer, completed_steps: int
) -> None:
    """Check the values of an optimiser ``state_dict`` read by :func:`read_optimizer` against the live
    ``optimizer``: options (betas, eps, weight decay, initial lr, ...) equal to the live ones, the learning rate in
    [0, initial lr], per parameter a step count in [0, completed_steps] and moments of the parameter's shape and
    dtype (second moments >= 0). Tensors were checked finite as they were read."""
    fresh_groups = optimizer.state_dict()["param_groups"]
    for index, (group, fresh) in enumerate(zip(state_dict["param_groups"], fresh_groups)):
        ceiling = fresh.get("initial_lr", fresh["lr"]) * (1 + 1e-6)
        checked_values(group, fresh, f"{path}: param_groups[{index}]", {"lr": dict(minimum=0, maximum=ceiling)})
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
