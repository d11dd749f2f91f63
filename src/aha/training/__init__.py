"""The Accelerate training loop of AHA explainers (``aha train``)."""

from .arguments import build_parser, validate_args
from .checkpointing import TrainingState, latest_checkpoint, save_checkpoint
from .loop import main, set_up, train, training_loop
from .schedule import warmup_cosine_schedule


__all__ = [
    "TrainingState",
    "build_parser",
    "latest_checkpoint",
    "main",
    "save_checkpoint",
    "set_up",
    "train",
    "training_loop",
    "validate_args",
    "warmup_cosine_schedule",
]
