"""Grad-CAM (Selvaraju et al., 2017) as pytorch-grad-cam runs it: on the token grid of a vision transformer, or on
a convolutional model's last feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aha.baselines.base import Attributor, upsample, warn_if_flat
from aha.ranking.scores import class_scores
from aha.validation import resolve_target


#: the module whose output pytorch-grad-cam recommends as the target layer, by family: the last block's first
#: LayerNorm for plain ViTs (``blocks[-1].norm1``; ``layernorm_before`` in transformers, ``norm1`` in DINOv2) and
#: the last block's second LayerNorm for Swin (``layers[-1].blocks[-1].norm2``; ``layernorm_after``)
DEFAULT_TARGET_MODULES = {False: ("layernorm_before", "norm1"), True: ("layernorm_after",)}
#: how the default target of a convolutional model is named: its last stage's output, the last of its
#: ``hidden_states`` (pytorch-grad-cam's ``model.layer4[-1]`` for a ResNet)
LAST_FEATURE_MAP = "hidden_states[-1]"


class GradCAM(Attributor):
    """``relu(sum_c w_c A_c)`` over the positions ``A`` of the target layer's output, with ``w_c`` the spatial
    mean of ``d logit_target / d A_c``; upsampled bilinearly to the image. This is pytorch-grad-cam's ``GradCAM``:
    for vision transformers with its recipe (``reshape_transform`` dropping the prefix tokens and folding the rest
    into the grid), checked against a literal reproduction in ``tests/test_gradcam_reference.py``; for
    convolutional models on the last stage's feature map, resized to the image without a crop. Its final min-max
    scaling is left out (a monotone rescaling: the ranking is the same).

    Options:
        target_layer: name (in ``classifier.named_modules()``) of the module whose output, ``(B, tokens, C)`` tokens
            or a ``(B, C, h, w)`` feature map, is explained. Default, as pytorch-grad-cam recommends: the first
            LayerNorm of the last block for plain ViTs (``layernorm_before``, ``norm1`` in DINOv2), the second
            LayerNorm of the last block for Swin (``layernorm_after``), the last feature map of ``hidden_states``
            for convolutional models. (The residual stream *entering* a ViT's LayerNorm, which this class read
            before, ranks differently: its few large-magnitude channels dominate the weighted sum.)
    """

    name = "gradcam"
    needs_tokens = True
    needs_gradients = True

    def __init__(self, classifier, target_layer: str | None = None):
        super().__init__(classifier)
        modules = dict(classifier.named_modules())
        self.module = None
        if target_layer is None and self.spec.feature_maps == "hidden_states":
            target_layer = LAST_FEATURE_MAP
        elif target_layer is None:
            suffixes = DEFAULT_TARGET_MODULES[self.spec.hierarchical]
            candidates = [name for name in modules if name.rsplit(".", 1)[-1] in suffixes]
            if not candidates:
                raise ValueError(
                    f"{type(classifier).__name__} has no module named {' or '.join(suffixes)}: "
                    "pass target_layer=<module name>"
                )
            target_layer = candidates[-1]  # registration order: the last block's
        elif not isinstance(target_layer, str) or target_layer not in modules:
            raise ValueError(f"target_layer must name a module of {type(classifier).__name__}, got {target_layer!r}")
        self.target_layer = target_layer
        if target_layer != LAST_FEATURE_MAP:
            self.module = modules[target_layer]

    def _grid(self, tokens: int, height: int, width: int) -> tuple[int, int, int]:
        """(h, w, stride) of the token grid held by an output of ``tokens`` tokens (the last h * w of them)."""
        if not self.spec.hierarchical:
            return (*self.spec.grid_size(0, height, width), self.spec.strides[0])
        for stride in sorted(set(self.spec.strides)):
            grid_h, grid_w = -(-height // stride), -(-width // stride)
            if grid_h * grid_w == tokens:
                return grid_h, grid_w, stride
        raise ValueError(f"{self.target_layer} gives {tokens} tokens, no token grid of a {height}x{width} image")

    def _activations(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the target layer's output, the logits) of one forward with gradients."""
        pixel_values = pixel_values.requires_grad_(True)
        if self.module is None:
            outputs = self.classifier(pixel_values=pixel_values, output_hidden_states=True)
            return outputs.hidden_states[-1], outputs.logits
        captured = []
        handle = self.module.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            logits = self.classifier(pixel_values=pixel_values).logits
        finally:
            handle.remove()
        (activations,) = captured
        return activations, logits

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        activations, logits = self._activations(pixel_values)
        target = resolve_target(target, len(logits), self.num_labels, lambda: logits.argmax(-1), device=logits.device)
        if not isinstance(activations, torch.Tensor) or activations.ndim not in (3, 4):
            raise ValueError(
                f"target_layer {self.target_layer} must output (B, tokens, C) tokens or a (B, C, h, w) map"
            )
        (grads,) = torch.autograd.grad(class_scores(logits, target, "logit").sum(), activations)
        if activations.ndim == 4:  # a feature map (B, C, h, w), as tokens (B, h*w, C)
            (grid_h, grid_w), stride = activations.shape[-2:], None
            activations, grads = activations.flatten(2).transpose(1, 2), grads.flatten(2).transpose(1, 2)
        else:
            grid_h, grid_w, stride = self._grid(activations.shape[1], height, width)
        tokens, grads = activations[:, -grid_h * grid_w :].float(), grads[:, -grid_h * grid_w :].float()
        cam = (tokens * grads.mean(1, keepdim=True)).sum(-1).clamp(min=0).view(-1, grid_h, grid_w)
        warn_if_flat(cam, self.name, f"the target logit may not depend on the positions of {self.target_layer}")
        if stride is None:
            return F.interpolate(cam[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        return upsample(cam, stride, (height, width))
