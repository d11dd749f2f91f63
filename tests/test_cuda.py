"""The GPU path: forward, loss, backward, explain with refinement and the metrics on CUDA in bf16 autocast.

Skipped without a CUDA device. Checks finite results and that everything stays on the GPU.
"""

import pytest
import torch
from conftest import IMAGE_SIZE, NUM_LABELS, make_classifier

from aha import AHAExplainer
from aha.metrics import deletion_insertion, positive_perturbation
from aha.ranking.refinement import RefinementPlan, refine_with_plan
from aha.ranking.sorting import gumbel_sinkhorn


pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

BF16 = dict(device_type="cuda", dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def explainer():
    classifier = make_classifier("vit", head_scale=20)
    return AHAExplainer.from_classifier(
        classifier, image_mean=[0.5] * 3, image_std=[0.5] * 3, references=["mean", "black", "blur"]
    ).to("cuda")


def _batch(n=4):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator).clamp(-2, 2).cuda()
    return images, torch.arange(n, device="cuda") % NUM_LABELS


def _on_gpu(tensor):
    return tensor.device.type == "cuda"


def test_everything_is_on_the_gpu(explainer):
    assert all(_on_gpu(p) for p in explainer.parameters()) and all(_on_gpu(b) for b in explainer.buffers())


@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_step_in_bf16_autocast(explainer, checkpointing):
    images, labels = _batch()
    explainer.train()
    if checkpointing:
        explainer.activation_checkpointing_enable()
    else:
        explainer.activation_checkpointing_disable()
    explainer.zero_grad()
    try:
        with torch.autocast(**BF16):
            output = explainer(images, labels=labels, tau=0.5)
        assert _on_gpu(output.loss) and _on_gpu(output.attributions) and _on_gpu(output.logits)
        assert torch.isfinite(output.loss)
        for term in ("deletion_auc", "lrf_auc", "peak"):
            values = getattr(output.objective, term)
            assert _on_gpu(values) and torch.isfinite(values).all(), term
        output.loss.backward()
    finally:
        explainer.eval()
        explainer.activation_checkpointing_disable()
    grads = [p.grad for p in explainer.decoder.parameters()]
    assert all(g is not None and _on_gpu(g) and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in explainer.classifier.parameters())


def test_explain_with_refinement_in_bf16_autocast(explainer):
    images, _ = _batch()
    with torch.autocast(**BF16):
        maps = explainer.explain(images)
        refined = explainer.explain(images, refine_steps=2)
        planned = refine_with_plan(
            explainer,
            images,
            maps,
            explainer(images).target,
            2,
            0.3,
            RefinementPlan(num_fractions=5, alternate_terms=True, offset_stride=4),
        )
    for result in (maps, refined, planned):
        assert result.shape == (4, IMAGE_SIZE, IMAGE_SIZE) and _on_gpu(result) and torch.isfinite(result).all()
    assert not torch.equal(refined.float(), maps.float())


def test_metrics_on_the_gpu(explainer):
    images, labels = _batch()
    with torch.no_grad():
        maps = explainer.explain(images).float()
    with torch.autocast(**BF16):
        result = deletion_insertion(explainer.classifier, images, maps)
        positive = positive_perturbation(
            explainer.classifier, images, maps, labels, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )
    for curve in (result.deletion, result.insertion, positive):
        assert _on_gpu(curve.auc) and torch.isfinite(curve.auc).all() and ((curve.auc >= 0) & (curve.auc <= 1)).all()


def test_sinkhorn_runs_in_float32_inside_autocast():
    scores = torch.randn(3, 49, device="cuda", dtype=torch.bfloat16)
    with torch.autocast(**BF16):
        permutation = gumbel_sinkhorn(scores.float(), tau=0.3, noise=False)
    assert permutation.dtype == torch.float32
    torch.testing.assert_close(permutation.sum(1), torch.ones(3, 49, device="cuda"), rtol=0, atol=1e-4)


def test_gumbel_noise_from_a_cpu_generator_on_gpu_scores():
    """The noise is drawn on the generator's device and moved: the same draws as on the CPU."""
    scores = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    expected = gumbel_sinkhorn(scores, tau=0.5, generator=torch.Generator().manual_seed(1))
    got = gumbel_sinkhorn(scores.cuda(), tau=0.5, generator=torch.Generator().manual_seed(1))
    assert _on_gpu(got)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-5, atol=1e-5)
