"""The Accelerate training loop of AHA explainers (``aha train``)."""

from .arguments import build_parser, validate_args
from .checkpointing import latest_checkpoint, save_checkpoint
from .loop import train
from .schedule import warmup_cosine_schedule
from .target import checkpoint_target_layers

__all__ = [
    "build_parser",
    "checkpoint_target_layers",
    "latest_checkpoint",
    "save_checkpoint",
    "train",
    "validate_args",
    "warmup_cosine_schedule",
]
