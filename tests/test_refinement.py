"""Test-time refinement: the default plan is explain's refinement; cheaper plans show the classifier fewer images."""

import pytest
import torch
import torch.nn.functional as F
from conftest import IMAGE_SIZE, make_classifier

from aha import AHAExplainer
from aha.ranking.refinement import RefinementPlan, plan_grid, refine_with_plan, refinement_loss


@pytest.fixture(scope="module")
def explainer():
    return AHAExplainer.from_classifier(make_classifier("vit", head_scale=20), perturbation_batch_size=16).eval()


def _images(n=3):
    return torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))


def _refine(explainer, images, plan, steps=2):
    with torch.no_grad():
        output = explainer(images)
    return refine_with_plan(
        explainer, images, output.attributions, output.target, steps, explainer.config.refine_lr, plan
    )


def _standardised(maps):
    flat = maps.flatten(1)
    return ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)).view_as(maps)


def _cells(change, grid):
    return F.adaptive_avg_pool2d(change.unsqueeze(1), grid)


def test_explain_refines_by_adam_on_the_refinement_objective(explainer):
    """explain's refinement (the default plan, its clean logits computed once) is plain Adam steps on the
    standardised maps against refinement_objective (its references in turn), which scores the clean images at
    every step; the change they
    make, one value per grid cell, is then interpolated bilinearly between cell centres."""
    images = _images()
    with torch.no_grad():
        output = explainer(images)
    maps = _standardised(output.attributions).requires_grad_(True)
    optimizer = torch.optim.Adam([maps], lr=explainer.config.refine_lr)
    for step in range(2):
        loss = explainer.refinement_objective(images, maps, output.target, step).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    base = _standardised(output.attributions)
    change = _cells(maps.detach() - base, plan_grid(explainer, RefinementPlan(), IMAGE_SIZE, IMAGE_SIZE))
    expected = base + F.interpolate(change, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear").squeeze(1)
    refined = explainer.explain(images, refine_steps=2)
    assert not torch.equal(refined, base)
    torch.testing.assert_close(refined, expected, rtol=0, atol=1e-6)
    blocky = explainer.explain(images, refine_steps=2, refine_plan=RefinementPlan(cell_upsampling="nearest"))
    assert torch.equal(blocky, maps.detach())


def test_the_default_plan_leaves_no_grid_in_the_map(explainer):
    """The objective's ranking sees a map through its grid cells' means, so Adam moves the pixels of a cell nearly
    alike (only the peak penalty reads pixels) and the change kept as it is steps at cell borders; the default
    interpolates its cell means between cell centres instead."""
    images = _images(2)
    grid = plan_grid(explainer, RefinementPlan(), IMAGE_SIZE, IMAGE_SIZE)
    cell = IMAGE_SIZE // grid
    with torch.no_grad():
        base = _standardised(explainer(images).attributions)
    blocky = _refine(explainer, images, RefinementPlan(cell_upsampling="nearest")) - base
    smooth = _refine(explainer, images, RefinementPlan()) - base
    cells = _cells(blocky, grid)
    torch.testing.assert_close(smooth, F.interpolate(cells, scale_factor=cell, mode="bilinear").squeeze(1))
    border = (torch.arange(1, IMAGE_SIZE) % cell) == 0

    def step_at_borders_over_inside(change):
        steps = (change[:, :, 1:] - change[:, :, :-1]).abs()
        return steps[:, :, border].mean() / steps[:, :, ~border].mean().clamp_min(1e-12)

    assert step_at_borders_over_inside(blocky) > 4  # about 9: blocks
    assert step_at_borders_over_inside(smooth) < 1.5  # about 1: no trace of the grid


@pytest.mark.parametrize(
    "plan, images_per_step",
    [
        (RefinementPlan(), 2 * 4 * 2),  # deletion + lrf, 4 inner fractions of 6, forward and checkpointed recompute
        (RefinementPlan(num_fractions=None), 2 * 6 * 2),  # the config's 8 fractions
        (RefinementPlan(num_fractions=5), 2 * 3 * 2),
        (RefinementPlan(alternate_terms=True), 4 * 2),
        (RefinementPlan(checkpoint=False), 2 * 4),
        (RefinementPlan(num_fractions=5, alternate_terms=True, grid_cell_patches=1.0, offset_stride=4), 3 * 2),
    ],
)
def test_cheaper_plans_show_the_classifier_fewer_images(explainer, plan, images_per_step):
    images, seen = _images(2), []
    hook = explainer.classifier.register_forward_hook(
        lambda m, i, o: seen.append(o.logits.shape[0]) if torch.is_grad_enabled() else None
    )
    try:
        maps = _refine(explainer, images, plan, steps=2)
    finally:
        hook.remove()
    assert sum(seen) == 2 * len(images) * images_per_step
    assert maps.shape == (2, IMAGE_SIZE, IMAGE_SIZE) and torch.isfinite(maps).all()


def test_offset_plan_moves_a_low_resolution_offset(explainer):
    images = _images(2)
    with torch.no_grad():
        output = explainer(images)
    base = _standardised(output.attributions)
    maps = refine_with_plan(
        explainer, images, output.attributions, output.target, 2, 0.3, RefinementPlan(offset_stride=8)
    )
    change = maps - base
    assert change.abs().amax() > 0
    # a bilinear upsampling of a 4 x 4 offset: smooth, so neighbouring pixels differ far less than the change itself
    assert (change[:, 1:] - change[:, :-1]).abs().amax() < change.abs().amax()


def test_plan_sinkhorn_iterations_replace_the_configs(explainer):
    images = _images(2)
    with torch.no_grad():
        output = explainer(images)
        maps = _standardised(output.attributions)
        cheap = refinement_loss(explainer, images, maps, output.target, RefinementPlan(sinkhorn_iterations=2))
        default = refinement_loss(explainer, images, maps, output.target)
        configured = explainer.config.sinkhorn_iterations
        explainer.config.sinkhorn_iterations = 2
        try:
            expected = refinement_loss(explainer, images, maps, output.target)
        finally:
            explainer.config.sinkhorn_iterations = configured
    assert torch.equal(cheap, expected)
    assert not torch.allclose(cheap, default)


def test_explain_takes_a_plan(explainer):
    images, plan = _images(2), RefinementPlan(num_fractions=5, alternate_terms=True, sinkhorn_iterations=10)
    refined = explainer.explain(images, refine_steps=2, refine_plan=plan)
    assert torch.equal(refined, _refine(explainer, images, plan, steps=2))
    assert not torch.equal(refined, explainer.explain(images, refine_steps=2))
    with pytest.raises(
        TypeError, match="refine_plan must be an aha.ranking.refinement.RefinementPlan or None, got dict"
    ):
        explainer.explain(images, refine_steps=1, refine_plan={"num_fractions": 5})


def test_the_default_plan_refines_against_the_mean_and_the_blurred_image_in_turn(explainer):
    """Step k of a plan moves deleted pixels to its k-th reference (cyclically; with alternate_terms each reference
    takes a deletion step and a least-relevant-first step): the default plan's step 1 is the "blur" objective."""
    assert RefinementPlan().references == ("mean", "blur")
    assert [RefinementPlan().reference(k) for k in range(4)] == ["mean", "blur", "mean", "blur"]
    assert [RefinementPlan(alternate_terms=True).reference(k) for k in range(4)] == ["mean", "mean", "blur", "blur"]
    images = _images(2)
    with torch.no_grad():
        output = explainer(images)
        maps = _standardised(output.attributions)

        def loss(plan, step):
            return refinement_loss(explainer, images, maps, output.target, plan, step)

        mean, blur = RefinementPlan(references=("mean",)), RefinementPlan(references=["blur"])
        assert torch.equal(loss(RefinementPlan(), 0), loss(mean, 1))
        assert torch.equal(loss(RefinementPlan(), 1), loss(blur, 0))
        assert not torch.allclose(loss(blur, 0), loss(mean, 0))
        assert torch.equal(explainer.refinement_objective(images, maps, output.target, step=3), loss(blur, 0))
    assert blur.references == ("blur",)  # a list is kept as a tuple: the plan stays hashable
    hash(blur)


def test_plan_refuses_bad_values():
    with pytest.raises(ValueError, match="num_fractions must be an integer >= 3"):
        RefinementPlan(num_fractions=2)
    with pytest.raises(ValueError, match="offset_stride must be an integer >= 1"):
        RefinementPlan(offset_stride=0)
    with pytest.raises(ValueError, match="sinkhorn_iterations must be an integer >= 1"):
        RefinementPlan(sinkhorn_iterations=0)
    with pytest.raises(
        ValueError, match=r"unknown cell_upsampling 'bicubic'; expected one of \('bilinear', 'nearest'\)"
    ):
        RefinementPlan(cell_upsampling="bicubic")
    for references in ((), "mean", None):
        with pytest.raises(ValueError, match=r"references must be a non-empty tuple of reference kinds"):
            RefinementPlan(references=references)
    with pytest.raises(ValueError, match=r"unknown references 'grey'; expected one of \('mean', 'black', 'blur'\)"):
        RefinementPlan(references=("mean", "grey"))
