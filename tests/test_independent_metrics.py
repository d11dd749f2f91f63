"""The independent metrics (ROAD, region perturbation, selectivity, IROF, pixel flipping, faithfulness
correlation) on the library's engine: a constructed example where the right answer is known, plain-loop
references, chunking and generators, the registry, and bad input. Agreement with Quantus: test_quantus_reference."""

import dataclasses

import pytest
import torch
from conftest import IMAGE_SIZE, images_forwarded
from test_metrics import BrightSpotClassifier, textured_squares

from aha import metrics


ALL = tuple(metrics.INDEPENDENT_METRICS)


def test_object_mask_beats_a_random_map_on_every_metric():
    """Class 0's evidence is the bright object alone, so its mask is the faithful map: each metric must rank it
    above a random map in its own direction (high or low is good), on every image."""
    model, (images, masks) = BrightSpotClassifier(), textured_squares()
    random_maps = torch.rand(masks.shape, generator=torch.Generator().manual_seed(1))
    truth = masks.float() + 0.01 * random_maps  # the mask, its pixels ordered among themselves
    options = dict(patch_size=4)
    good = metrics.independent_scores(model, images, truth, 0, **options)
    bad = metrics.independent_scores(model, images, random_maps, 0, **options)
    for name, (_, _, high_is_good, _) in metrics.INDEPENDENT_METRICS.items():
        better = good[name] > bad[name] if high_is_good else good[name] < bad[name]
        assert better.all(), (name, good[name], bad[name])
        assert torch.isfinite(good[name]).all() and good[name].shape == (6,)


def test_pixel_flipping_matches_a_plain_loop(vit, images, maps):
    result = metrics.PixelFlipping(pixels_per_step=100)(vit, images, maps)
    target = metrics.predict(vit, images)
    for b in range(4):
        order = torch.argsort(maps[b].flatten(), descending=True)  # no ties in a random map
        curve = []
        for k in list(range(0, IMAGE_SIZE**2, 100)) + [IMAGE_SIZE**2]:
            image = images[b].clone().reshape(3, -1)
            image[:, order[:k]] = 0.0  # the "mean" reference
            with torch.no_grad():
                logits = vit(pixel_values=image.reshape(1, 3, IMAGE_SIZE, IMAGE_SIZE)).logits[0]
            curve.append(torch.softmax(logits, 0)[target[b]].item())
        torch.testing.assert_close(result.curves[b], torch.tensor(curve), atol=1e-5, rtol=0)
    assert result.fractions[0] == 0 and result.fractions[-1] == 1 and result.curves.shape == (4, 12)


def test_region_perturbation_removes_whole_patches_in_order_of_their_sum(vit, images):
    """A map that is constant on each 8 x 8 patch, with known patch sums: the curve must equal removing the
    patches one by one in descending order of those sums."""
    patch_values = torch.randperm(16, generator=torch.Generator().manual_seed(0)).float().view(1, 4, 4)
    maps = patch_values.repeat_interleave(8, 1).repeat_interleave(8, 2).expand(4, -1, -1)
    result = metrics.RegionPerturbation(patch_size=8, regions=5)(vit, images, maps, 0)
    image, curve = images.clone(), []
    with torch.no_grad():
        clean = torch.softmax(vit(pixel_values=images).logits, -1)[:, 0]
        for patch in patch_values.flatten().argsort(descending=True)[:5].tolist():
            row, column = divmod(patch, 4)
            image[:, :, row * 8 : row * 8 + 8, column * 8 : column * 8 + 8] = 0.0
            curve.append(clean - torch.softmax(vit(pixel_values=image).logits, -1)[:, 0])
    torch.testing.assert_close(result.curves[:, 1:], torch.stack(curve, 1), atol=1e-5, rtol=0)
    assert (result.curves[:, 0] == 0).all()


def test_region_perturbation_and_selectivity_scored_together_trace_the_patch_curves_once(vit, images, maps):
    pair = ["region_perturbation", "selectivity"]
    forwarded = images_forwarded(vit)
    alone = {name: metrics.independent_scores(vit, images, maps, metrics=[name])[name] for name in pair}
    forwarded_alone = sum(forwarded)
    forwarded.clear()
    together = metrics.independent_scores(vit, images, maps, metrics=pair)
    for name in pair:
        assert torch.equal(together[name], alone[name]), name
    assert 2 * sum(forwarded) == forwarded_alone  # one prediction and one set of curves instead of two of each


def test_chunking_and_generators(vit, images, maps):
    for name in ALL:
        few = dict(fractions=[0.1, 0.5, 0.9]) if name.startswith("road") else {}
        a = metrics.independent_scores(
            vit, images, maps, metrics=[name], chunk_size=64, generator=torch.Generator().manual_seed(1), **few
        )[name]
        b = metrics.independent_scores(
            vit, images, maps, metrics=[name], chunk_size=7, generator=torch.Generator().manual_seed(1), **few
        )[name]
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    road = metrics.ROAD(noise=0.5, score="probability")
    first = road(vit, images, maps, generator=torch.Generator().manual_seed(1)).curves
    again = road(vit, images, maps, generator=torch.Generator().manual_seed(1)).curves
    other = road(vit, images, maps, generator=torch.Generator().manual_seed(2)).curves
    assert torch.equal(first, again) and not torch.equal(first, other)  # the noise comes from the generator only
    correlation = metrics.FaithfulnessCorrelation(runs=10)
    assert not torch.equal(
        correlation(vit, images, maps, generator=torch.Generator().manual_seed(1)).score_drops,
        correlation(vit, images, maps, generator=torch.Generator().manual_seed(2)).score_drops,
    )


def test_imputation_solves_the_neighbour_equations(images):
    masks = torch.rand(4, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0)) < 0.7
    imputed = metrics.linear_imputation(images.double(), masks, tolerance=1e-10)
    weights = torch.tensor(metrics.imputation.NEIGHBOUR_WEIGHTS, dtype=torch.float64).view(1, 1, 3, 3)
    flat = imputed.reshape(12, 1, IMAGE_SIZE, IMAGE_SIZE)
    neighbours = torch.nn.functional.conv2d(flat, weights, padding=1)
    degree = torch.nn.functional.conv2d(torch.ones_like(flat[:1]), weights, padding=1)
    removed = masks.repeat_interleave(3, 0)[:, None]
    torch.testing.assert_close(
        (degree * flat - neighbours)[removed], torch.zeros(int(removed.sum()), dtype=torch.float64), atol=1e-8, rtol=0
    )  # each removed pixel is the weighted mean of its neighbours
    assert torch.equal(
        imputed[~removed.view(4, 3, IMAGE_SIZE, IMAGE_SIZE)],
        images.double()[~removed.view(4, 3, IMAGE_SIZE, IMAGE_SIZE)],
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, a: metrics.independent_scores(m, x, a, metrics=[]), "metrics is empty"),
        (lambda m, x, a: metrics.independent_scores(m, x, a, metrics=["roar"]), "unknown metric 'roar'"),
        (lambda m, x, a: metrics.independent_scores(m, x, a, patch_sise=4), r"options \['patch_sise'\]"),
        (lambda m, x, a: metrics.RegionPerturbation(patch_size=5)(m, x, a), "patch_size 5 must divide"),
        (lambda m, x, a: metrics.ROAD(fractions=[0.5, 1.0]), "fractions must be < 1"),
        (lambda m, x, a: metrics.ROAD(fractions=[0.1, 0.1, 0.5]), "fractions must be distinct"),
        (lambda m, x, a: metrics.ROAD(order="random"), "unknown order 'random'"),
        (lambda m, x, a: metrics.PixelFlipping(pixels_per_step=0), "pixels_per_step must be an integer >= 1"),
        (lambda m, x, a: metrics.FaithfulnessCorrelation(subset_size=2000)(m, x, a), "subset_size 2000 exceeds"),
        (lambda m, x, a: metrics.IROF(reference="black"), "IROF needs the normalisation"),
        (lambda m, x, a: metrics.ROAD()(m, x, a, generator=1), "generator must be a CPU torch.Generator"),
        (lambda m, x, a: metrics.Selectivity()(m, x, a.to(torch.complex64)), "attributions must be real numbers"),
        (lambda m, x, a: metrics.Selectivity()(m, x, a, target=7), r"target classes must be in \[0, 5\)"),
    ],
)
def test_bad_input_is_refused_naming_the_option(vit, images, maps, call, message):
    with pytest.raises(ValueError, match=message):
        call(vit, images, maps)


def test_constant_maps_warn(vit, images):
    with pytest.warns(UserWarning, match=r"selectivity: the attribution maps of images \[0, 1, 2, 3\] are constant"):
        metrics.Selectivity()(vit, images, torch.ones(4, IMAGE_SIZE, IMAGE_SIZE))


def test_settings_are_written_out_for_a_report():
    settings = metrics.independent_settings(image_mean=[0.5] * 3, image_std=[0.25] * 3, patch_size=4)
    assert list(settings) == list(metrics.INDEPENDENT_METRICS)
    assert settings["road_lerf"]["order"] == "lerf" and settings["road_morf"]["fractions"][0] == 0.01
    assert "reference" not in settings["road_morf"] and settings["irof"]["reference"] == "mean"  # ROAD imputes
    assert settings["selectivity"]["patch_size"] == 4 and settings["irof"]["n_segments"] == 100
    assert settings["pixel_flipping"]["normalisation"] == ([0.5] * 3, [0.25] * 3)
    import json

    json.dumps(settings)  # JSON-able as it is


SHARED_OPTION_ERRORS = [
    (dict(score="accuracy"), "unknown score 'accuracy'"),
    (dict(chunk_size=0), "chunk_size must be an integer >= 1, got 0"),
    (dict(seed=1.5), "seed must be an integer, got 1.5"),
    (dict(reference="grey"), "unknown reference 'grey'"),
    (dict(image_mean=[0.5] * 3, image_std=[0.5, 0.5, 0.0]), r"image_std\[2\] must be a finite number > 0"),
]


@pytest.mark.parametrize(
    "cls",
    [metrics.PerturbationProtocol, *dict.fromkeys(c for c, *_ in metrics.INDEPENDENT_METRICS.values())],
    ids=lambda c: c.__name__,
)
def test_the_shared_options_are_keyword_only_and_checked_alike_in_every_metric(cls):
    """PerturbationProtocol and the independent metrics share one base (aha.metrics.options.MetricOptions): the
    same seven options, the same checks, keyword-only (a positional option would land in another field)."""
    assert [f.name for f in dataclasses.fields(cls)][:7] == [
        "reference",
        "score",
        "image_processor",
        "image_mean",
        "image_std",
        "chunk_size",
        "seed",
    ]
    with pytest.raises(TypeError, match="positional argument"):
        cls("mean")
    for options, message in SHARED_OPTION_ERRORS:
        with pytest.raises(ValueError, match=message):
            cls(**options)
    assert cls(image_mean=[0.5] * 3, image_std=[0.25] * 3).normalisation == ([0.5] * 3, [0.25] * 3)
