"""Grad-CAM (Selvaraju et al., 2017) on the token grid of a vision transformer or a convolutional model's feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aha.baselines.base import Attributor, resolve_target, upsample, warn_if_flat
from aha.scores import class_scores


class GradCAM(Attributor):
    """``relu(sum_c w_c A_c)`` over the patch tokens ``A`` of ``hidden_states[layer]``, with
    ``w_c`` the spatial mean of ``d logit_target / d A_c``; upsampled bilinearly from the layer's grid.

    Options:
        layer: index into the classifier's ``hidden_states`` (0 = embeddings). Default: for plain ViTs
            the input of the last block (``num_layers - 2``), because a CLS read-out makes the gradient
            at the last block's patch tokens exactly zero; for Swin the last stage (which is mean-pooled
            into the classifier); for a convolutional model (hidden states (B, C, h, w)) its last stage,
            whose map is resized to the image as pytorch-grad-cam does (bilinearly, no crop).
    """

    name = "gradcam"
    needs_tokens = True
    needs_gradients = True

    def __init__(self, classifier, layer: int | None = None):
        super().__init__(classifier)
        last = self.spec.num_layers - 1
        if layer is None:
            layer = last if self.spec.hierarchical else max(last - 1, 0)
        if not -self.spec.num_layers <= layer <= last:
            raise ValueError(f"layer must index hidden_states (0..{last}), got {layer}")
        self.layer = layer % self.spec.num_layers

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        outputs = self.classifier(pixel_values=pixel_values.requires_grad_(True), output_hidden_states=True)
        target = resolve_target(target, outputs.logits)
        tokens = outputs.hidden_states[self.layer]
        (grads,) = torch.autograd.grad(class_scores(outputs.logits, target, "logit").sum(), tokens)
        maps = tokens.ndim == 4  # a convolutional model's (B, C, h, w): as tokens (B, h*w, C)
        if maps:
            grid_h, grid_w = tokens.shape[-2:]
            tokens, grads = tokens.flatten(2).transpose(1, 2), grads.flatten(2).transpose(1, 2)
        else:
            grid_h, grid_w = self.spec.grid_size(self.layer, height, width)
        tokens, grads = tokens[:, -grid_h * grid_w :].float(), grads[:, -grid_h * grid_w :].float()
        cam = (tokens * grads.mean(1, keepdim=True)).sum(-1).clamp(min=0).view(-1, grid_h, grid_w)
        warn_if_flat(cam, self.name, f"the target logit may not depend on the patch tokens of layer {self.layer}")
        if maps:
            return F.interpolate(cam[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        return upsample(cam, self.spec.strides[self.layer], (height, width))
