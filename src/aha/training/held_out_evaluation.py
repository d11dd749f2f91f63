"""Held-out evaluation during training: the training objective on the validation split, and the exact
deletion / insertion AUCs of the explainer's maps (``aha.metrics.deletion_insertion``: hard ranking over
all pixels, 21 fractions, mean-colour reference, predicted class; insertion is least-relevant-first).

The objective's random draws (grid size, reference, Gumbel noise) come from a generator of the evaluation's
own, seeded the same way every time, so every evaluation of a run scores the same perturbations and the
training loop's generator (hence resuming) is unaffected. The maps scored are those of the objective's pass
(the predicted class): the classifier runs once per batch for both.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..metrics import deletion_insertion


@torch.no_grad()
def evaluate(explainer, dataloader: DataLoader, accelerator: Accelerator, seed: int) -> dict[str, float]:
    """Held-out means over every process's share of ``dataloader``: the objective (at ``tau_end``), and
    the deletion (low is good) and insertion (high is good) AUCs of the maps.

    Returns ``{"eval/loss", "eval/deletion_auc", "eval/insertion_auc": float, "eval/images": int}``.
    Leaves the explainer in eval mode.
    """
    model = accelerator.unwrap_model(explainer).eval()
    sums = torch.zeros(4, dtype=torch.float64, device=accelerator.device)  # loss, deletion, insertion, images
    generator = torch.Generator(accelerator.device).manual_seed(seed)
    for batch in dataloader:
        batch = {key: value.to(accelerator.device) for key, value in batch.items()}
        with accelerator.autocast():  # one pass: the loss, and the maps of the predicted class it was computed on
            output = model(**batch, generator=generator)
        loss = output.loss
        result = deletion_insertion(
            model.classifier, batch["pixel_values"], output.attributions.float(), output.target
        )
        images = len(batch["labels"])
        sums += torch.stack(
            [
                loss.double() * images,
                result.deletion.auc.double().sum(),
                result.insertion.auc.double().sum(),
                sums.new_tensor(images),
            ]
        ).to(sums.device)
    sums = accelerator.reduce(sums, reduction="sum")
    loss, deletion, insertion = (sums[:3] / sums[3].clamp(min=1)).tolist()
    return {
        "eval/loss": loss,
        "eval/deletion_auc": deletion,
        "eval/insertion_auc": insertion,
        "eval/images": int(sums[3].item()),
    }
