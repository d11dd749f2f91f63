"""Reading spatial features out of Hugging Face vision models.

A :class:`BackboneSpec` describes how to turn the ``hidden_states`` of one supported model into
spatial feature maps: plain ViTs (ViT, DeiT, BEiT, DINOv2, ...) give token sequences
``(B, prefix + h*w, C)`` at every depth; hierarchical ones (Swin) give ``reshaped_hidden_states``
``(B, C_s, h_s, w_s)`` whose grid and width change per stage. Everything that needs tokens as
grids (the explainer's decoder, the attention-based baselines) goes through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


# model_type -> whether its hidden states are hierarchical stage outputs (True) or plain tokens (False)
SUPPORTED_MODEL_TYPES = {
    "vit": False,
    "deit": False,
    "beit": False,
    "data2vec-vision": False,
    "dinov2": False,
    "dinov2_with_registers": False,
    "vit_msn": False,
    "swin": True,
    "swinv2": True,
}
# plain ViTs whose position embeddings are interpolated to any size that the patch size divides
_INTERPOLATING_MODEL_TYPES = {"dinov2", "dinov2_with_registers"}


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value), int(value))


@dataclass(frozen=True)
class BackboneSpec:
    """How to read features from one vision model.

    Attributes:
        model_type: the ``config.model_type`` of the model.
        hierarchical: True for stage-wise models (Swin), False for plain token models.
        image_size: (H, W) in pixels the model was configured for.
        num_channels: input channels.
        patch_size: patch side in pixels (the stride of the first token grid).
        hidden_sizes: channel width of every entry of ``hidden_states`` (embeddings first).
        strides: stride in pixels of the token grid of every entry of ``hidden_states``.
    """

    model_type: str
    hierarchical: bool
    image_size: tuple[int, int]
    num_channels: int
    patch_size: int
    hidden_sizes: tuple[int, ...]
    strides: tuple[int, ...]

    @classmethod
    def from_model(cls, model: nn.Module) -> "BackboneSpec":
        """Describe ``model`` or raise a ValueError that names its class and what is missing."""
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"{type(model).__name__} (model_type={model_type!r}) is not a supported vision backbone: "
                f"AHA reads spatial hidden states from one of {sorted(SUPPORTED_MODEL_TYPES)}"
            )
        hierarchical = SUPPORTED_MODEL_TYPES[model_type]
        patch_size = _pair(config.patch_size)[0]
        if hierarchical:
            depths = len(config.depths)
            widths = [config.embed_dim * 2**i for i in range(depths)]
            # hidden_states[0] is the patch embedding; hidden_states[i+1] is stage i after its
            # downsampling (the last stage has none)
            hidden_sizes = (widths[0], *widths[1:], widths[-1])
            strides = tuple(patch_size * 2 ** min(i, depths - 1) for i in range(depths + 1))
        else:
            layers = config.num_hidden_layers + 1
            hidden_sizes = (config.hidden_size,) * layers
            strides = (patch_size,) * layers
        return cls(
            model_type=model_type,
            hierarchical=hierarchical,
            image_size=_pair(config.image_size),
            num_channels=int(config.num_channels),
            patch_size=patch_size,
            hidden_sizes=hidden_sizes,
            strides=strides,
        )

    @property
    def num_layers(self) -> int:
        """Number of entries in ``hidden_states`` (embeddings included)."""
        return len(self.hidden_sizes)

    def default_feature_layers(self, count: int = 4) -> tuple[int, ...]:
        """Indices into ``hidden_states`` to decode from.

        Plain ViTs: ``count`` depths spread evenly, ending at the last block (12 blocks -> 3, 6, 9, 12).
        Hierarchical: the last entry of every distinct stride (the deepest view of each resolution).
        """
        if self.hierarchical:
            last_of_stride = {stride: i for i, stride in enumerate(self.strides)}
            return tuple(sorted(last_of_stride.values()))
        blocks = self.num_layers - 1
        count = min(count, blocks)
        return tuple(round(blocks * (i + 1) / count) for i in range(count))

    def check_pixel_size(self, height: int, width: int) -> None:
        """Raise a ValueError if the model cannot take images of ``height`` x ``width`` pixels."""
        if self.model_type in _INTERPOLATING_MODEL_TYPES:
            if height % self.patch_size or width % self.patch_size:
                raise ValueError(
                    f"{self.model_type} needs image sides divisible by its patch size {self.patch_size}, "
                    f"got {height}x{width}"
                )
        elif (height, width) != self.image_size:
            raise ValueError(
                f"{self.model_type} expects {self.image_size[0]}x{self.image_size[1]} images "
                f"(config.image_size), got {height}x{width}"
            )

    def grid_size(self, layer: int, height: int, width: int) -> tuple[int, int]:
        """Token grid (h, w) of ``hidden_states[layer]`` for an input of ``height`` x ``width`` pixels."""
        stride = self.strides[layer]
        return -(-height // stride), -(-width // stride)

    def feature_map(self, outputs, layer: int, height: int, width: int) -> torch.Tensor:
        """One spatial feature map (B, C, h, w) from a forward's outputs (``output_hidden_states=True``).

        Plain ViTs drop their prefix tokens (CLS, distillation, registers: whatever precedes the h*w
        patch tokens) and fold the rest into the grid; hierarchical models use reshaped_hidden_states.
        """
        if self.hierarchical:
            return outputs.reshaped_hidden_states[layer]
        tokens = outputs.hidden_states[layer]
        grid_h, grid_w = self.grid_size(layer, height, width)
        patches = tokens[:, tokens.shape[1] - grid_h * grid_w :]
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid_h, grid_w)

    def num_prefix_tokens(self, outputs, height: int, width: int) -> int:
        """Tokens before the patch grid in a plain ViT's sequence (1 for ViT, 2 for DeiT, ...)."""
        grid_h, grid_w = self.grid_size(0, height, width)
        return outputs.hidden_states[0].shape[1] - grid_h * grid_w
