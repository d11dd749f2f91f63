"""What changes over training: the learning rate (linear warm-up from ``lr * start_factor`` to ``lr``, then cosine
decay to 0, as torch's ``SequentialLR(LinearLR, CosineAnnealingLR)``) and the Gumbel-Sinkhorn temperature (a
linear anneal)."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def warmup_cosine_schedule(
    optimizer: Optimizer, num_warmup_steps: int, num_training_steps: int, start_factor: float = 1 / 25
) -> LRScheduler:
    """The paper's schedule: linear warm-up over ``num_warmup_steps`` from ``lr * start_factor`` (lr/25), then
    cosine decay to 0 at ``num_training_steps`` (scheduler steps)."""
    decay = CosineAnnealingLR(optimizer, T_max=max(1, num_training_steps - num_warmup_steps))
    if num_warmup_steps == 0:
        return decay
    warmup = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=num_warmup_steps)
    return SequentialLR(optimizer, [warmup, decay], milestones=[num_warmup_steps])


def annealed_tau(step: int, total_steps: int, tau_start: float, tau_end: float) -> float:
    """Temperature at ``step`` of a linear anneal from ``tau_start`` (step 0) to ``tau_end`` (last step)."""
    progress = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    return tau_start + (tau_end - tau_start) * progress
