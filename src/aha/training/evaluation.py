"""Held-out evaluation during training: the training objective on the validation split.

The objective draws a grid size and a reference (Python's ``random``) and Gumbel noise (torch); evaluation
draws them from a fixed seed inside forked RNGs, so every evaluation of a run scores the same
perturbations and the training RNG streams (hence resuming) are unaffected.
"""

from __future__ import annotations

import contextlib
import random

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader


@contextlib.contextmanager
def seeded_rngs(seed: int, device: torch.device):
    """Seed Python's and torch's RNGs (CPU, and ``device`` if CUDA) inside; restore their states on exit."""
    python_state = random.getstate()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)


@torch.no_grad()
def evaluate(explainer, dataloader: DataLoader, accelerator: Accelerator, seed: int) -> dict[str, float]:
    """Mean held-out loss (at ``tau_end``) over every process's share of ``dataloader``.

    Returns ``{"eval/loss": float, "eval/images": int}``. Leaves the explainer in eval mode.
    """
    model = accelerator.unwrap_model(explainer).eval()
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)  # (sum of loss x images, images)
    with seeded_rngs(seed, accelerator.device):
        for batch in dataloader:
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            with accelerator.autocast():
                loss = model(**batch).loss
            totals += torch.stack([loss.double() * len(batch["labels"]), totals.new_tensor(len(batch["labels"]))])
    totals = accelerator.reduce(totals, reduction="sum")
    return {"eval/loss": (totals[0] / totals[1].clamp(min=1)).item(), "eval/images": int(totals[1].item())}
