"""What changes over training: the learning rate (linear warm-up from ``lr * start_factor`` to ``lr``, then cosine
decay to 0) and the Gumbel-Sinkhorn temperature (a linear anneal)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine_factor(step: int, num_warmup_steps: int, num_training_steps: int, start_factor: float) -> float:
    """Multiplier of the peak learning rate after ``step`` scheduler steps."""
    if step < num_warmup_steps:
        return start_factor + (1.0 - start_factor) * step / num_warmup_steps
    progress = (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine_schedule(
    optimizer: Optimizer, num_warmup_steps: int, num_training_steps: int, start_factor: float = 1 / 25
) -> LambdaLR:
    """The paper's schedule (warm-up over 6% of the steps from lr/25, then cosine), as a ``LambdaLR``."""
    return LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, num_warmup_steps, num_training_steps, start_factor)
    )


def annealed_tau(step: int, total_steps: int, tau_start: float, tau_end: float) -> float:
    """Temperature at ``step`` of a linear anneal from ``tau_start`` (step 0) to ``tau_end`` (last step)."""
    progress = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    return tau_start + (tau_end - tau_start) * progress
