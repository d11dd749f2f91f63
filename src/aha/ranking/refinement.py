"""Test-time refinement: a few gradient steps on each image's map against the training objective, without noise.

Refinement corrects what the one-pass explainer missed: the maps are standardised per image (the ranking is
unchanged) and moved by Adam on the deterministic objective of :func:`refinement_loss`, all images at once.

A step scores every map's perturbed images through the classifier, forward and backward, so it costs about
``terms x (num_fractions - 2)`` perturbed images per map, each costing a forward, a recomputed forward (chunk
checkpointing) and a backward to the pixels. A :class:`RefinementPlan` says what a step evaluates, and can cut
that down:

- ``num_fractions``: the points per soft curve (the curve's two end points cost nothing); ``None`` takes the
  training config's;
- ``alternate_terms``: one curve per step, deletion and least-relevant-first in turn, instead of both;
- ``grid_cell_patches``: the ranking grid's cell side in classifier patches (coarser: a smaller Sinkhorn problem,
  ``G^2 x G^2`` per map, and cheaper masks), instead of the finest training grid;
- ``cell_upsampling``: how the change the steps make becomes a change per pixel. The objective sees a map only
  through its grid cells' means, so its gradient, and Adam's step, is the same for every pixel of a cell: the change
  is one value per cell. ``"bilinear"`` (default) interpolates those values between cell centres; ``"nearest"`` keeps
  them constant over each cell, which leaves the grid in the map (blocks 4 px wide at 64 px);
- ``offset_stride``: refine a low-resolution offset (the map's side divided by this, bilinearly upsampled and
  added to the standardised map) instead of every pixel (``cell_upsampling`` does not apply: the offset is smooth);
- ``checkpoint``: recompute the classifier's activations in the backward pass (bounded memory) or keep them (one
  forward per perturbed image fewer);
- ``references``: the references (:data:`~aha.ranking.perturbation.REFERENCES`) the steps' curves move deleted
  pixels to, one per step in turn (with ``alternate_terms``, one per pair of steps, so each term meets each
  reference). A step costs the same whichever reference it uses.

``RefinementPlan()``, the default, is the refinement of :meth:`AHAExplainer.explain`: both terms, 6 fractions, the
finest grid, every pixel, the change interpolated between cell centres, checkpointing, the "mean" and "blur"
references in turn; the clean images' logits are computed once for all steps. Both references rather than the
training's "mean" alone (the default until 2026-12-08): over the benchmark suite's three worlds, at the same cost,
refinement stops overfitting the mean colour. Deletion towards the blurred image and RISE insertion, where "mean"
alone left AHA behind RISE and occlusion, and ROAD in both directions improve; deletion, LRF insertion and NEG give
back a little of what "mean" alone gained, and stay the best of every method (benchmarks/RESULTS.md, "Refinement
against two references"). Interpolated rather than kept in blocks: over the benchmark suite's three worlds it ties
on deletion, is better on nine columns (LRF insertion, NEG, ROAD most-relevant-first, the localisation metrics) and
worse on ROAD least-relevant-first (benchmarks/RESULTS.md, "The grid artefact of refinement"). Six fractions
rather than the training default's 8: on AHA Shapes a step then costs 28 classifier forwards instead of 39 and keeps
most of the gain (benchmarks/RESULTS.md). benchmarks/refinement_cost.py counts what each plan costs and measures what
it gains.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..validation import MAX_FRACTIONS, check_bool, check_choice, check_number
from .objectives import RankingObjective
from .perturbation import REFERENCES


#: how a per-cell change becomes a per-pixel one (:class:`RefinementPlan`'s ``cell_upsampling``)
CELL_UPSAMPLING = ("bilinear", "nearest")


@dataclass(frozen=True)
class RefinementPlan:
    """What a refinement step evaluates (see the module docstring); the defaults are the refinement of
    :meth:`AHAExplainer.explain`."""

    num_fractions: int | None = 6
    alternate_terms: bool = False
    grid_cell_patches: float | None = None
    offset_stride: int | None = None
    checkpoint: bool = True
    sinkhorn_iterations: int | None = None
    cell_upsampling: str = "bilinear"
    references: tuple[str, ...] = ("mean", "blur")

    def __post_init__(self):
        check_bool("alternate_terms", self.alternate_terms)
        check_bool("checkpoint", self.checkpoint)
        check_number(
            "num_fractions", self.num_fractions, integer=True, minimum=3, maximum=MAX_FRACTIONS, optional=True
        )
        check_number("grid_cell_patches", self.grid_cell_patches, above=0, optional=True)
        check_number("offset_stride", self.offset_stride, integer=True, minimum=1, optional=True)
        check_number("sinkhorn_iterations", self.sinkhorn_iterations, integer=True, minimum=1, optional=True)
        check_choice("cell_upsampling", self.cell_upsampling, CELL_UPSAMPLING)
        if isinstance(self.references, str) or not isinstance(self.references, (tuple, list)) or not self.references:
            raise ValueError(
                f"references must be a non-empty tuple of reference kinds {REFERENCES}, got {self.references!r}"
            )
        for kind in self.references:
            check_choice("references", kind, REFERENCES)
        object.__setattr__(self, "references", tuple(self.references))

    def reference(self, step: int) -> str:
        """The reference step ``step`` moves deleted pixels to: :attr:`references` in turn, one per step, or one
        per pair of steps with ``alternate_terms`` (whose steps take the two terms in turn)."""
        return self.references[(step // 2 if self.alternate_terms else step) % len(self.references)]


def plan_grid(explainer, plan: RefinementPlan, height: int, width: int) -> int:
    """Side G of the ranking grid of ``plan`` for ``height`` x ``width`` images: the finest training grid, or cells
    of ``plan.grid_cell_patches`` patches. The Sinkhorn problem has G^2 x G^2 entries per map."""
    if plan.grid_cell_patches is None:
        return explainer.objective.grid_range(height, width)[1]
    return max(2, round(min(height, width) / (plan.grid_cell_patches * explainer.classifier_spec.patch_size)))


def refinement_loss(
    explainer,
    pixel_values: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor,
    plan: RefinementPlan = RefinementPlan(),
    step: int = 0,
    clean_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """The deterministic objective refinement step ``step`` minimises under ``plan``, per image: (B,).

    No Gumbel noise, tau = ``config.tau_end``, the plan's reference for the step (:meth:`RefinementPlan.reference`);
    the plan's fractions, Sinkhorn iterations, terms (with ``alternate_terms``: deletion on even steps,
    least-relevant-first on odd ones, when the config weighs both) and grid (by default the finest training grid);
    with ``plan.checkpoint`` the classifier's activations are recomputed chunk by chunk in the backward pass (bounded
    memory). ``clean_logits`` (B, num_labels), the
    classifier's logits on ``pixel_values`` when known, spare the clean end point's forward.
    """
    config, objective = explainer.config, explainer.objective
    if plan.num_fractions is not None or plan.alternate_terms or plan.sinkhorn_iterations is not None:
        config = copy.copy(config)
        if plan.num_fractions is not None:
            config.num_fractions = plan.num_fractions
        if plan.sinkhorn_iterations is not None:
            config.sinkhorn_iterations = plan.sinkhorn_iterations
        if plan.alternate_terms and config.deletion_weight and config.lrf_insertion_weight:
            if step % 2:
                config.deletion_weight = 0.0
            else:
                config.lrf_insertion_weight = 0.0
        objective = RankingObjective(config, patch_size=explainer.classifier_spec.patch_size)
    return objective(
        explainer.classifier,
        pixel_values,
        maps,
        target,
        tau=config.tau_end,
        grid=plan_grid(explainer, plan, *pixel_values.shape[-2:]),
        reference=plan.reference(step),
        noise=False,
        checkpoint=plan.checkpoint,
        clean_logits=clean_logits,
    ).loss


def refine_with_plan(
    explainer,
    pixel_values: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    lr: float,
    plan: RefinementPlan = RefinementPlan(),
    clean_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """``maps`` (B, H, W) standardised per image, then moved by ``steps`` Adam steps of learning rate ``lr`` on
    :func:`refinement_loss` under ``plan``, all images at once; returns the refined maps (detached, float32): the
    standardised maps plus the steps' change, one value per grid cell, upsampled by ``plan.cell_upsampling``. With
    ``plan.offset_stride`` the steps move a (B, H / s, W / s) offset, bilinearly upsampled and added to the
    standardised maps. ``clean_logits``, the classifier's (B, num_labels) logits of ``pixel_values`` when the
    caller has them (:meth:`aha.AHAExplainer.explain` passes its forward pass's), spares a classifier pass;
    default: computed here."""
    check_number("steps", steps, integer=True, minimum=0)
    check_number("lr", lr, above=0)
    flat = maps.detach().float().flatten(1)  # Adam moves float32 maps, whatever dtype the decoder ran in
    base = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)).view_as(maps)
    height, width = maps.shape[-2:]
    if plan.offset_stride is None:
        variable = base.clone().requires_grad_(True)

        def current():
            return variable
    else:
        side = (-(-height // plan.offset_stride), -(-width // plan.offset_stride))
        variable = torch.zeros(maps.shape[0], 1, *side, device=maps.device, dtype=base.dtype, requires_grad=True)

        def current():
            return base + F.interpolate(variable, size=(height, width), mode="bilinear", align_corners=False).squeeze(
                1
            )

    optimizer = torch.optim.Adam([variable], lr=lr)
    if clean_logits is None and steps:
        with torch.no_grad():
            clean_logits = explainer.classifier(pixel_values=pixel_values).logits
    elif clean_logits is not None and tuple(clean_logits.shape) != (maps.shape[0], explainer.num_labels):
        raise ValueError(
            f"clean_logits must be ({maps.shape[0]}, {explainer.num_labels}), got {tuple(clean_logits.shape)}"
        )
    with torch.enable_grad():
        for step in range(steps):
            loss = refinement_loss(explainer, pixel_values, current(), target, plan, step, clean_logits).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if plan.offset_stride is not None or plan.cell_upsampling == "nearest":
        return current().detach()
    cells = F.adaptive_avg_pool2d((variable - base).detach().unsqueeze(1), plan_grid(explainer, plan, height, width))
    return base + F.interpolate(cells, size=(height, width), mode="bilinear", align_corners=False).squeeze(1)
