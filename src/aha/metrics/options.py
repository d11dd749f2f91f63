"""The options every perturbation metric shares, validated once: the deletion/insertion protocol
(:class:`~aha.metrics.protocol.PerturbationProtocol`) and the independent metrics
(:mod:`aha.metrics.independent`) are frozen dataclasses built on :class:`MetricOptions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..ranking.perturbation import check_reference, resolve_normalisation
from ..ranking.scores import SCORE_KINDS
from ..validation import check_choice, check_number


@dataclass(frozen=True, eq=False, kw_only=True)
class MetricOptions:
    """What a removed pixel becomes, what is scored, the images' normalisation, the batch size and the seed.

    Keyword-only, in every metric built on it. A subclass adds its own fields and gives the range of each numeric
    one in ``_number_rules`` (checked here, after the shared options); other checks go in its own
    ``__post_init__`` (calling this one's).

    Attributes:
        reference: what a removed pixel becomes: ``"mean"`` (zeros in normalised space), ``"black"`` (0 in [0, 1]
            space, needs the normalisation) or ``"blur"`` (:mod:`aha.ranking.perturbation`).
        score: the curve's score of the target (:func:`aha.ranking.scores.class_scores`): ``"probability"``,
            ``"correct"`` (top-1 accuracy) or ``"logit"``.
        image_processor, image_mean, image_std: the normalisation of ``pixel_values``
            (:func:`aha.ranking.perturbation.resolve_normalisation`), needed by the ``"black"`` reference; resolved once
            into ``normalisation`` (``(mean, std)`` or None).
        chunk_size: images per classifier forward.
        seed: seed of the ranking's tie-breaking permutation (:func:`aha.ranking.sorting.hard_order`), and of the
            generator a metric uses when none is passed.
    """

    reference: str = "mean"
    score: str = "probability"
    image_processor: object = None
    image_mean: Sequence[float] | None = None
    image_std: Sequence[float] | None = None
    chunk_size: int = 64
    seed: int = 0

    name = None  # what the metric is called in messages (a class attribute, or a subclass's field)
    #: range rules of a subclass's numeric fields: name -> keyword arguments of `aha.validation.check_number`
    _number_rules = {}

    def __post_init__(self):
        check_choice("score", self.score, SCORE_KINDS)
        check_number("chunk_size", self.chunk_size, integer=True, minimum=1)
        check_number("seed", self.seed, integer=True)
        normalisation = resolve_normalisation(self.image_processor, self.image_mean, self.image_std)
        check_reference(self.reference, normalisation, self.name)
        object.__setattr__(self, "normalisation", normalisation)
        for name, rules in self._number_rules.items():
            check_number(name, getattr(self, name), **rules)
