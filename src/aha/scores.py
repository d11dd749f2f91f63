"""The explained score of a class, read off a classifier's logits (shared by the objective, the metrics and
the baselines)."""

from __future__ import annotations

import torch

SCORE_KINDS = ("logit", "probability", "correct")


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
    logits = logits.float()
    if kind == "correct":
        return (logits.argmax(dim=-1) == classes).float()
    if kind == "probability":
        logits = logits.softmax(dim=-1)
    elif kind != "logit":
        raise ValueError(f"unknown score kind {kind!r}; expected one of {SCORE_KINDS}")
    return logits.gather(1, classes.unsqueeze(1)).squeeze(1)
