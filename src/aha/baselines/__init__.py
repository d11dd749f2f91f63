"""Every attribution method behind one interface: ``get_attributor(name, classifier, **options)``, AHA included.

Every method is an :class:`~aha.baselines.base.Attributor`: ``attributor(pixel_values, target=None)``
returns (B, H, W) float32 importance maps at input resolution (target default: the predicted class).
``get_attributor("aha", classifier, explainer=explainer)`` wraps a trained explainer the same way.
"""

from __future__ import annotations

from aha.baselines.aha import AHAAttribution
from aha.baselines.base import Attributor
from aha.baselines.centre_prior import CentrePrior
from aha.baselines.chefer import CheferRelevance
from aha.baselines.gradcam import GradCAM
from aha.baselines.integrated_gradients import IntegratedGradients
from aha.baselines.occlusion import Occlusion
from aha.baselines.random_map import RandomAttribution
from aha.baselines.rise import RISE
from aha.baselines.rollout import AttentionRollout


ATTRIBUTORS: dict[str, type[Attributor]] = {
    cls.name: cls
    for cls in (
        AHAAttribution,
        RandomAttribution,
        CentrePrior,
        AttentionRollout,
        CheferRelevance,
        GradCAM,
        IntegratedGradients,
        Occlusion,
        RISE,
    )
}
#: The comparison methods that take any image classifier (the others read its spatial hidden states, which
#: :mod:`aha.modeling.backbones` reads from ViTs, Swin and convolutional models, or the attention of a ViT-family model).
MODEL_AGNOSTIC = tuple(name for name, cls in ATTRIBUTORS.items() if not cls.needs_tokens)


def get_attributor(name: str, classifier, **options) -> Attributor:
    """Build the method ``name`` for ``classifier`` with its keyword ``options``.

    Names: ``aha`` (needs ``explainer=``), ``random``, ``centre``, ``rollout``, ``chefer``, ``gradcam``,
    ``integrated_gradients``, ``occlusion``, ``rise`` (see each class for its options). ``rollout`` and
    ``chefer`` need a ViT-family classifier; ``gradcam`` and ``aha`` one whose hidden states
    :mod:`aha.modeling.backbones` reads (ViTs, Swin, ResNet, ConvNeXt, ...); the others take any image classifier.
    """
    if name not in ATTRIBUTORS:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(ATTRIBUTORS)}")
    return ATTRIBUTORS[name](classifier, **options)


__all__ = [
    "AHAAttribution",
    "ATTRIBUTORS",
    "MODEL_AGNOSTIC",
    "Attributor",
    "AttentionRollout",
    "CentrePrior",
    "CheferRelevance",
    "GradCAM",
    "IntegratedGradients",
    "Occlusion",
    "RISE",
    "RandomAttribution",
    "get_attributor",
]
