"""The explained score of a class, read off a classifier's logits (shared by the objective, the metrics and
the baselines)."""

from __future__ import annotations

import torch

from ..validation import check_choice


#: the scores that gradients flow through (the comparison methods that differentiate or average them)
DIFFERENTIABLE_SCORES = ("logit", "probability")
#: every score of a class: the two above, and 0/1 top-1 correctness (Chefer et al.'s metrics)
SCORE_KINDS = (*DIFFERENTIABLE_SCORES, "correct")


def class_scores(logits: torch.Tensor, classes: torch.Tensor, kind: str = "probability") -> torch.Tensor:
    """Score of one class per row, in float32.

    Args:
        logits: (N, num_labels) classifier logits, any float dtype.
        classes: (N,) long class indices.
        kind: ``"logit"`` (the class's logit), ``"probability"`` (its softmax probability) or ``"correct"``
            (1.0 where it is the top-1 class, else 0.0; not differentiable).
    Returns:
        (N,) float32, differentiable w.r.t. the logits for "logit" and "probability".
    """
    check_choice("score kind", kind, SCORE_KINDS)
    logits = logits.float()
    if kind == "correct":
        return (logits.argmax(dim=-1) == classes).float()
    if kind == "probability":
        logits = logits.softmax(dim=-1)
    return logits.gather(1, classes.unsqueeze(1)).squeeze(1)
