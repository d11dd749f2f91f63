"""Exact, batched faithfulness and localisation metrics for attribution maps.

One engine (:mod:`aha.metrics.curves`) traces every perturbation curve: pixels ranked by the map are
perturbed step by step, all ``B * F`` perturbed images pushed through the classifier in chunks, and the
curve's area taken by the library's one trapezoid AUC. On it:

- :mod:`aha.metrics.protocol`: the AHA evaluation protocol (:class:`PerturbationProtocol`): :func:`deletion`,
  :func:`insertion` (``insertion_convention`` ``"lrf"`` or ``"rise"``), :func:`deletion_insertion`, and Chefer
  et al.'s :func:`positive_perturbation` / :func:`negative_perturbation`;
- :mod:`aha.metrics.independent`: the field's other metrics (:data:`INDEPENDENT_METRICS`: ROAD, region
  perturbation, selectivity, IROF, pixel flipping, faithfulness correlation; :func:`independent_scores`);
- :mod:`aha.metrics.randomisation`: Adebayo et al.'s model randomisation sanity check;
- :mod:`aha.metrics.localisation`: :func:`pointing_game` and :func:`pixel_auroc` against object masks
  (:data:`LOCALISATION_METRICS`);
- the ``evaluate`` module at :data:`EVALUATE_MODULE_PATH` (``evaluate.load(EVALUATE_MODULE_PATH)``).

Images are ``pixel_values`` (B, C, H, W) in the classifier's normalised space. References (see
:mod:`aha.ranking.perturbation`): ``"mean"`` is zeros in normalised space; ``"black"`` is 0 in [0, 1] pixel space
(``-mean / std`` in normalised space, needs the processor normalisation); ``"blur"`` is a strong Gaussian
blur of the image. Attribution maps are ranked with :func:`aha.ranking.sorting.hard_order` over all H * W pixels
(ties broken by a fixed permutation seeded by ``seed``), so any strictly increasing transform of a map
gives the same curves; a constant map is warned about. Maps may be:

- (B, H, W) or (B, 1, H, W): one real score per pixel;
- (B, C, H, W) with C the image channels: summed over channels (signed; pass ``attributions.abs()`` to
  rank by magnitude instead);
- (B, h, w) or (B, 1 or C, h, w) on a patch grid whose stride divides (H, W) evenly: upsampled
  bilinearly (``align_corners=False``) to (H, W).
"""

from pathlib import Path

from .curves import (
    CurveResult,
    check_fractions,
    check_inputs,
    chefer_fractions,
    default_fractions,
    perturbation_curve,
    pixel_maps,
    predict,
    ranked_scores,
)
from .imputation import linear_imputation, noisy_linear_imputation
from .independent import (
    INDEPENDENT_METRICS,
    IROF,
    ROAD,
    CorrelationResult,
    FaithfulnessCorrelation,
    PixelFlipping,
    RegionPerturbation,
    Selectivity,
    independent_metric,
    independent_scores,
    independent_settings,
)
from .localisation import LOCALISATION_METRICS, LocalisationMetric, pixel_auroc, pointing_game
from .protocol import (
    INSERTION_CONVENTIONS,
    PERTURBATION_METRICS,
    DeletionInsertionResult,
    PerturbationProtocol,
    deletion,
    deletion_insertion,
    insertion,
    negative_perturbation,
    positive_perturbation,
)
from .randomisation import RandomisationResult, model_randomisation


#: Folder of the ``evaluate`` module: ``evaluate.load(EVALUATE_MODULE_PATH)``.
EVALUATE_MODULE_PATH = str(Path(__file__).parent.parent / "metrics_hub" / "deletion_insertion")
