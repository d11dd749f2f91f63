"""Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021, "Generic Attention-model
Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers"), self-attention rule."""

from __future__ import annotations

import torch

from aha.baselines.attention import capture_attentions, pixel_relevance
from aha.baselines.base import Attributor
from aha.ranking.scores import class_scores
from aha.validation import resolve_target


class CheferRelevance(Attributor):
    """Relevance ``R = I``, then for every layer in forward order ``R += mean_heads(relu(dy/dA * A)) @ R``,
    where ``y`` is the target's logit. The map is the read-out row of R (CLS, or the mean of the patch
    rows for mean-pooling models such as BEiT and Swin) over the patch tokens, upsampled bilinearly.
    One backward pass for the whole batch.

    Swin: the same rule applied per (shifted) window, with patch merging undone as in
    :mod:`aha.baselines.attention` (an extension of the paper, which covers global attention only).
    """

    name = "chefer"
    needs_tokens = True
    needs_gradients = True
    needs_attentions = True

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        outputs, layers = capture_attentions(self.classifier, self.spec, pixel_values.requires_grad_(True))
        logits = outputs.logits
        target = resolve_target(target, len(logits), self.num_labels, lambda: logits.argmax(-1), device=logits.device)
        score = class_scores(logits, target, "logit").sum()
        grads = torch.autograd.grad(score, [layer.weights for layer in layers])
        mixings = [(g * layer.weights).float().clamp(min=0).mean(1) for g, layer in zip(grads, layers)]
        return pixel_relevance(self.classifier, self.spec, layers, mixings, (height, width), normalize=False)
