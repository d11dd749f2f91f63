"""What the explainer's decoder costs next to its classifier, counted (never timed).

The decoder should cost little next to the classifier it explains, at every scale. With its width following the
feature model's hidden size (:func:`aha.modeling.modeling_aha.default_fusion_channels`), the default decoder costs 0.4-7.2%
of the FLOPs of every benchmark classifier, ViTs and CNNs, and at most 7.3% of its parameters (benchmarks/RESULTS.md,
"Decoder cost next to the classifier", counted before the guide's blur existed); tests hold it under 8% for every
supported family, but for that blur's fixed cost (:func:`guide_cost`: two dense matrix products, 12 S + 22 FLOPs per
pixel at side S; 4.2% of the 64 px benchmark ViT, 1.5% of ViT-S/16, 23% of MobileNetV2 at 224 px).

FLOPs are what ``torch.utils.flop_counter.FlopCounterMode`` counts (matrix products, convolutions, attention;
not normalisations, activations or resizing), on copies of the models on the ``meta`` device: nothing is
allocated and nothing runs. FLOPs are not time: benchmarks/explain_speed.py times ``explain`` against a forward.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Cost:
    """FLOPs of one forward of one image, and parameters."""

    flops: int
    parameters: int

    def fraction_of(self, other: "Cost") -> tuple[float, float]:
        """(FLOPs, parameters) of this cost as fractions of ``other``'s."""
        return self.flops / other.flops, self.parameters / other.parameters


def count_flops(module: nn.Module, *args, **kwargs) -> int:
    """FLOPs of ``module(*args, **kwargs)`` as :class:`~torch.utils.flop_counter.FlopCounterMode` counts them."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return counter.get_total_flops()


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classifier_cost(explainer) -> Cost:
    """Cost of one forward of the classifier of an :class:`~aha.AHAExplainer` on one image at its configured size
    (a copy built on the meta device from ``explainer.config.classifier_config``)."""
    spec = explainer.classifier_spec
    with torch.device("meta"):
        classifier = type(explainer.classifier)(explainer.config.classifier_config).eval()
    pixels = torch.zeros(1, spec.num_channels, *spec.image_size, device="meta")
    return Cost(count_flops(classifier, pixel_values=pixels), _parameters(classifier))


def decoder_cost(explainer) -> Cost:
    """Cost of the decoder of an :class:`~aha.AHAExplainer` on one image at the classifier's configured size (a
    meta-device copy of ``explainer.decoder``, reading the feature maps the explainer reads)."""
    height, width = explainer.classifier_spec.image_size
    decoder = copy.deepcopy(explainer.decoder).to("meta")
    spec = explainer.feature_spec
    features = [
        torch.zeros(1, spec.hidden_sizes[i], *spec.grid_size(i, height, width), device="meta")
        for i in explainer.feature_layers
    ]
    classes = torch.zeros(1, dtype=torch.long, device="meta")
    pixels = torch.zeros(1, explainer.classifier_spec.num_channels, height, width, device="meta")
    return Cost(count_flops(decoder, features, classes, pixels), _parameters(decoder))


def guide_cost(explainer) -> int:
    """FLOPs of the decoder's guide (the image its pixel head reads, blurred by ``guide_blur_sigma``) on one image at
    the classifier's configured size: a fixed per-pixel cost, counted inside :func:`decoder_cost` and kept out of the
    decoder's budget."""
    spec = explainer.classifier_spec
    pixels = torch.zeros(1, spec.num_channels, *spec.image_size, device="meta")
    return count_flops(explainer.decoder.guide, pixels)
