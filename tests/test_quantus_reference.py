"""Each independent metric of aha.metrics against Quantus 0.6 (the ``quantus`` extra): same classifier, same
maps, same settings, per-image curves compared.

How Quantus is run here, and why (every difference is a setting, never a change to Quantus):

- Quantus ranks channel values: a one-channel map broadcast over three channels gives each pixel three equal
  features, so ``subset_size`` (and the drawn subsets) are set to whole pixels (3 values each), which is what
  the library's metrics remove. Pixel flipping asks ``features_in_step`` to divide H * W (not C * H * W), which
  no whole-pixel step on three channels of 32 x 32 does, so it is compared on the one-channel ViT.
- Baselines: Quantus' ``perturb_baseline=0.0`` (a constant) is the library's ``"mean"`` reference (zeros in
  normalised space). Quantus' own "black" (the image minimum) and "mean" (the mean of the whole batch array)
  are not among the library's references.
- ROAD and IROF fail in Quantus 0.6 on three-channel images (ROAD's noisy linear imputation takes pixel
  indices but is given channel-value indices; IROF's mask is (B, 1, H, W) against (B, C, H, W) images), so
  both are compared on a one-channel ViT; the imputation itself is also compared on three-channel images,
  where Quantus' function works when called with pixel indices. ROAD's summary in Quantus averages the first
  batch only, so it is called one image at a time and its per-percentage accuracy read off.
- IROF in Quantus 0.6 calls ``np.trapz``, which NumPy 2.4 removed; the test monkeypatches ``np.trapz`` to
  ``np.trapezoid`` (the same function renamed) for that call only. Pixel flipping uses ``np.trapz`` only for its
  optional AUC, so its curves are compared instead.
- Faithfulness correlation draws its subsets with ``np.random.choice``; the test hands Quantus the library's
  subsets (drawn from a torch generator) through that function, so both correlate the same runs.

Tolerance: both sides run the same float32 forwards, in different batch compositions (float32 rounding,
about 1e-7 relative); 1e-5 on probabilities and logits, 1e-4 on correlations and on the imputation (solved to a
relative residual of 1e-6 here, exactly by scipy in Quantus); accuracies (ROAD) exactly.
"""

import numpy as np
import pytest
import torch
import transformers as T
from conftest import IMAGE_SIZE, NUM_LABELS, _vit_kwargs
from torch import nn

from aha import metrics


quantus = pytest.importorskip("quantus")

PIXELS = IMAGE_SIZE * IMAGE_SIZE
QUANTUS_OPTIONS = dict(normalise=False, abs=False, disable_warnings=True)


class Logits(nn.Module):
    """A Hugging Face classifier as Quantus calls a torch model: ``model(x)`` -> logits."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(pixel_values=x).logits


def grey_vit():
    """A tiny one-channel ViT with a sharpened head (Quantus' ROAD and IROF only run on one channel)."""
    torch.manual_seed(0)
    model = T.ViTForImageClassification(T.ViTConfig(**_vit_kwargs(), num_channels=1))
    with torch.no_grad():
        model.classifier.weight.mul_(20)
    return model.eval()


def run_quantus(metric, model, images, maps, target, softmax=True):
    return metric(
        model=Logits(model).eval(),
        x_batch=images.numpy(),
        y_batch=target.numpy(),
        a_batch=maps[:, None].numpy(),
        device="cpu",
        softmax=softmax,
        channel_first=True,
        batch_size=len(images),
    )


@pytest.fixture
def target(vit, images):
    return metrics.predict(vit, images)


def test_pixel_flipping_matches_quantus(images, maps):
    model, grey = grey_vit(), images[:, :1]  # Quantus asks features_in_step to divide H * W: one channel
    target = metrics.predict(model, grey)
    ours = metrics.PixelFlipping(pixels_per_step=32)(model, grey, maps, target)
    reference = quantus.PixelFlipping(features_in_step=32, perturb_baseline=0.0, **QUANTUS_OPTIONS)
    expected = np.asarray(run_quantus(reference, model, grey, maps, target))
    assert ours.curves.shape == (4, PIXELS // 32 + 1) and expected.shape == (4, PIXELS // 32)
    np.testing.assert_allclose(ours.curves[:, 1:].numpy(), expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        clean = torch.softmax(model(pixel_values=grey).logits, -1).gather(1, target[:, None])[:, 0].numpy()
    np.testing.assert_allclose(ours.curves[:, 0].numpy(), clean, atol=1e-5)  # the unperturbed point
    # Quantus' AUC (np.trapz, dx=1, from the first step) is the library's AUC rescaled, less the first half-step
    steps = expected.shape[1]
    np.testing.assert_allclose(
        np.trapezoid(expected, dx=1.0, axis=1), steps * ours.auc.numpy() - (clean + expected[:, 0]) / 2, atol=1e-4
    )


@pytest.mark.parametrize("kind", ["region_perturbation", "selectivity"])
def test_patch_metrics_match_quantus(vit, images, maps, target, kind):
    if kind == "region_perturbation":
        ours = metrics.RegionPerturbation(patch_size=8, regions=16)(vit, images, maps, target)
        reference = quantus.RegionPerturbation(
            patch_size=8, regions_evaluation=16, order="morf", perturb_baseline=0.0, **QUANTUS_OPTIONS
        )
    else:
        ours = metrics.Selectivity(patch_size=8)(vit, images, maps, target)
        reference = quantus.Selectivity(patch_size=8, perturb_baseline=0.0, **QUANTUS_OPTIONS)
    expected = np.asarray(run_quantus(reference, vit, images, maps, target))
    assert expected.shape == (4, 16) and ours.curves.shape == (4, 17)
    np.testing.assert_allclose(ours.curves[:, 1:].numpy(), expected, atol=1e-5, rtol=0)
    assert (ours.curves[:, 1:].std(dim=1) > 1e-3).all()  # the curves move: the comparison is not vacuous


def test_irof_matches_quantus(images, maps, monkeypatch):
    model, grey = grey_vit(), images[:, :1]
    target = metrics.predict(model, grey)
    ours = metrics.IROF()(model, grey, maps, target)
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # NumPy 2.4 removed the old name
    for b in range(len(grey)):
        reference = quantus.IROF(perturb_baseline=0.0, return_aggregate=False, **QUANTUS_OPTIONS)
        (aoc,) = run_quantus(reference, model, grey[b : b + 1], maps[b : b + 1], target[b : b + 1])
        segments = int((ours.fractions[b] < 1).sum())  # steps before the last segment is removed
        ratio_1 = ours.curves[b, 1].item()
        # Quantus: S - trapz(r_1..r_S, dx=1); the library: 1 - trapz(r_0..r_S over k / S), r_0 = 1
        assert aoc == pytest.approx(segments * ours.auc[b].item() + (1 + ratio_1) / 2, abs=1e-4)
    assert (ours.fractions[:, 1] > 0).all() and ours.curves.shape[1] > 10  # several segments per image


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_road_matches_quantus(images, maps, order):
    model, grey = grey_vit(), images[:, :1]
    target = metrics.predict(model, grey)
    steps = torch.arange(1, 64, dtype=torch.float64)
    ours = metrics.ROAD(order=order, fractions=steps / 64, noise=0.0)(model, grey, maps, target)
    ranked = maps if order == "morf" else -maps  # Quantus' ROAD removes the most relevant first only
    for b in range(len(grey)):
        reference = quantus.ROAD(percentages=(1.5625 * steps).tolist(), noise=0.0, **QUANTUS_OPTIONS)
        scores = run_quantus(reference, model, grey[b : b + 1], ranked[b : b + 1], target[b : b + 1])
        assert np.array_equal(np.asarray(list(scores.values())), ours.curves[b].numpy())
    assert 0 < ours.curves.mean() < 1  # some removals change the prediction, some do not


def test_imputation_matches_quantus_on_three_channels(images):
    from quantus.functions.perturb_func import noisy_linear_imputation

    masks = torch.rand(4, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(3)) < 0.6
    masks[0, :16] = True  # a large hole
    ours = metrics.linear_imputation(images.double(), masks)
    for b in range(4):
        indices = masks[b].flatten().nonzero().flatten().numpy()
        expected = noisy_linear_imputation(images[b].double().numpy(), indices, noise=0.0)
        np.testing.assert_allclose(ours[b].numpy(), expected, atol=1e-4, rtol=0)
    assert torch.equal(ours[~masks[:, None].expand_as(ours)], images.double()[~masks[:, None].expand_as(ours)])


def test_faithfulness_correlation_matches_quantus(vit, images, maps, target, monkeypatch):
    options = metrics.FaithfulnessCorrelation(runs=20, subset_size=64)
    ours = options(vit, images, maps, target, torch.Generator().manual_seed(5))
    subsets = options.draw_subsets(4, PIXELS, torch.Generator().manual_seed(5)).numpy()
    channel_values = np.concatenate([subsets + c * PIXELS for c in range(3)], axis=-1)  # whole pixels
    draws = iter(channel_values.transpose(1, 0, 2).reshape(-1, 3 * 64))  # Quantus: per run, per image

    def choice(n, size, replace=True):
        assert (n, size, replace) == (3 * PIXELS, 3 * 64, False)
        return next(draws)

    monkeypatch.setattr(np.random, "choice", choice)
    reference = quantus.FaithfulnessCorrelation(
        nr_runs=20, subset_size=3 * 64, perturb_baseline=0.0, return_aggregate=False, **QUANTUS_OPTIONS
    )
    expected = np.asarray(run_quantus(reference, vit, images, maps, target, softmax=False))
    np.testing.assert_allclose(ours.correlation.numpy(), expected, atol=1e-4, rtol=0)
    assert len(list(draws)) == 0  # Quantus took every run's subsets


def test_every_metric_of_the_registry_has_a_reference_test():
    tested = {
        "road_morf",
        "road_lerf",
        "region_perturbation",
        "selectivity",
        "irof",
        "pixel_flipping",
        "faithfulness_correlation",
    }
    assert set(metrics.INDEPENDENT_METRICS) == tested
    assert NUM_LABELS > 1
