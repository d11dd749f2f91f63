"""The Accelerate training loop of AHA explainers: :func:`train` (``aha train`` in Python).

    from aha.training import DataArguments, ModelArguments, OptimisationArguments, RunArguments, train

    explainer = train(DataArguments(train_dir="photos/"),
                      ModelArguments(model_name_or_path="google/vit-base-patch16-224"),
                      OptimisationArguments(max_train_steps=2000), RunArguments(output_dir="aha-vit"))

The arguments (:mod:`aha.training.arguments`) load at once; everything else, which needs accelerate and
torch, on first use (PEP 562), so ``aha train --help`` answers without them.
"""

from __future__ import annotations

import importlib

from .arguments import (
    DataArguments,
    ModelArguments,
    OptimisationArguments,
    RunArguments,
    as_flags,
    build_parser,
    check_arguments,
)


#: public name -> the module defining it, imported on first access
_EXPORTS = {
    "TrainingState": ".checkpointing",
    "latest_checkpoint": ".checkpointing",
    "save_checkpoint": ".checkpointing",
    "main": ".loop",
    "set_up": ".loop",
    "train": ".loop",
    "training_loop": ".loop",
    "warmup_cosine_schedule": ".schedule",
}
__all__ = sorted(
    [
        "DataArguments",
        "ModelArguments",
        "OptimisationArguments",
        "RunArguments",
        "as_flags",
        "build_parser",
        "check_arguments",
        *_EXPORTS,
    ]
)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aha.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
