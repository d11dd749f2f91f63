"""Mixed precision on the CPU (bf16 autocast) as a stand-in for the GPU path: the ranking relaxation stays in float32
and a training step gives finite results (tests/test_cuda.py runs the same on CUDA when there is one)."""

import torch
from conftest import IMAGE_SIZE, make_classifier

from aha import AHAExplainer
from aha.ranking.sorting import gumbel_sinkhorn


def test_sinkhorn_inside_bf16_autocast_matches_float32():
    scores = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    expected = gumbel_sinkhorn(scores, tau=0.3, noise=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = gumbel_sinkhorn(scores, tau=0.3, noise=False)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_objective_of_bf16_maps_in_autocast_matches_float32():
    """The objective pools maps to cells in float32, so bf16 maps in autocast score close to float32 ones."""
    explainer = AHAExplainer.from_classifier(make_classifier("vit", head_scale=20)).eval()
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    maps = torch.randn(2, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
    expected = explainer.refinement_objective(images, maps, torch.zeros(2, dtype=torch.long))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = explainer.refinement_objective(images, maps.bfloat16(), torch.zeros(2, dtype=torch.long))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=0.05)  # bf16 classifier passes, same ranking


def test_training_step_in_cpu_bf16_autocast_is_finite():
    explainer = AHAExplainer.from_classifier(make_classifier("vit", head_scale=20))
    explainer.train()
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = explainer(images, labels=torch.tensor([0, 1]), tau=0.5).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in explainer.decoder.parameters() if p.grad is not None)
