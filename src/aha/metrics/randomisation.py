"""The model randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that explains the classifier must change when the classifier's weights are replaced by random ones. The
check explains the same images with the classifier and with a copy whose weights are re-drawn, and measures the
Spearman rank correlation of each image's two maps: near 1 means the method ignores the weights (edge
detectors, priors, maps of the image alone) and fails; a low correlation passes.

Randomisation: each weight tensor of the copy is replaced by Gaussian draws with that tensor's own mean and
standard deviation (its scale kept, its learnt structure gone; a constant tensor such as a fresh LayerNorm
weight stays constant), from an explicit generator. ``"full"`` re-draws every tensor at once; ``"cascading"``
re-draws them from the output down, block by block (the classifier head, then each transformer block from the
last, ...), and reports the correlation after each stage.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..validation import check_choice, check_number, check_pixel_values
from .curves import pixel_maps, target_classes
from .independent import pearson


@dataclass
class RandomisationResult:
    """What :func:`model_randomisation` returns.

    Attributes:
        stages: names of the parameter groups randomised, cumulatively, at each stage (one stage, ``"all"``,
            for ``mode="full"``).
        similarity: (stages, B) float32 Spearman rank correlation between each image's map under the classifier
            and under the randomised copy after each stage; NaN where either map is constant.
        threshold: the similarity below which an image's map counts as changed.
    """

    stages: list[str]
    similarity: torch.Tensor
    threshold: float

    @property
    def final_similarity(self) -> float:
        """Mean over images (NaN left out) of the similarity once every stage is randomised."""
        return self.similarity[-1].nanmean().item()

    @property
    def passed(self) -> bool:
        """True when the maps changed: the final mean similarity is below the threshold (False if undefined)."""
        final = self.final_similarity
        return final == final and final < self.threshold


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of the rows of two (B, N) tensors, ties given their mean rank: (B,) float32,
    NaN where a row is constant."""
    return pearson(_mean_ranks(a), _mean_ranks(b))


def _mean_ranks(values: torch.Tensor) -> torch.Tensor:
    ordered = values.sort(dim=1).values
    below = torch.searchsorted(ordered, values.contiguous(), right=False)
    up_to = torch.searchsorted(ordered, values.contiguous(), right=True)
    return (below + up_to).double() / 2


def parameter_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The classifier's parameters grouped into blocks, output first: ``[(group, [parameter names])]``.

    A group is a parameter's name up to its first numeric part (``vit.encoder.layer.3``) or, without one, its
    module (``classifier``, ``vit.layernorm``); groups are listed in reverse order of registration, which for
    Hugging Face classifiers runs from the head down to the embeddings."""
    groups: dict[str, list[str]] = {}
    for name, _ in model.named_parameters():
        numbered = re.match(r"^(.*?\.\d+)\.", name)
        group = numbered.group(1) if numbered else name.rsplit(".", 1)[0] if "." in name else name
        groups.setdefault(group, []).append(name)
    return list(reversed(groups.items()))


def randomise_(parameters: list[nn.Parameter], generator: torch.Generator) -> None:
    """Re-draw each tensor in place: Gaussian with the tensor's own mean and std (CPU draws, then moved)."""
    with torch.no_grad():
        for param in parameters:
            values = param.detach().float()
            std = values.std() if values.numel() > 1 else values.new_zeros(())
            draw = torch.randn(param.shape, generator=generator).to(param.device)
            param.copy_((values.mean() + std * draw).to(param.dtype))


def model_randomisation(
    make_attributor: Callable[[nn.Module], Callable],
    model: nn.Module,
    pixel_values: torch.Tensor,
    target=None,
    mode: str = "full",
    generator: torch.Generator | None = None,
    absolute: bool = False,
    threshold: float = 0.5,
    only: str | None = None,
) -> RandomisationResult:
    """Adebayo et al.'s model randomisation check of one attribution method.

    Args:
        make_attributor: builds the method for a classifier: ``make_attributor(classifier)(pixel_values, target)``
            -> maps in any layout of :mod:`aha.metrics`, e.g. ``lambda c: get_attributor("gradcam", c)``.
        model: the classifier (left unchanged: a deep copy is randomised).
        pixel_values: (B, C, H, W) images in the classifier's normalised space.
        target: the class explained, the same under both models: None (the classifier's prediction), an int or
            (B,) classes.
        mode: ``"full"`` (every weight at once) or ``"cascading"`` (from the output down, a stage per block).
        generator: CPU generator of the new weights; None seeds one with 0.
        absolute: compare the ranks of the maps' absolute values (Adebayo et al. report both).
        threshold: the mean similarity below which the check passes. Default 0.5.
        only: randomise only the parameters whose names start with this prefix, e.g. ``"classifier."`` to
            randomise the classifier inside an :class:`~aha.AHAExplainer` passed as ``model`` and keep its
            decoder: ``model_randomisation(lambda e: get_attributor("aha", e.classifier, explainer=e),
            explainer, pixel_values, only="classifier.")``.
    Returns:
        :class:`RandomisationResult`; ``.passed`` says whether the maps changed.
    """
    check_choice("mode", mode, ("full", "cascading"))
    check_number("threshold", threshold, minimum=-1)
    check_pixel_values(pixel_values)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got {generator!r}")
    batch, channels, height, width = pixel_values.shape
    target = target_classes(model, pixel_values, target)

    def maps_of(classifier: nn.Module) -> torch.Tensor:
        maps = pixel_maps(make_attributor(classifier)(pixel_values, target), batch, (height, width), channels)
        return (maps.abs() if absolute else maps).flatten(1).float().cpu()

    original = maps_of(model)
    randomised = copy.deepcopy(model)
    parameters = dict(randomised.named_parameters())
    stages = randomisation_stages(randomised, mode, only)
    similarity = []
    for _, names in stages:
        randomise_([parameters[name] for name in names], generator)
        similarity.append(spearman(original, maps_of(randomised)))
    return RandomisationResult([stage for stage, _ in stages], torch.stack(similarity), threshold)


def randomisation_stages(model: nn.Module, mode: str, only: str | None) -> list[tuple[str, list[str]]]:
    """``[(stage, [parameter names])]``: the :func:`parameter_groups` of ``model`` whose names start with
    ``only`` (None: all), one stage per group for ``"cascading"``, one stage ``"all"`` for ``"full"``."""
    groups = [
        (group, [name for name in names if only is None or name.startswith(only)])
        for group, names in parameter_groups(model)
    ]
    groups = [(group, names) for group, names in groups if names]
    if not groups:
        raise ValueError(f"only={only!r} matches no parameter name of {type(model).__name__}")
    return [("all", [name for _, names in groups for name in names])] if mode == "full" else groups
