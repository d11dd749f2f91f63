"""The Accelerate training loop of AHA explainers (``aha train``).

The arguments (:mod:`aha.training.arguments`) load at once; everything else, which needs accelerate and
torch, on first use (PEP 562), so ``aha train --help`` answers without them.
"""

from __future__ import annotations

import importlib

from .arguments import build_parser, validate_args


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
__all__ = sorted(["build_parser", "validate_args", *_EXPORTS])


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aha.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
