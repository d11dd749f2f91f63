"""The Accelerate training loop of AHA explainers (``aha train``)."""

from .arguments import build_parser, validate_args
from .checkpointing import TrainingState, latest_checkpoint, save_checkpoint
from .loop import train
from .schedule import warmup_cosine_schedule

main = train  # ``aha train``: main(build_parser().parse_args(argv))

__all__ = [
    "TrainingState",
    "build_parser",
    "latest_checkpoint",
    "main",
    "save_checkpoint",
    "train",
    "validate_args",
    "warmup_cosine_schedule",
]
