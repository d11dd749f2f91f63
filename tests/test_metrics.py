"""aha.metrics against plain loop-over-steps references, invariances, a constructed example, and errors."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import transformers as T
from conftest import IMAGE_SIZE, NUM_LABELS, make_classifier
from torch import nn

from aha import metrics
from aha.ranking.perturbation import reference_blur
from aha.ranking.sorting import hard_order


MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


# --- plain references: one image, one step, one forward at a time -------------------------------------


def plain_auc(xs, ys):
    return sum((ys[i] + ys[i + 1]) / 2 * (xs[i + 1] - xs[i]) for i in range(len(xs) - 1))


def plain_curves(model, starts, ends, maps, most_relevant_first, fractions, classes, score="probability"):
    """Per image and fraction: copy the first k = round(p * H * W) ranked pixels of `end` into `start`."""
    curves, aucs = [], []
    for b in range(starts.shape[0]):
        order = hard_order(maps[b].reshape(1, -1), descending=most_relevant_first)[0]
        curve = []
        for p in fractions:
            k = round(float(p) * IMAGE_SIZE * IMAGE_SIZE)
            image = starts[b].clone().reshape(3, -1)
            image[:, order[:k]] = ends[b].reshape(3, -1)[:, order[:k]]
            with torch.no_grad():
                logits = model(pixel_values=image.reshape(1, 3, IMAGE_SIZE, IMAGE_SIZE)).logits[0]
            if score == "probability":
                curve.append(torch.softmax(logits, dim=0)[classes[b]].item())
            else:
                curve.append(float(logits.argmax().item() == classes[b]))
        curves.append(curve)
        aucs.append(plain_auc([float(p) for p in fractions], curve))
    return torch.tensor(curves), torch.tensor(aucs)


def plain_black(images):
    black = torch.empty_like(images)
    for c in range(3):
        black[:, c] = (0.0 - MEAN[c]) / STD[c]
    return black


PLAIN_REFERENCES = {"mean": torch.zeros_like, "black": plain_black, "blur": reference_blur}


def assert_matches(result, curves, aucs):
    torch.testing.assert_close(result.curves, curves, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.auc, aucs, atol=1e-5, rtol=0)


# --- agreement with the plain references -------------------------------------------------------------


@pytest.mark.parametrize("reference", ["mean", "black", "blur"])
def test_deletion_and_lrf_insertion_match_plain_loop(vit, images, maps, reference):
    classes = metrics.predict(vit, images)
    end = PLAIN_REFERENCES[reference](images)
    fractions = metrics.default_fractions()
    result = metrics.deletion_insertion(
        vit, images, maps, reference=reference, image_mean=MEAN, image_std=STD, chunk_size=10
    )
    assert torch.equal(result.target, classes)
    assert_matches(result.deletion, *plain_curves(vit, images, end, maps, True, fractions, classes))
    assert_matches(result.insertion, *plain_curves(vit, images, end, maps, False, fractions, classes))


def test_rise_insertion_matches_plain_loop(vit, images, maps):
    classes = torch.tensor([0, 1, 2, 3])
    result = metrics.insertion(vit, images, maps, classes, insertion_convention="rise")
    fractions = metrics.default_fractions()
    expected = plain_curves(vit, reference_blur(images), images, maps, True, fractions, classes)
    assert_matches(result, *expected)


@pytest.mark.parametrize("kind", ["positive", "negative"])
def test_chefer_perturbation_matches_plain_loop(vit, images, maps, kind):
    labels = metrics.predict(vit, images)
    labels[1] = (labels[1] + 1) % NUM_LABELS
    function = getattr(metrics, f"{kind}_perturbation")
    result = function(vit, images, maps, labels, image_mean=MEAN, image_std=STD)
    fractions = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    black = plain_black(images)
    expected = plain_curves(vit, images, black, maps, kind == "positive", fractions, labels, "correct")
    assert_matches(result, *expected)
    assert result.curves[:, 0].tolist() == [1.0, 0.0, 1.0, 1.0]  # the unperturbed point is included


def test_pointing_game_and_auroc_match_plain_loop(maps):
    masks = torch.zeros(4, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    masks[:, 4:12, 10:30] = True
    masks[2, 20:, :] = True
    scores = maps.clone()
    scores[1, :16] = 0.0  # ties, which count one half in the AUROC
    for b in range(4):
        values, inside = scores[b].flatten().tolist(), masks[b].flatten().tolist()
        positive = [v for v, m in zip(values, inside) if m]
        negative = [v for v, m in zip(values, inside) if not m]
        wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
        auroc = wins / (len(positive) * len(negative))
        energy = sum(max(v, 0.0) for v, m in zip(values, inside) if m) / sum(max(v, 0.0) for v in values)
        assert metrics.pixel_auroc(scores, masks)[b].item() == pytest.approx(auroc, abs=1e-5)
        assert metrics.pointing_game(scores, masks)[b].item() == pytest.approx(energy, abs=1e-5)


# --- map layouts, chunking, invariance -----------------------------------------------------------------


def test_chunk_size_does_not_change_results(vit, images, maps):
    a = metrics.deletion(vit, images, maps, chunk_size=64)
    b = metrics.deletion(vit, images, maps, chunk_size=5)
    torch.testing.assert_close(a.curves, b.curves, atol=1e-6, rtol=0)


def test_map_layouts_reduce_to_pixel_maps(vit, images, maps):
    channels = torch.randn(4, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
    patches = torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(3))
    size = (IMAGE_SIZE, IMAGE_SIZE)
    upsampled = F.interpolate(patches[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    cases = [(maps[:, None], maps), (channels, channels.sum(dim=1)), (patches, upsampled)]
    for given, equivalent in cases:
        expected = metrics.deletion(vit, images, equivalent, 0).curves
        torch.testing.assert_close(metrics.deletion(vit, images, given, 0).curves, expected)


def test_strictly_monotone_transform_leaves_deletion_and_insertion_unchanged(vit, images, maps):
    transformed = maps.double() ** 3 + 1
    # still strictly ordered: no two pixels of a map tie after the transform
    assert all(row.unique().numel() == row.numel() for row in transformed.flatten(1))
    for convention in ("lrf", "rise"):
        a = metrics.deletion_insertion(vit, images, maps, insertion_convention=convention)
        b = metrics.deletion_insertion(vit, images, transformed, insertion_convention=convention)
        assert torch.equal(a.deletion.curves, b.deletion.curves)
        assert torch.equal(a.insertion.curves, b.insertion.curves)
    shuffled = metrics.deletion(vit, images, maps.flip(-1))  # a different ranking does change the curves
    assert not torch.equal(a.deletion.curves, shuffled.curves)


def test_image_processor_gives_the_normalisation(vit, images, maps):
    processor = T.ViTImageProcessor(image_mean=MEAN, image_std=STD)
    a = metrics.deletion(vit, images, maps, reference="black", image_processor=processor)
    b = metrics.deletion(vit, images, maps, reference="black", image_mean=MEAN, image_std=STD)
    assert torch.equal(a.curves, b.curves)


def test_runs_in_the_models_dtype(vit, images, maps):
    model = make_classifier("vit").to(torch.bfloat16)
    result = metrics.deletion(model, images, maps, 0)
    assert result.curves.dtype == torch.float32 and torch.isfinite(result.curves).all()


# --- a constructed example where the right answer is known ---------------------------------------------


class BrightSpotClassifier(nn.Module):
    """Two classes. Class 0's logit is 80 x the mean over pixels of relu(channel mean - 1): evidence from
    bright pixels wherever they are; class 1's logit is a constant 2."""

    def __init__(self):
        super().__init__()
        self.constant = nn.Parameter(torch.tensor(2.0))
        self.config = SimpleNamespace(num_labels=2)

    def forward(self, pixel_values):
        evidence = 80 * F.relu(pixel_values.mean(dim=1) - 1).mean(dim=(1, 2))
        return SimpleNamespace(logits=torch.stack([evidence, self.constant.expand_as(evidence)], dim=1))


def textured_squares(batch=6, side=8):
    """Noise images (std 0.3), each with one 8 x 8 checkerboard of +3 / -3 at a random place, and its mask.

    Only the object has bright pixels, so the classifier above predicts class 0 (p ~ 0.95) because of
    the object alone; the blur reference averages the checkerboard away (p ~ 0.12), as does the mean one.
    """
    g = torch.Generator().manual_seed(0)
    images = 0.3 * torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    masks = torch.zeros(batch, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    checkerboard = 3.0 - 6.0 * ((torch.arange(side)[:, None] + torch.arange(side)) % 2)
    for b, (y, x) in enumerate(torch.randint(0, IMAGE_SIZE - side, (batch, 2), generator=g).tolist()):
        images[b, :, y : y + side, x : x + side] = checkerboard
        masks[b, y : y + side, x : x + side] = True
    return images, masks


def test_object_mask_beats_random_map_on_constructed_example():
    model, (images, masks) = BrightSpotClassifier(), textured_squares()
    assert (metrics.predict(model, images) == 0).all()
    random_maps = torch.rand(masks.shape, generator=torch.Generator().manual_seed(1))
    truth, random = masks.float(), random_maps
    for convention in ("lrf", "rise"):
        good = metrics.deletion_insertion(model, images, truth, insertion_convention=convention)
        bad = metrics.deletion_insertion(model, images, random, insertion_convention=convention)
        assert (good.deletion.auc < bad.deletion.auc - 0.2).all()
        assert (good.insertion.auc > bad.insertion.auc + 0.2).all()
    assert (metrics.pointing_game(truth, masks) == 1).all()
    assert (metrics.pointing_game(random, masks) < 0.2).all()
    assert (metrics.pixel_auroc(truth, masks) == 1).all()


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(attributions=torch.randn(3, IMAGE_SIZE, IMAGE_SIZE)), "3 maps but there are 4 images"),
        (dict(attributions=torch.randn(4, 30, 30)), r"match neither the images' \(32, 32\)"),
        (dict(attributions=torch.randn(4, 2, IMAGE_SIZE, IMAGE_SIZE)), "C = 1 or the images' 3 channels"),
        (dict(attributions=torch.randn(4, 1024)), r"must be \(B, H, W\) or \(B, C, H, W\)"),
        (dict(attributions=torch.full((4, 32, 32), float("nan"))), "attributions contain NaN"),
        (dict(pixel_values=torch.randn(3, IMAGE_SIZE, IMAGE_SIZE)), r"pixel_values must be a \(B, C, H, W\)"),
        (dict(target=NUM_LABELS), r"target classes must be in \[0, 5\)"),
        (dict(target=torch.tensor([0, 1, -1, 2])), r"target classes must be in \[0, 5\)"),
        (dict(target=torch.tensor([0, 1])), r"\(4,\) tensor of classes"),
        (dict(reference="grey"), "unknown reference 'grey'"),
        (dict(insertion_convention="deletion"), "unknown insertion_convention 'deletion'"),
        (dict(reference="black"), "needs the normalisation of pixel_values: pass image_processor"),
        (dict(fractions=[0.0, 0.5, 1.5]), r"ascending values in \[0, 1\]"),
        (dict(fractions=[0.0, float("nan"), 1.0]), r"ascending values in \[0, 1\], got \[0.0, nan, 1.0\]"),
        (dict(pixel_values=torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE)), "at least one image"),
        (dict(pixel_values=torch.full((4, 3, IMAGE_SIZE, IMAGE_SIZE), 255.0)), "reach 255, outside the classifier's"),
        (
            dict(reference="black", image_mean=[0.5] * 3, image_std=[0.5, 0.0, 0.5]),
            r"image_std\[1\] must be a finite number > 0, got 0.0",
        ),
        (
            dict(reference="black", image_mean=[0.5] * 3, image_std=[0.5] * 2),
            r"image_std must have one value per channel \(3\), got 2",
        ),
        (dict(chunk_size=0), "chunk_size must be an integer >= 1, got 0"),
        # a repeated fraction is a zero-width step: two fractions [0.5, 0.5] gave AUC 0
        (dict(fractions=[0.0, 0.5, 0.5, 1.0]), r"fractions must be distinct \(strictly ascending\)"),
        (dict(fractions=[0.5, 0.5]), r"fractions must be distinct"),
        (
            dict(attributions=torch.randn(4, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.complex64)),
            "attributions must be real numbers, got dtype torch.complex64",
        ),
    ],
)
def test_bad_input_raises_clear_error(vit, images, maps, change, message):
    arguments = dict(model=vit, pixel_values=images, attributions=maps) | change
    with pytest.raises(ValueError, match=message):
        metrics.deletion_insertion(**arguments)


def test_chefer_needs_normalisation_and_masks_must_be_valid(vit, images, maps):
    with pytest.raises(ValueError, match="positive perturbation needs the normalisation"):
        metrics.positive_perturbation(vit, images, maps, 0)
    with pytest.raises(ValueError, match="either image_processor or image_mean/image_std"):
        processor = T.ViTImageProcessor()
        metrics.negative_perturbation(vit, images, maps, 0, image_processor=processor, image_mean=MEAN)
    masks = torch.zeros(4, IMAGE_SIZE, IMAGE_SIZE)
    masks[:3, :4] = 1
    with pytest.raises(ValueError, match=r"masks of images \[3\] have no object pixel"):
        metrics.pointing_game(maps, masks)
    with pytest.raises(ValueError, match="masks must be binary"):
        metrics.pointing_game(maps, masks * 2)
    full = torch.ones(4, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    full[:2, 0, 0] = False
    with pytest.raises(ValueError, match=r"masks of images \[2, 3\] have no background pixel"):
        metrics.pixel_auroc(maps, full)


def test_constant_maps_warn_that_deletion_equals_insertion(vit, images):
    constant = torch.full((4, IMAGE_SIZE, IMAGE_SIZE), 0.3)
    with pytest.warns(UserWarning, match=r"maps of images \[0, 1, 2, 3\] are constant.*deletion equals"):
        result = metrics.deletion_insertion(vit, images, constant)
    assert torch.equal(result.deletion.curves, result.insertion.curves)  # the question has no answer


def test_labels_are_checked_even_where_the_metric_does_not_read_them(vit, images, maps):
    protocol = metrics.PerturbationProtocol()
    with pytest.raises(ValueError, match=r"labels classes must be in \[0, 5\), got \[0, 1, 2, 9\]"):
        protocol.measure("deletion", vit, images, maps, labels=[0, 1, 2, 9])
