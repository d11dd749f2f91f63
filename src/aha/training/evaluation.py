"""Held-out evaluation during training: the training objective on the validation split, and the exact
deletion / insertion AUCs of the explainer's maps (``aha.metrics.deletion_insertion``: hard ranking over
all pixels, 21 fractions, mean-colour reference, predicted class; insertion is least-relevant-first).

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

from ..metrics import deletion_insertion


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
    """Held-out means over every process's share of ``dataloader``: the objective (at ``tau_end``), and
    the deletion (low is good) and insertion (high is good) AUCs of the maps.

    Returns ``{"eval/loss", "eval/deletion_auc", "eval/insertion_auc": float, "eval/images": int}``.
    Leaves the explainer in eval mode.
    """
    model = accelerator.unwrap_model(explainer).eval()
    sums = torch.zeros(4, dtype=torch.float64, device=accelerator.device)  # loss, deletion, insertion, images
    with seeded_rngs(seed, accelerator.device):
        for batch in dataloader:
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            with accelerator.autocast():
                loss = model(**batch).loss
                maps = model.explain(batch["pixel_values"])
            result = deletion_insertion(model.classifier, batch["pixel_values"], maps.float())
            images = len(batch["labels"])
            sums += torch.stack([
                loss.double() * images, result.deletion.auc.double().sum(), result.insertion.auc.double().sum(),
                sums.new_tensor(images),
            ]).to(sums.device)
    sums = accelerator.reduce(sums, reduction="sum")
    loss, deletion, insertion = (sums[:3] / sums[3].clamp(min=1)).tolist()
    return {"eval/loss": loss, "eval/deletion_auc": deletion, "eval/insertion_auc": insertion,
            "eval/images": int(sums[3].item())}
