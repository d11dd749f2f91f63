"""Reading spatial features out of Hugging Face vision models.

A :class:`BackboneSpec` describes how to turn the ``hidden_states`` of one supported model into
spatial feature maps: plain ViTs (ViT, DeiT, BEiT, DINOv2, ...) give token sequences
``(B, prefix + h*w, C)`` at every depth; hierarchical ones give feature maps ``(B, C_s, h_s, w_s)`` whose
grid and width change per stage: Swin in ``reshaped_hidden_states``, and every other image classifier
whose own ``hidden_states`` are feature maps (ResNet, ConvNeXt v1/v2, RegNet, EfficientNet, MobileNetV2,
MobileViT, ...) in ``hidden_states``. The widths and strides of those are not read from the config
(every family names them differently) but from the shapes of one forward of a copy of the model built on
the ``meta`` device, at its configured image size: nothing is allocated and nothing is computed.
Everything that needs tokens as grids (the explainer's decoder, the attention-based baselines, Grad-CAM)
goes through this module.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass

import torch
from torch import nn


# Transformers whose layout is known from the config: model_type -> whether its hidden states are
# hierarchical stage outputs (True) or plain tokens (False). Any other model_type is probed for
# feature maps in ``hidden_states`` (:meth:`BackboneSpec.from_model`).
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
#: image side a probed model is measured at when its config has no ``image_size`` (ResNet, RegNet)
DEFAULT_IMAGE_SIZE = 224
#: how many feature depths the decoder reads by default: from a transformer, and from a model whose hidden states
#: are feature maps (see :meth:`BackboneSpec.default_feature_layers`)
DEFAULT_FEATURE_DEPTHS = 4
DEFAULT_FEATURE_MAP_DEPTHS = 3


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value), int(value))


@dataclass(frozen=True)
class BackboneSpec:
    """How to read features from one vision model.

    Attributes:
        model_type: the ``config.model_type`` of the model.
        hierarchical: True for stage-wise models (Swin, and the models probed for feature maps), False for
            plain token models.
        image_size: (H, W) in pixels the model was configured for (:data:`DEFAULT_IMAGE_SIZE` square for a
            probed model whose config has no ``image_size``).
        num_channels: input channels.
        patch_size: patch side in pixels: the stride of the first token grid of a transformer; for a probed
            model, the stride of the grid its decoder works on (the middle one of
            :meth:`default_feature_layers`, 16 px for ResNet and ConvNeXt), which sets the training and
            refinement grids as a ViT's patch does.
        hidden_sizes: channel width of every entry of ``hidden_states`` (embeddings first).
        strides: stride in pixels of the token grid of every entry of ``hidden_states`` (for a probed model,
            the configured image side over the map's, rounded to a power of two).
        feature_maps: the output field holding the (B, C, h, w) maps of a hierarchical model,
            ``"reshaped_hidden_states"`` (Swin) or ``"hidden_states"`` (probed models); None for plain ViTs.
    """

    model_type: str
    hierarchical: bool
    image_size: tuple[int, int]
    num_channels: int
    patch_size: int
    hidden_sizes: tuple[int, ...]
    strides: tuple[int, ...]
    feature_maps: str | None = None

    @classmethod
    def from_model(cls, model: nn.Module) -> "BackboneSpec":
        """Describe ``model`` or raise a ValueError that names its class and what is missing.

        A transformer of :data:`SUPPORTED_MODEL_TYPES` is described from its config. Any other vision model
        (``config.num_channels``) is run once on the ``meta`` device with ``output_hidden_states=True``; it is
        readable when it returns ``hidden_states`` whose every entry is a 4-D feature map (B, C, h, w).
        """
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            if not hasattr(config, "num_channels"):
                raise ValueError(
                    f"{type(model).__name__} (model_type={model_type!r}) is not a supported vision backbone: its "
                    f"config has no num_channels (not an image model). AHA reads spatial hidden states: the tokens of "
                    f"one of {sorted(SUPPORTED_MODEL_TYPES)}, or feature maps (B, C, h, w) in hidden_states"
                )
            return _probe(type(model), type(config), config.to_json_string(use_diff=False))
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
            feature_maps="reshaped_hidden_states" if hierarchical else None,
        )

    @property
    def num_layers(self) -> int:
        """Number of entries in ``hidden_states`` (embeddings included)."""
        return len(self.hidden_sizes)

    def default_feature_layers(self, count: int | None = None) -> tuple[int, ...]:
        """Indices into ``hidden_states`` to decode from.

        Plain ViTs: ``count`` (default 4) depths spread evenly, ending at the last block (12 blocks -> 3, 6, 9, 12).
        Hierarchical: the last entry of each distinct stride (the deepest view of each resolution), of the
        ``count`` coarsest strides. Default: the four stages of Swin (strides 4, 8, 16, 32 px); for the models
        whose hidden states are feature maps, 3: strides 8, 16 and 32 of ResNet, ConvNeXt, RegNet, EfficientNet,
        MobileNetV2 and MobileViT. Their stride-4 map is left out by default because of its cost: it holds 4-5x
        the values of a ViT level (ResNet-50: 256 x 56 x 56 per image), and normalising and resizing it onto the
        decoder's stride-16 grid, where its detail is averaged away, took about 3% of a ResNet-50 forward on CPU
        (benchmarks/RESULTS.md); detail finer than the grid comes from the pixel head. Pass ``feature_layers`` to
        read it.
        """
        if count is None:
            count = DEFAULT_FEATURE_MAP_DEPTHS if self.feature_maps == "hidden_states" else DEFAULT_FEATURE_DEPTHS
        if self.hierarchical:
            last_of_stride = {stride: i for i, stride in enumerate(self.strides)}
            return tuple(sorted(last_of_stride.values())[-count:])
        blocks = self.num_layers - 1
        count = min(count, blocks)
        return tuple(round(blocks * (i + 1) / count) for i in range(count))

    def check_pixel_size(self, height: int, width: int) -> None:
        """Raise a ValueError if the model cannot take images of ``height`` x ``width`` pixels."""
        if self.feature_maps == "hidden_states":  # convolutional models pool globally: any size with a deepest cell
            if min(height, width) < max(self.strides):
                raise ValueError(
                    f"{self.model_type} needs image sides of at least its deepest stride, {max(self.strides)} px, "
                    f"got {height}x{width}"
                )
        elif self.model_type in _INTERPOLATING_MODEL_TYPES:
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
        patch tokens) and fold the rest into the grid; hierarchical models give their maps as they are.
        """
        if self.hierarchical:
            return getattr(outputs, self.feature_maps)[layer]
        tokens = outputs.hidden_states[layer]
        grid_h, grid_w = self.grid_size(layer, height, width)
        patches = tokens[:, tokens.shape[1] - grid_h * grid_w :]
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid_h, grid_w)

    def num_prefix_tokens(self, outputs, height: int, width: int) -> int:
        """Tokens before the patch grid in a plain ViT's sequence (1 for ViT, 2 for DeiT, ...)."""
        grid_h, grid_w = self.grid_size(0, height, width)
        return outputs.hidden_states[0].shape[1] - grid_h * grid_w


@functools.lru_cache(maxsize=32)
def _probe(model_class: type[nn.Module], config_class: type, config_json: str) -> BackboneSpec:
    """The spec of a model read from the shapes of its ``hidden_states`` (see :meth:`BackboneSpec.from_model`),
    measured on a copy built on the meta device from its config (given as JSON, so that results are cached)."""
    config = config_class.from_dict(json.loads(config_json))
    name = model_class.__name__
    height, width = _pair(getattr(config, "image_size", None) or DEFAULT_IMAGE_SIZE)
    try:
        with torch.device("meta"):
            model = model_class(config).eval()
            pixels = torch.zeros(1, config.num_channels, height, width)
            with torch.no_grad():
                hidden_states = getattr(model(pixel_values=pixels, output_hidden_states=True), "hidden_states", None)
    except Exception as error:  # any failure means the shapes cannot be read: say which
        raise ValueError(
            f"{name} (model_type={config.model_type!r}) is not a supported vision backbone: running it with "
            f"output_hidden_states=True on the meta device to read its feature maps failed: {error}"
        ) from error
    shapes = [tuple(h.shape) for h in hidden_states or ()]
    if not shapes or any(len(shape) != 4 for shape in shapes):
        found = (
            "no hidden_states"
            if not shapes
            else f"hidden_states of shapes {shapes[:3]}{' ...' if len(shapes) > 3 else ''}"
        )
        raise ValueError(
            f"{name} (model_type={config.model_type!r}) is not a supported vision backbone: AHA reads spatial hidden "
            f"states, the tokens of one of {sorted(SUPPORTED_MODEL_TYPES)} or feature maps (B, C, h, w) in "
            f"hidden_states, and this model returns {found}"
        )
    strides = tuple(2 ** round(math.log2(height / shape[2])) for shape in shapes)
    spec = BackboneSpec(
        model_type=config.model_type,
        hierarchical=True,
        image_size=(height, width),
        num_channels=int(config.num_channels),
        patch_size=0,
        hidden_sizes=tuple(shape[1] for shape in shapes),
        strides=strides,
        feature_maps="hidden_states",
    )
    layers = spec.default_feature_layers()
    return dataclasses.replace(spec, patch_size=strides[layers[len(layers) // 2]])
