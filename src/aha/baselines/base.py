"""The interface every comparison method implements, and the helpers the methods share.

An :class:`Attributor` wraps a frozen Hugging Face image classifier and turns a batch of
``pixel_values`` (B, C, H, W), in the classifier's normalised space, into one importance map per
image, (B, H, W) float32 at input resolution, for a target class per image (default: the predicted
class). Higher means more important; only the ordering of a map's values is meaningful across methods.

Methods that only feed images to the classifier (random, centre, integrated gradients, occlusion, RISE)
take any image classifier, convolutional ones (ResNet, ConvNeXt, ...) included; the methods that read
spatial hidden states (Grad-CAM, AHA) need a classifier :mod:`aha.modeling.backbones` reads (ViTs, Swin, and the
convolutional models whose hidden states are feature maps); the methods that read attention (rollout,
Chefer) need a ViT-family model.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from aha.modeling.backbones import SUPPORTED_MODEL_TYPES, BackboneSpec
from aha.ranking.perturbation import blend, check_reference, make_reference, perturbation_scores, resolve_normalisation
from aha.ranking.scores import DIFFERENTIABLE_SCORES, class_scores
from aha.validation import check_choice, check_classes, check_number, check_pixel_values, resolve_target


def upsample(maps: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Token-level maps to pixels: bilinear upsampling by ``stride``, cropped to ``size``.

    Each token of a (h, w) grid covers a ``stride`` x ``stride`` pixel patch, so the grid is resized to
    (h * stride, w * stride) and the padding a model adds on the bottom/right edges is cut off.

    Args:
        maps: (B, h, w) float.
        stride: pixels per token.
        size: (H, W) of the input images.
    Returns:
        (B, H, W) float32.
    """
    grid_h, grid_w = maps.shape[-2:]
    out = F.interpolate(
        maps[:, None].float(), size=(grid_h * stride, grid_w * stride), mode="bilinear", align_corners=False
    )
    return out[:, 0, : size[0], : size[1]]


def scores_under_masks(
    classifier: nn.Module,
    pixel_values: torch.Tensor,
    reference: torch.Tensor,
    masks: torch.Tensor,
    target: torch.Tensor,
    score: str,
    batch_size: int,
) -> torch.Tensor:
    """Score of every image under every mask, the B * N perturbed images pushed through the engine of
    :mod:`aha.ranking.perturbation` in chunks (mask by mask, all images of a mask together).

    Args:
        pixel_values, reference: (B, C, H, W), normalised space.
        masks: (N, H, W) in [0, 1], shared by all images; 1 replaces the pixel by the reference.
        target: (B,) long.
        score: ``"logit"`` or ``"probability"``.
        batch_size: images per forward pass.
    Returns:
        (B, N) float32 scores of each image's target class.
    """
    batch, count = pixel_values.shape[0], masks.shape[0]

    def images_at(chunk: slice) -> torch.Tensor:  # index = mask * batch + image
        pairs = torch.arange(chunk.start, chunk.stop, device=pixel_values.device)
        images, mask_ids = pairs % batch, pairs // batch
        return blend(pixel_values[images], reference[images], masks[mask_ids])

    scores = perturbation_scores(classifier, count * batch, images_at, target.repeat(count), score, batch_size)
    return scores.view(count, batch).T


@contextlib.contextmanager
def frozen(model: nn.Module, eager_attention: bool = False) -> Iterator[None]:
    """Run ``model`` in eval mode with frozen parameters, restoring its previous state afterwards.

    With ``eager_attention``, the attention implementation is switched to ``"eager"`` (the only one that
    returns attention weights) for the duration and switched back on exit.
    """
    was_training = model.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    attention = model.config._attn_implementation
    switch = eager_attention and attention != "eager"
    model.eval()
    for param in trainable:
        param.requires_grad_(False)
    try:
        if switch:
            model.set_attn_implementation("eager")
        yield
    finally:
        if switch:
            model.set_attn_implementation(attention)
        for param in trainable:
            param.requires_grad_(True)
        model.train(was_training)


@dataclass(frozen=True)
class AnyInputSize:
    """The input check of a classifier whose token grid is not read (ResNet, ConvNeXt, ...): its channel
    count, any image size (what :func:`aha.validation.check_pixel_values` asks of a spec)."""

    num_channels: int

    def check_pixel_size(self, height: int, width: int) -> None:
        """Convolutional classifiers pool globally: every size goes."""


class Attributor:
    """Base of the comparison methods: ``attributor(pixel_values, target=None) -> (B, H, W)``.

    Subclasses set :attr:`name`, declare whether they need gradients, attention weights (a ViT-family
    classifier) or spatial hidden states (``needs_tokens``: tokens or feature maps, :mod:`aha.modeling.backbones`), take their options as keyword arguments of ``__init__`` and implement
    :meth:`_attribute`.

    During a call the classifier is put in eval mode with frozen parameters (no ``.grad`` is written to
    them) and, for attention-based methods, temporarily switched to eager attention; its previous mode,
    ``requires_grad`` flags and attention implementation are restored afterwards.

    Args:
        classifier: a Hugging Face image classifier (``classifier(pixel_values=x).logits``); one that
            :mod:`aha.modeling.backbones` reads for the methods with ``needs_tokens``, a ViT-family one for those with
            ``needs_attentions``.
    """

    name: ClassVar[str]
    needs_gradients: ClassVar[bool] = False
    needs_attentions: ClassVar[bool] = False
    needs_tokens: ClassVar[bool] = False

    def __init__(self, classifier: nn.Module):
        config = getattr(classifier, "config", None)
        num_labels = getattr(config, "num_labels", None)
        if not num_labels:
            raise ValueError(f"{type(classifier).__name__} has no config.num_labels: is it a classifier?")
        model_type = getattr(config, "model_type", None)
        if model_type in SUPPORTED_MODEL_TYPES:
            self.spec = BackboneSpec.from_model(classifier)
        elif self.needs_attentions:
            from aha.baselines import MODEL_AGNOSTIC  # the registry imports this module

            raise ValueError(
                f"{self.name} reads the attention of a ViT-family classifier (model_type one of "
                f"{sorted(SUPPORTED_MODEL_TYPES)}); {type(classifier).__name__} (model_type={model_type!r}) is not "
                f"one. Methods for any image classifier: {', '.join(MODEL_AGNOSTIC)}"
            )
        elif self.needs_tokens:  # feature maps in hidden_states (ResNet, ConvNeXt, ...), or a clear refusal
            from aha.baselines import MODEL_AGNOSTIC

            try:
                self.spec = BackboneSpec.from_model(classifier)
            except ValueError as error:
                raise ValueError(
                    f"{self.name}: {error}. Methods for any image classifier: {', '.join(MODEL_AGNOSTIC)}"
                ) from error
        else:
            self.spec = AnyInputSize(int(getattr(config, "num_channels", 3)))
        self.classifier = classifier
        self.num_labels = int(num_labels)

    def __call__(self, pixel_values: torch.Tensor, target=None) -> torch.Tensor:
        return self.attribute(pixel_values, target)

    def attribute(self, pixel_values: torch.Tensor, target=None) -> torch.Tensor:
        """Importance maps for a batch.

        Args:
            pixel_values: (B, C, H, W) float images in the classifier's normalised space; moved to the
                classifier's device and dtype.
            target: class to explain per image: None (the predicted class), an int for all images, or a
                sequence / (B,) integer tensor.
        Returns:
            (B, H, W) float32 maps on the classifier's device.
        """
        check_pixel_values(pixel_values, [self.spec])
        param = next(self.classifier.parameters())
        pixel_values = pixel_values.detach().to(device=param.device, dtype=param.dtype)
        if target is not None:
            target = check_classes(target, pixel_values.shape[0], self.num_labels, device=param.device)
        grad_mode = torch.enable_grad() if self.needs_gradients else torch.no_grad()
        with frozen(self.classifier, eager_attention=self.needs_attentions), grad_mode:
            maps = self._attribute(pixel_values, target)
        return maps.detach().float()

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """(B, C, H, W) validated images, (B,) long targets or None -> (B, H, W) maps."""
        raise NotImplementedError


def warn_if_flat(maps: torch.Tensor, method: str, hint: str) -> None:
    """Warn when some (B, h, w) maps are constant, i.e. carry no ranking at all."""
    flat = (maps.flatten(1).amax(1) == maps.flatten(1).amin(1)).nonzero().flatten().tolist()
    if flat:
        warnings.warn(f"{method}: constant map for images {flat}; {hint}", stacklevel=3)


class PerturbationAttributor(Attributor):
    """Base of the methods that feed modified images to the classifier (occlusion, RISE, integrated
    gradients): a reference image, an explained score, and a forward batch size.

    Args:
        classifier: see :class:`Attributor`.
        reference: what removed pixels become, in normalised space (:mod:`aha.ranking.perturbation`):
            ``"mean"`` (zeros: the dataset mean colour), ``"black"`` (needs the normalisation) or ``"blur"``.
        score: the explained score of the target class, ``"logit"`` or softmax ``"probability"``.
        batch_size: images per forward pass.
        image_processor, image_mean, image_std: the normalisation of ``pixel_values``
            (:func:`aha.ranking.perturbation.resolve_normalisation`), needed by the ``"black"`` reference.
    """

    def __init__(
        self,
        classifier,
        reference: str = "mean",
        score: str = "probability",
        batch_size: int = 64,
        image_processor=None,
        image_mean=None,
        image_std=None,
    ):
        super().__init__(classifier)
        self.normalisation = resolve_normalisation(image_processor, image_mean, image_std)
        check_reference(reference, self.normalisation)
        check_choice("score", score, DIFFERENTIABLE_SCORES)
        check_number("batch_size", batch_size, integer=True, minimum=1)
        self.reference, self.score, self.batch_size = reference, score, batch_size

    def make_reference(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) reference images in normalised space."""
        return make_reference(pixel_values, self.reference, *(self.normalisation or (None, None)))

    def clean_scores(self, pixel_values: torch.Tensor, target: torch.Tensor | None):
        """One gradient-free forward of the unmodified images: ((B,) targets, (B,) float32 scores)."""
        with torch.no_grad():
            logits = self.classifier(pixel_values=pixel_values).logits
        target = resolve_target(target, len(logits), self.num_labels, lambda: logits.argmax(-1), device=logits.device)
        return target, class_scores(logits, target, self.score)
