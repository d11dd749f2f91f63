"""AHA behind the same verb as the comparison methods, so benchmarks and users treat every method alike."""

from __future__ import annotations

import torch

from aha.baselines.base import Attributor
from aha.modeling.modeling_aha import AHAExplainer
from aha.persistence.fingerprints import weights_fingerprint


class AHAAttribution(Attributor):
    """The maps of a trained :class:`~aha.AHAExplainer` (one forward pass, plus optional test-time
    refinement), for the classifier it explains.

    Options:
        explainer: the explainer (required). Its frozen classifier must hold the same weights as
            ``classifier`` (checked by fingerprint, :func:`aha.persistence.fingerprints.weights_fingerprint`).
        refine_steps: test-time refinement steps (default 0), see :meth:`~aha.AHAExplainer.explain`.
        refine_lr: their learning rate (default: the explainer's ``config.refine_lr``).
    """

    name = "aha"
    needs_tokens = True  # the explainer's decoder reads the classifier's spatial hidden states

    def __init__(
        self, classifier, explainer: AHAExplainer | None = None, refine_steps: int = 0, refine_lr: float | None = None
    ):
        super().__init__(classifier)
        if not isinstance(explainer, AHAExplainer):
            raise ValueError(
                f'get_attributor("aha", classifier, explainer=...) needs an AHAExplainer, got {type(explainer).__name__}'
            )
        if classifier is not explainer.classifier and weights_fingerprint(classifier) != weights_fingerprint(
            explainer.classifier
        ):
            raise ValueError(
                f"the explainer explains a classifier with other weights than {type(classifier).__name__} "
                f"({classifier.name_or_path or 'in memory'}): pass the classifier it was built for, or explainer.classifier"
            )
        if refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
        self.explainer, self.refine_steps, self.refine_lr = explainer, refine_steps, refine_lr
        self.classifier = explainer.classifier

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return self.explainer.attribute(pixel_values, target, refine_steps=self.refine_steps, refine_lr=self.refine_lr)
