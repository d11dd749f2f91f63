"""Attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers")."""

from __future__ import annotations

import torch

from aha.baselines.attention import capture_attentions, pixel_relevance
from aha.baselines.base import Attributor
from aha.validation import check_choice


HEAD_FUSIONS = ("mean", "max", "min")


class AttentionRollout(Attributor):
    """Product over layers of the head-fused attention plus the residual identity, rows renormalised:
    ``A_l' = (fuse_heads(A_l) + I) / row_sums``. The map is the read-out row of ``A_L' ... A_1'`` (CLS,
    or the mean of the patch rows for mean-pooling models such as BEiT and Swin) over the patch
    tokens, upsampled bilinearly.

    Class-agnostic: ``target`` is validated but does not change the map. See
    :mod:`aha.baselines.attention` for the windowed (Swin) treatment.

    Options:
        head_fusion: how heads are combined, ``"mean"`` (Abnar & Zuidema, default), ``"max"`` or ``"min"``.
    """

    name = "rollout"
    needs_tokens = True
    needs_attentions = True

    def __init__(self, classifier, head_fusion: str = "mean"):
        super().__init__(classifier)
        check_choice("head_fusion", head_fusion, HEAD_FUSIONS)
        self.head_fusion = head_fusion

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        _, layers = capture_attentions(self.classifier, self.spec, pixel_values)
        fuse = {"mean": torch.mean, "max": torch.amax, "min": torch.amin}[self.head_fusion]
        mixings = [fuse(layer.weights.float(), dim=1) for layer in layers]
        return pixel_relevance(self.classifier, self.spec, layers, mixings, (height, width), normalize=True)
