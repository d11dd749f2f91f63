"""Comparison methods behind one interface: ``get_attributor(name, classifier, **options)``.

Every method is an :class:`~aha.baselines.base.Attributor`: ``attributor(pixel_values, target=None)``
returns (B, H, W) float32 importance maps at input resolution (target default: the predicted class).
"""

from __future__ import annotations

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


def get_attributor(name: str, classifier, **options) -> Attributor:
    """Build the comparison method ``name`` for ``classifier`` with its keyword ``options``.

    Names: ``random``, ``centre``, ``rollout``, ``chefer``, ``gradcam``, ``integrated_gradients``,
    ``occlusion``, ``rise`` (see each class for its options).
    """
    if name not in ATTRIBUTORS:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(ATTRIBUTORS)}")
    return ATTRIBUTORS[name](classifier, **options)


__all__ = [
    "ATTRIBUTORS",
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
