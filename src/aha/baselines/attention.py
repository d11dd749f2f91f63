"""Attention weights of HF ViT-family classifiers, and relevance propagation through them.

Attention rollout and Chefer et al.'s relevance both multiply one token-mixing matrix per attention
layer, ``I + M_l``, and read the row of the product that the classifier's output reads:

    r = e^T (I + M_L) ... (I + M_1)

(rollout first renormalises every ``I + M_l`` to rows summing to 1). Instead of building N x N
products, ``r`` is propagated as a row vector from the last layer down, which is exact, batched, and
cheap enough for Swin's 56 x 56 first stage.

Plain ViTs (ViT, DeiT, BEiT, DINOv2): every layer mixes the whole sequence (prefix tokens + h*w
patches); ``e`` is the first (CLS) token, or uniform over the patch tokens for models that classify
their mean (``config.use_mean_pooling``, e.g. BEiT); ``r`` restricted to the patch tokens is the map.
DeiT's distillation token and DINOv2's mean-patch half of the head are not read out: CLS stands in.

Swin (windowed attention), the extension chosen here: a block's attention is the N x N matrix that is
block-diagonal over its (cyclically shifted) windows, exactly the mixing the block performs; the
padding tokens a block adds to fill its windows are constants, so relevance flowing to them is
dropped. Between stages, 2x2 patch merging builds each token from its (up to) 4 children, so a merged
token's relevance is shared equally among its real children. Swin classifies the mean of its
last-stage tokens, so ``e`` is uniform over the last grid, and ``r`` lives on the first (patch) grid.
With row-normalised mixing (rollout) the total relevance stays 1, less what padding drops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aha.baselines.base import upsample
from aha.modeling.backbones import BackboneSpec


@dataclass(frozen=True)
class Windows:
    """The shifted-window partition of one Swin block.

    Attributes:
        height, width: the token grid entering the block.
        size: window side in tokens.
        shift: cyclic shift in tokens (0 for non-shifted blocks).
    """

    height: int
    width: int
    size: int
    shift: int

    @property
    def padded(self) -> tuple[int, int]:
        """The grid padded to whole windows (bottom/right), as the block pads it."""
        return self.height + -self.height % self.size, self.width + -self.width % self.size

    @property
    def num_windows(self) -> int:
        """Windows per image."""
        return self.padded[0] * self.padded[1] // self.size**2

    def split(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, height, width) -> (B * num_windows, size * size), in the block's window order."""
        size, (height, width) = self.size, self.padded
        grid = F.pad(grid, (0, width - self.width, 0, height - self.height))
        if self.shift:
            grid = torch.roll(grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
        grid = grid.reshape(grid.shape[0], height // size, size, width // size, size).transpose(2, 3)
        return grid.reshape(-1, size * size)

    def merge(self, windows: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split`: (B * num_windows, size * size) -> (B, height, width), padding dropped."""
        size, (height, width) = self.size, self.padded
        grid = windows.view(-1, height // size, width // size, size, size).transpose(2, 3)
        grid = grid.reshape(-1, height, width)
        if self.shift:
            grid = torch.roll(grid, shifts=(self.shift, self.shift), dims=(1, 2))
        return grid[:, : self.height, : self.width]


@dataclass
class AttentionLayer:
    """The attention probabilities of one layer, as computed in the forward pass (part of its graph).

    Attributes:
        weights: (B, heads, N, N) over the whole token sequence, or (B * num_windows, heads, n, n) for
            windowed attention.
        windows: the window partition, or None for global attention.
    """

    weights: torch.Tensor
    windows: Windows | None


def is_mean_pooled(model: nn.Module) -> bool:
    """Whether a plain ViT classifies the mean of its patch tokens rather than its CLS token."""
    return bool(getattr(model.config, "use_mean_pooling", False))


def _windowed_blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if all(hasattr(m, a) for a in ("window_size", "shift_size", "attention"))]


def capture_attentions(model: nn.Module, spec: BackboneSpec, pixel_values: torch.Tensor):
    """One forward pass that also returns every attention layer, in forward order.

    Needs eager attention (see :func:`aha.baselines.base.frozen`). Swin's outputs keep one attention
    map per stage only, so for hierarchical models every windowed block is hooked instead.

    Returns:
        (outputs, layers): the model outputs and a list of :class:`AttentionLayer`.
    """
    if not spec.hierarchical:
        outputs = model(pixel_values=pixel_values, output_attentions=True)
        layers = [AttentionLayer(a, None) for a in outputs.attentions or ()]
    else:
        layers = []

        def record(block, args, kwargs, output):
            height, width = kwargs.get("input_dimensions", args[1] if len(args) > 1 else None)
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            windows = Windows(int(height), int(width), int(block.window_size), int(block.shift_size))
            layers.append(AttentionLayer(weights, windows))

        handles = [b.register_forward_hook(record, with_kwargs=True) for b in _windowed_blocks(model)]
        try:
            outputs = model(pixel_values=pixel_values, output_attentions=True)
        finally:
            for handle in handles:
                handle.remove()
    if not layers or any(layer.weights is None for layer in layers):
        raise RuntimeError(
            f"{type(model).__name__} returned no attention weights (attention implementation "
            f"{model.config._attn_implementation!r}); attention-based methods need eager attention"
        )
    return outputs, layers


def _times(vector: torch.Tensor, mixing: torch.Tensor, windows: Windows | None) -> torch.Tensor:
    """Row vector times mixing matrix: (B, N) @ (B, N, N), or per window on a (B, h, w) grid."""
    if windows is None:
        return torch.einsum("bi,bij->bj", vector, mixing)
    return windows.merge(torch.einsum("ni,nij->nj", windows.split(vector), mixing))


def _row_sums(mixing: torch.Tensor, windows: Windows | None) -> torch.Tensor:
    """Row sums of the mixing matrix, shaped like the relevance vector."""
    sums = mixing.sum(-1)
    return sums if windows is None else windows.merge(sums)


def _split_merged(relevance: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Undo 2x2 patch merging: (B, h, w) -> (B, height, width), each token's relevance shared equally
    among its real children (fewer than 4 on odd edges)."""
    grid_h, grid_w = relevance.shape[-2:]
    if (grid_h, grid_w) != (-(-height // 2), -(-width // 2)):
        raise RuntimeError(f"cannot map a {grid_h}x{grid_w} token grid back to {height}x{width} by 2x2 merging")
    rows = (height - 2 * torch.arange(grid_h, device=relevance.device)).clamp(max=2)
    cols = (width - 2 * torch.arange(grid_w, device=relevance.device)).clamp(max=2)
    relevance = relevance / (rows[:, None] * cols[None, :])
    return relevance.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :height, :width]


def propagate(
    layers: list[AttentionLayer],
    mixings: list[torch.Tensor],
    grid: tuple[int, int],
    normalize: bool,
    mean_pooled: bool = False,
) -> torch.Tensor:
    """Relevance of the first token grid: the read-out row of prod_l (I + M_l), see the module docstring.

    Args:
        layers: the model's attention layers in forward order (for their window partitions).
        mixings: one M_l per layer, shaped like ``layers[l].weights`` without the heads dimension.
        grid: (h, w) patch grid of the first layer; in a plain ViT's sequence the last h*w tokens.
        normalize: renormalize every I + M_l to rows summing to 1 (attention rollout).
        mean_pooled: a plain ViT that classifies the mean of its patch tokens (BEiT's
            ``use_mean_pooling``): read out the mean of the patch rows instead of the CLS row.
    Returns:
        (B, h, w) float32 relevance of the patch tokens.
    """
    windowed = layers[-1].windows is not None
    if windowed:
        last = layers[-1].windows
        batch = mixings[-1].shape[0] // last.num_windows
        relevance = mixings[-1].new_full((batch, last.height, last.width), 1.0 / (last.height * last.width))
    elif mean_pooled:
        relevance = torch.zeros_like(mixings[-1][:, 0])
        relevance[:, -grid[0] * grid[1] :] = 1.0 / (grid[0] * grid[1])
    else:
        relevance = torch.zeros_like(mixings[-1][:, 0])
        relevance[:, 0] = 1.0
    for layer, mixing in zip(reversed(layers), reversed(mixings)):
        if windowed and relevance.shape[-2:] != (layer.windows.height, layer.windows.width):
            relevance = _split_merged(relevance, layer.windows.height, layer.windows.width)
        if normalize:
            relevance = relevance / (1 + _row_sums(mixing, layer.windows))
        relevance = relevance + _times(relevance, mixing, layer.windows)
    if windowed:
        return relevance
    return relevance[:, -grid[0] * grid[1] :].reshape(-1, *grid)


def pixel_relevance(
    model: nn.Module,
    spec: BackboneSpec,
    layers: list[AttentionLayer],
    mixings: list[torch.Tensor],
    size: tuple[int, int],
    normalize: bool,
) -> torch.Tensor:
    """The map of an attention method: :func:`propagate` the per-layer ``mixings`` of ``layers`` back to the first
    token grid of images of ``size`` (H, W), read out as ``model`` pools (:func:`is_mean_pooled`), and upsample it
    to pixels (:func:`aha.baselines.base.upsample`). Returns (B, H, W) float32."""
    relevance = propagate(
        layers,
        mixings,
        grid=spec.grid_size(0, *size),
        normalize=normalize,
        mean_pooled=is_mean_pooled(model),
    )
    return upsample(relevance, spec.strides[0], size)
