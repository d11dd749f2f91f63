"""Comparison methods (aha.baselines): shapes, input errors, and checks against plain references."""

import pytest
import torch
import transformers as T
from conftest import IMAGE_SIZE, NUM_LABELS, make_classifier
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from aha import AHAExplainer
from aha.baselines import ATTRIBUTORS, MODEL_AGNOSTIC, get_attributor
from aha.baselines.attention import capture_attentions
from aha.baselines.base import frozen


# small settings so every method runs in well under a second on the tiny models
FAST = {
    "integrated_gradients": dict(steps=4),
    "occlusion": dict(window=8, stride=8),
    "rise": dict(n_masks=16, batch_size=16),
}


@pytest.fixture(scope="module")
def classifiers():
    return {name: make_classifier(name) for name in ("vit", "deit", "swin", "deit_teacher", "beit", "dinov2")}


@pytest.mark.parametrize("family", ["vit", "deit", "swin"])
@pytest.mark.parametrize("method", sorted(set(ATTRIBUTORS) - {"aha"}))
def test_finite_maps_at_input_resolution_and_model_left_untouched(classifiers, images, family, method):
    model = classifiers[family]
    maps = get_attributor(method, model, **FAST.get(method, {}))(images[:2])
    assert maps.shape == (2, IMAGE_SIZE, IMAGE_SIZE) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert model.config._attn_implementation == "sdpa" and not model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


@pytest.mark.parametrize("family", ["deit_teacher", "beit", "dinov2"])
@pytest.mark.parametrize("method", ["rollout", "chefer", "gradcam"])
def test_token_methods_read_other_vit_families(classifiers, images, family, method):
    maps = get_attributor(method, classifiers[family])(images[:2])
    assert maps.shape == (2, IMAGE_SIZE, IMAGE_SIZE) and torch.isfinite(maps).all()
    # the tokens were read: each map varies over the image, and two images get different maps
    assert (maps.flatten(1).std(1) > 1e-6 * maps.abs().amax()).all()
    assert not torch.allclose(maps[0], maps[1])


def test_unknown_name_lists_the_valid_ones(classifiers):
    with pytest.raises(ValueError, match="unknown baseline 'lime'.*'rise'"):
        get_attributor("lime", classifiers["vit"])


def test_unsupported_model_is_named():
    with pytest.raises(ValueError, match="Linear"):
        get_attributor("random", nn.Linear(2, 2))


@pytest.mark.parametrize(
    "pixels, target, message",
    [
        (torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE), None, r"\(B, C, H, W\)"),
        (torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE), None, "1 channels"),
        (torch.zeros(1, 3, 16, 16), None, "32x32"),
        (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.long), None, "floating point"),
        (torch.full((1, 3, IMAGE_SIZE, IMAGE_SIZE), float("nan")), None, "NaN"),
        (torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE), NUM_LABELS, r"\[0, 5\)"),
        (torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE), [-1, 0], r"\[0, 5\)"),
        (torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE), [0, 1, 2], r"shape \(2,\)"),
        (torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE), 1.0, "integer"),
        (torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE), None, "at least one image"),
        (torch.full((1, 3, IMAGE_SIZE, IMAGE_SIZE), 255.0), None, "outside the classifier's normalised range"),
    ],
)
def test_bad_input_is_rejected_clearly(classifiers, pixels, target, message):
    with pytest.raises(ValueError, match=message):
        get_attributor("gradcam", classifiers["vit"])(pixels, target)


def test_bad_options_are_rejected(classifiers):
    with pytest.raises(ValueError, match="reference"):
        get_attributor("occlusion", classifiers["vit"], reference="grey")
    with pytest.raises(ValueError, match="image_mean"):
        get_attributor("rise", classifiers["vit"], reference="black")
    with pytest.raises(ValueError, match="head_fusion"):
        get_attributor("rollout", classifiers["vit"], head_fusion="median")
    with pytest.raises(TypeError):
        get_attributor("rise", classifiers["vit"], n_mask=10)


@pytest.mark.parametrize(
    "method, options, message",
    [
        ("centre", dict(sigma=float("nan")), "sigma must be a finite number > 0, got nan"),
        ("rise", dict(p=float("nan")), "p must be a finite number > 0 and <= 1, got nan"),
        ("rise", dict(n_masks=0), "n_masks must be an integer >= 1, got 0"),
        ("occlusion", dict(window=0), r"window must be an integer >= 1 \(or None\), got 0"),
        ("occlusion", dict(stride=2.5), r"stride must be an integer >= 1 \(or None\), got 2.5"),
        ("integrated_gradients", dict(steps=0), "steps must be an integer >= 1, got 0"),
        ("occlusion", dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (
            "occlusion",
            dict(reference="black", image_mean=[0.5] * 3, image_std=[0.0] * 3),
            r"image_std\[0\] must be a finite number > 0, got 0.0",
        ),
    ],
)
def test_bad_numeric_options_name_the_option_and_the_expected_value(classifiers, method, options, message):
    with pytest.raises(ValueError, match=message):
        get_attributor(method, classifiers["vit"], **options)


class RegionClassifier(nn.Module):
    """Logit 0 = mean of the pixels in rows 8:16, columns 16:24 (all channels); logit 1 = its negative."""

    def __init__(self):
        super().__init__()
        self.config = T.ViTConfig(image_size=IMAGE_SIZE, patch_size=8, num_labels=2)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, pixel_values, **kwargs):
        value = pixel_values[:, :, 8:16, 16:24].mean((1, 2, 3)) * self.scale
        return ImageClassifierOutput(logits=torch.stack([value, -value], -1))


@pytest.mark.parametrize("method", ["occlusion", "rise", "integrated_gradients"])
def test_perturbation_methods_find_the_only_region_the_logit_reads(method):
    region = torch.zeros(IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    region[8:16, 16:24] = True
    images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0)) + 2
    # RISE is noisy: its estimate carries the mask density's spatial jitter times the mean score, so
    # it gets many fine masks and the linear logit
    options = {
        "occlusion": dict(window=8, stride=4),
        "rise": dict(n_masks=512, grid=8, batch_size=256, score="logit"),
    }
    maps = get_attributor(method, RegionClassifier(), **options.get(method, {}))(images, target=0)
    inside, outside = maps[:, region], maps[:, ~region]
    assert (inside.mean(1) > outside.mean(1) + 3 * outside.std(1)).all()
    assert region.flatten()[maps.flatten(1).argmax(1)].all()
    if method == "integrated_gradients":  # zero gradient outside the region
        assert outside.abs().max() == 0


def test_integrated_gradients_completeness(classifiers, images):
    model = classifiers["vit"]
    ig = get_attributor("integrated_gradients", model, steps=16, reduce="signed", batch_size=32)
    maps = ig(images, target=2)
    with torch.no_grad():
        logits, reference_logits = model(pixel_values=images).logits, model(pixel_values=0 * images).logits
    expected = logits[:, 2] - reference_logits[:, 2]
    torch.testing.assert_close(maps.sum((1, 2)), expected, rtol=1e-3, atol=1e-4)


def _upsampled(token_maps, stride):
    return nn.functional.interpolate(token_maps[:, None], scale_factor=stride, mode="bilinear")[:, 0]


@pytest.mark.parametrize("family", ["vit", "deit"])
def test_rollout_is_the_cls_row_of_the_dense_product(classifiers, images, family):
    model = classifiers[family]
    with frozen(model, eager_attention=True), torch.no_grad():
        attentions = model(pixel_values=images, output_attentions=True).attentions
    tokens = attentions[0].shape[-1]
    rollout = torch.eye(tokens).expand(len(images), tokens, tokens)
    for attention in attentions:
        rollout = (0.5 * attention.mean(1) + 0.5 * torch.eye(tokens)) @ rollout
    torch.testing.assert_close(rollout.sum(-1), torch.ones(len(images), tokens))
    expected = _upsampled(rollout[:, 0, -16:].reshape(-1, 4, 4), 8)
    torch.testing.assert_close(get_attributor("rollout", model)(images), expected)


def test_chefer_matches_the_dense_rule_image_by_image(classifiers, images):
    model = classifiers["deit"]
    maps = get_attributor("chefer", model)(images, target=[0, 1, 2, 3])
    for i in range(len(images)):
        with frozen(model, eager_attention=True):
            outputs = model(pixel_values=images[i : i + 1].requires_grad_(True), output_attentions=True)
            grads = torch.autograd.grad(outputs.logits[0, i], outputs.attentions)
        tokens = outputs.attentions[0].shape[-1]
        relevance = torch.eye(tokens)
        for attention, grad in zip(outputs.attentions, grads):
            relevance = relevance + (grad * attention)[0].clamp(min=0).mean(0) @ relevance
        expected = _upsampled(relevance[0, -16:].reshape(1, 4, 4).detach(), 8)
        torch.testing.assert_close(maps[i : i + 1], expected)


def _dense_window_mixing(weights, windows):
    """The block's attention as a dense (B, N, N) matrix over its h*w grid, built position by position."""
    size, (height_pad, width_pad) = windows.size, windows.padded
    per_row = width_pad // size
    batch = weights.shape[0] // windows.num_windows
    cells = [(y, x) for y in range(windows.height) for x in range(windows.width)]
    dense = torch.zeros(batch, len(cells), len(cells))
    for p, (y, x) in enumerate(cells):
        for q, (v, u) in enumerate(cells):
            ys, xs, vs, us = (
                (y - windows.shift) % height_pad,
                (x - windows.shift) % width_pad,
                ((v - windows.shift) % height_pad),
                (u - windows.shift) % width_pad,
            )
            window = (ys // size) * per_row + xs // size
            if window == (vs // size) * per_row + us // size:
                for b in range(batch):
                    row = weights[b * windows.num_windows + window]
                    dense[b, p, q] = row[(ys % size) * size + xs % size, (vs % size) * size + us % size]
    return dense


def _merge_split(height, width):
    """(ceil(h/2) * ceil(w/2), h * w): each merged token's relevance shared among its real children."""
    parents_w = -(-width // 2)
    split = torch.zeros(-(-height // 2) * parents_w, height * width)
    for y in range(height):
        for x in range(width):
            split[(y // 2) * parents_w + x // 2, y * width + x] = 1.0
    return split / split.sum(1, keepdim=True)


def test_swin_rollout_matches_dense_shifted_windows_and_merging():
    # 6x6 patch grid, shifted 2x2 windows, then a 3x3 stage padded to 4x4: shifts, padding, odd merging
    torch.manual_seed(0)
    config = T.SwinConfig(
        image_size=6, patch_size=1, embed_dim=8, depths=[2, 2], num_heads=[2, 2], window_size=2, num_labels=3
    )
    model = T.SwinForImageClassification(config).eval()
    images = torch.randn(2, 3, 6, 6)
    maps = get_attributor("rollout", model)(images)
    with frozen(model, eager_attention=True), torch.no_grad():
        _, layers = capture_attentions(model, get_attributor("random", model).spec, images)
    assert [(layer.windows.height, layer.windows.shift) for layer in layers] == [(6, 0), (6, 1), (3, 0), (3, 1)]
    relevance = torch.full((2, 1, 9), 1 / 9)
    for index in reversed(range(len(layers))):
        windows = layers[index].windows
        if relevance.shape[-1] != windows.height * windows.width:
            relevance = relevance @ _merge_split(6, 6)
        # softmax rows sum to 1 over the whole window, padding included: (A + I) / 2 is row-normalised,
        # and what A sends to padding (absent from the dense matrix over real tokens) is dropped
        mixing = _dense_window_mixing(layers[index].weights.mean(1), windows) + torch.eye(windows.height**2)
        relevance = relevance @ (mixing / 2)
    torch.testing.assert_close(maps, relevance.view(2, 6, 6))
    assert (maps.sum((1, 2)) < 1).all()  # the padded 3x3 stage dropped some


def test_swin_rollout_conserves_relevance_without_padding(classifiers, images):
    maps = get_attributor("rollout", classifiers["swin"])(images)
    torch.testing.assert_close(maps.sum((1, 2)) / 2**2, torch.ones(len(images)))  # stride 2 px per token


@pytest.mark.parametrize(
    "family, method",
    [("vit", m) for m in ("chefer", "gradcam", "integrated_gradients", "occlusion", "rise")]
    + [("swin", "chefer"), ("swin", "gradcam")],
)
def test_a_batch_gives_the_maps_of_its_images_one_by_one(classifiers, images, family, method):
    attributor = get_attributor(method, classifiers[family], **FAST.get(method, {}))
    batched = attributor(images)
    single = torch.cat([attributor(images[i : i + 1]) for i in range(len(images))])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-6)


def test_gradcam_warns_when_the_layer_cannot_reach_the_logit(classifiers, images):
    # a CLS read-out ignores the last block's patch tokens: their gradient is exactly zero
    with pytest.warns(UserWarning, match="constant map"):
        maps = get_attributor("gradcam", classifiers["vit"], target_layer="vit.layers.3.layernorm_after")(images[:1])
    assert maps.abs().max() == 0


def test_target_int_equals_per_image_targets(classifiers, images):
    gradcam = get_attributor("gradcam", classifiers["vit"])
    torch.testing.assert_close(gradcam(images, target=3), gradcam(images, target=torch.full((4,), 3)))


def test_centre_prior_peaks_at_the_centre_and_random_is_reproducible(classifiers, images):
    prior = get_attributor("centre", classifiers["vit"])(images[:1])[0]
    centre = prior[IMAGE_SIZE // 2 - 1 : IMAGE_SIZE // 2 + 1, IMAGE_SIZE // 2 - 1 : IMAGE_SIZE // 2 + 1]
    assert (centre == prior.max()).all() and prior[0, 0] < 0.1 * prior.max()
    random = get_attributor("random", classifiers["vit"], seed=3)
    torch.testing.assert_close(random(images), random(images))


@pytest.fixture(scope="module")
def convolutional():
    return {name: make_classifier(name) for name in ("resnet", "convnext")}


@pytest.mark.parametrize("family", ["resnet", "convnext"])
@pytest.mark.parametrize("method", MODEL_AGNOSTIC)
def test_model_agnostic_methods_take_convolutional_classifiers_at_any_size(convolutional, family, method):
    model = convolutional[family]
    images = torch.randn(2, 3, 40, 24, generator=torch.Generator().manual_seed(0))  # no fixed size for CNNs
    maps = get_attributor(method, model, **FAST.get(method, {}))(images, target=[1, 3])
    assert maps.shape == (2, 40, 24) and maps.dtype == torch.float32 and torch.isfinite(maps).all()
    assert all(p.requires_grad and p.grad is None for p in model.parameters()) and not model.training
    with pytest.raises(ValueError, match="1 channels; the classifier expects 3"):
        get_attributor(method, model)(images[:, :1])


def test_model_agnostic_methods_are_the_ones_that_read_no_tokens():
    assert set(MODEL_AGNOSTIC) == {"random", "centre", "integrated_gradients", "occlusion", "rise"}


@pytest.mark.parametrize("method", ["rollout", "chefer"])
def test_attention_methods_refuse_a_convolutional_classifier_by_name(convolutional, method):
    """(Grad-CAM and AHA read a CNN's feature maps: tests/test_convolutional.py.)"""
    with pytest.raises(ValueError, match=r"ResNetForImageClassification \(model_type='resnet'\).*random, centre"):
        get_attributor(method, convolutional["resnet"])


def test_integrated_gradients_completeness_on_a_resnet(convolutional, images):
    model = convolutional["resnet"]
    maps = get_attributor("integrated_gradients", model, steps=16, reduce="signed", batch_size=32)(images, target=2)
    with torch.no_grad():
        expected = model(pixel_values=images).logits[:, 2] - model(pixel_values=0 * images).logits[:, 2]
    torch.testing.assert_close(maps.sum((1, 2)), expected, rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def explainer():
    return AHAExplainer.from_classifier(make_classifier("vit", head_scale=20)).eval()


def test_aha_is_one_more_attributor(explainer, images):
    classifier = make_classifier("vit", head_scale=20)  # the same weights in another module
    aha = get_attributor("aha", classifier, explainer=explainer)
    maps = aha(images, target=2)
    assert maps.dtype == torch.float32 and maps.shape == (4, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(maps, explainer.explain(images, target=2))
    torch.testing.assert_close(explainer.attribute(images, 2), maps)
    refined = get_attributor("aha", explainer.classifier, explainer=explainer, refine_steps=2)(images)
    torch.testing.assert_close(refined, explainer.explain(images, refine_steps=2))
    assert not torch.allclose(refined, explainer.explain(images))
    single = torch.cat([aha(images[i : i + 1], target=2) for i in range(len(images))])
    torch.testing.assert_close(single, maps, rtol=1e-4, atol=1e-5)


def test_aha_attributor_checks_its_explainer_and_classifier(explainer, images):
    with pytest.raises(ValueError, match="needs an AHAExplainer, got NoneType"):
        get_attributor("aha", explainer.classifier)
    with pytest.raises(ValueError, match="other weights"):
        get_attributor("aha", make_classifier("vit", seed=1), explainer=explainer)
    with pytest.raises(ValueError, match="refine_steps must be >= 0"):
        get_attributor("aha", explainer.classifier, explainer=explainer, refine_steps=-1)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        get_attributor("aha", explainer.classifier, explainer=explainer)(images, target=7)
