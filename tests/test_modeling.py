import random
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
import transformers as T
from conftest import IMAGE_SIZE, NUM_LABELS, TINY_CLASSIFIERS, make_classifier
from transformers import AutoConfig, AutoModel

from aha import AHAConfig, AHAExplainer
from aha.modeling.modeling_aha import bilinear_resize
from aha.ranking.perturbation import blend
from aha.ranking.sorting import hard_topk_membership


def _explainer(name="vit", **overrides):
    return AHAExplainer.from_classifier(make_classifier(name), **overrides)


@pytest.mark.parametrize("name", sorted(TINY_CLASSIFIERS))
def test_attributions_at_input_resolution_for_every_family(name, images):
    explainer = _explainer(name)
    out = explainer(images)
    assert out.attributions.shape == (4, IMAGE_SIZE, IMAGE_SIZE)
    assert out.logits.shape == (4, NUM_LABELS)
    torch.testing.assert_close(out.logits, explainer.classifier(pixel_values=images).logits)
    assert torch.equal(out.target, out.logits.argmax(-1))
    loss = explainer(images, labels=torch.tensor([0, 1, 2, 3]), tau=1.0).loss
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_separate_feature_backbone(images):
    backbone = T.Dinov2Model(
        T.Dinov2Config(image_size=32, patch_size=4, hidden_size=24, num_hidden_layers=3, num_attention_heads=2)
    )
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), feature_backbone=backbone)
    assert explainer.feature_spec.model_type == "dinov2"
    assert explainer(images).attributions.shape == (4, IMAGE_SIZE, IMAGE_SIZE)
    assert not any(p.requires_grad for p in explainer.feature_backbone.parameters())


def test_gradients_reach_the_decoder_only_and_backbone_stays_fixed(images):
    explainer = _explainer()
    explainer.train()
    assert not explainer.classifier.training
    before = {k: v.clone() for k, v in explainer.classifier.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in explainer.parameters() if p.requires_grad], lr=1e-2)
    loss = explainer(images, labels=torch.tensor([0, 1, 2, 3]), tau=1.0).loss
    loss.backward()
    for name, param in explainer.decoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(not p.requires_grad and p.grad is None for p in explainer.classifier.parameters())
    optimizer.step()
    for key, value in explainer.classifier.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_save_and_load_reproduce_attributions_exactly(tmp_path, images):
    explainer = _explainer(fusion_channels=24)
    expected = explainer(images).attributions
    explainer.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "model.safetensors" in files and "config.json" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    for loader in (AHAExplainer, AutoModel):
        reloaded = loader.from_pretrained(tmp_path)
        assert isinstance(reloaded, AHAExplainer)
        assert torch.equal(reloaded(images).attributions, expected)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, AHAConfig) and config.fusion_channels == 24


def test_a_blurred_guide_keeps_pixel_texture_out_of_the_map_and_round_trips(tmp_path, images):
    sharp = _explainer(fusion_channels=24, guide_blur_sigma=0.0)
    blurred = _explainer(fusion_channels=24, guide_blur_sigma=1.5)
    blurred.load_state_dict(sharp.state_dict())
    rows, columns = torch.meshgrid(torch.arange(IMAGE_SIZE), torch.arange(IMAGE_SIZE), indexing="ij")
    checkerboard = 0.5 * (1 - 2 * ((rows + columns) % 2)).float()  # the finest texture an image can hold
    with torch.no_grad():
        logits, features = sharp._features(images)
        target = logits.argmax(-1)
        change = {}
        for name, explainer in (("sharp", sharp), ("blurred", blurred)):
            plain = explainer.decoder(features, target, images)
            change[name] = (explainer.decoder(features, target, images + checkerboard) - plain).norm()
            # the map still reads the image: a coarse change (a brighter left half) moves it
            brighter = images + 0.5 * (columns < IMAGE_SIZE // 2).float()
            assert (explainer.decoder(features, target, brighter) - plain).norm() > 0.1 * plain.norm()
    assert change["blurred"] < 1e-3 * change["sharp"]
    blurred.save_pretrained(tmp_path)
    reloaded = AHAExplainer.from_pretrained(tmp_path)
    assert reloaded.config.guide_blur_sigma == 1.5 and reloaded.decoder.guide_blur_sigma == 1.5
    assert torch.equal(reloaded(images).attributions, blurred(images).attributions)


@pytest.mark.parametrize("name", ["vit", "resnet"])
def test_token_grid_is_the_projection_of_the_concatenated_levels(name, images):
    """The decoder's steps 1-2 as its docstring states them (each level layer-normalised, resized to the middle
    level's grid, concatenated, the 1x1 convolution, FiLM), with values and gradients: the per-level products that
    replace the concatenation must not change what is computed. The resnet's levels sit on three grids."""
    explainer = _explainer(name)
    decoder = explainer.decoder
    with torch.no_grad():
        for parameter in decoder.parameters():  # away from the initialisation's zeros and ones
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    features = [f.requires_grad_() for f in explainer._features(images)[1]]
    classes = torch.tensor([0, 1, 2, 3])[: len(images)]
    base = features[len(features) // 2].shape[-2:]
    levels = [
        F.interpolate(norm(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), size=base, mode="bilinear", antialias=True)
        for norm, f in zip(decoder.norms, features)
    ]
    scales, shifts = decoder.film(decoder.class_embedding(classes))[:, :, None, None].chunk(2, dim=1)
    expected = decoder.projection(torch.cat(levels, dim=1)) * (1 + scales) + shifts
    if name == "resnet":
        assert len({f.shape[-2:] for f in features}) > 1
    grid = decoder.token_grid(features, classes)
    torch.testing.assert_close(grid, expected, rtol=1e-5, atol=1e-5)
    weight = torch.randn(expected.shape, generator=torch.Generator().manual_seed(2))
    inputs = [*features, *decoder.parameters()]
    got = torch.autograd.grad((grid * weight).sum(), inputs, allow_unused=True)
    want = torch.autograd.grad((expected * weight).sum(), inputs, allow_unused=True)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size, resized", [((4, 4), (32, 32)), ((7, 5), (30, 11)), ((8, 8), (3, 5))])
def test_bilinear_resize_is_torchs_bilinear_interpolation(size, resized):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    expected = F.interpolate(x, size=resized, mode="bilinear", align_corners=False)
    torch.testing.assert_close(bilinear_resize(x, resized), expected)
    grad = torch.randn_like(expected)
    torch.testing.assert_close(
        torch.autograd.grad(bilinear_resize(x, resized), x, grad)[0], torch.autograd.grad(expected, x, grad)[0]
    )


def test_deit_with_teacher_round_trips(tmp_path, images):
    explainer = _explainer("deit_teacher")
    explainer.save_pretrained(tmp_path)
    reloaded = AHAExplainer.from_pretrained(tmp_path)
    assert type(reloaded.classifier).__name__ == "DeiTForImageClassificationWithTeacher"
    assert torch.equal(reloaded(images).attributions, explainer(images).attributions)


def test_refinement_lowers_the_objective(images):
    explainer = _explainer()
    maps = explainer.explain(images)
    target = explainer(images).target
    refined = explainer.explain(images, refine_steps=5, refine_lr=0.1)
    assert refined.shape == maps.shape
    with torch.no_grad():
        before = sum(explainer.refinement_objective(images, maps, target, step) for step in (0, 1))  # both references
        after = sum(
            explainer.refinement_objective(images, refined, target, step) for step in (0, 1)
        )  # both references
    assert (after < before).all(), (before, after)


def _hard_deletion_auc(classifier, images, maps):
    """Exact deletion AUC towards the mean (zero) reference, one fraction at a time."""
    fractions = torch.linspace(0, 1, 21)
    with torch.no_grad():
        target = classifier(pixel_values=images).logits.argmax(-1)
        membership = hard_topk_membership(maps.flatten(1), fractions)
        curve = []
        for i in range(len(fractions)):
            masks = membership[:, i].view_as(maps)
            logits = classifier(pixel_values=blend(images, torch.zeros_like(images), masks)).logits
            curve.append(logits.softmax(-1).gather(1, target[:, None])[:, 0])
        curve = torch.stack(curve, 1)
    return ((curve.sum(1) - 0.5 * (curve[:, 0] + curve[:, -1])) / 20).mean().item()


def test_training_lowers_loss_and_exact_deletion():
    torch.manual_seed(0)
    classifier = make_classifier("vit", head_scale=30)
    explainer = AHAExplainer.from_classifier(classifier, references=["mean"], second_class=False)
    images = torch.randn(8, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    labels = classifier(pixel_values=images).logits.argmax(-1)
    deletion_before = _hard_deletion_auc(classifier, images, explainer.explain(images))
    optimizer = torch.optim.AdamW([p for p in explainer.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(60):
        loss = explainer(images, labels=labels, tau=1.0 - 0.7 * step / 59).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    deletion_after = _hard_deletion_auc(classifier, images, explainer.explain(images))
    assert deletion_after < deletion_before - 0.03, (deletion_before, deletion_after)


def test_second_class_is_the_runner_up_when_right_and_the_label_when_wrong(images):
    classifier = make_classifier("vit", head_scale=20)
    explainer = AHAExplainer.from_classifier(classifier, second_class=True)
    logits = classifier(pixel_values=images).logits
    top2 = logits.topk(2, dim=-1).indices
    labels = top2[:, 0].clone()
    labels[2:] = (top2[2:, 0] + 1) % logits.shape[1]  # images 2 and 3 are misclassified
    seen = {}
    call = type(explainer.objective).__call__

    def recording(self, classifier, pixel_values, maps, classes, **kwargs):
        seen["classes"] = classes
        return call(self, classifier, pixel_values, maps, classes, **kwargs)

    with mock.patch.object(type(explainer.objective), "__call__", recording):
        output = explainer(images, labels=labels)
    second = torch.where(labels == top2[:, 0], top2[:, 1], labels)
    assert torch.equal(seen["classes"], torch.cat([top2[:, 0], second]))
    assert output.objective.loss.shape == (8,) and output.attributions.shape == (4, IMAGE_SIZE, IMAGE_SIZE)


def test_unsupported_models_are_named():
    """(A vision model whose hidden states are not spatial: tests/test_convolutional.py.)"""
    text = T.BertForSequenceClassification(
        T.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    )
    with pytest.raises(ValueError, match="BertForSequenceClassification"):
        AHAExplainer.from_classifier(text)
    with pytest.raises(ValueError, match="ForImageClassification"):
        AHAExplainer.from_classifier(
            T.ViTModel(T.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2))
        )


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda x: x[0], "4-D float tensor"),
        (lambda x: x.to(torch.uint8), "4-D float tensor"),
        (lambda x: x[:, :2], "3 channels"),
        (lambda x: x[:, :, :16, :16], "32x32"),
        (lambda x: x.index_put((torch.tensor([0]),), torch.tensor(float("nan"))), "NaN"),
        (lambda x: x[:0], r"at least one image \(B, C, H, W all >= 1\), got shape \(0, 3, 32, 32\)"),
        (
            lambda x: (x.clamp(-1, 1) + 1) * 127.5,
            r"reach 255, outside the classifier's normalised range \(\|x\| <= 10",
        ),
    ],
)
def test_bad_pixel_values_are_explained(bad, message, images):
    with pytest.raises(ValueError, match=message):
        _explainer()(bad(images))


def test_bad_classes_are_explained(images):
    explainer = _explainer()
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        explainer(images, target=5)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        explainer(images, labels=torch.tensor([0, 1, 2, -1]))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        explainer(images, target=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="refine_steps must be an integer >= 0, got -1"):
        explainer.explain(images, refine_steps=-1)
    with pytest.raises(ValueError, match="refine_steps must be an integer >= 0, got 2.5"):
        explainer.explain(images, refine_steps=2.5)
    for lr in (0, 0.0, float("nan"), -1e-3):  # 0 is refused, never replaced by config.refine_lr
        with pytest.raises(ValueError, match=rf"refine_lr must be a finite number > 0 \(or None\), got {lr}"):
            explainer.explain(images, refine_steps=1, refine_lr=lr)
    for tau in (0.0, float("nan")):
        with pytest.raises(ValueError, match=rf"tau must be a finite number > 0 \(or None\), got {tau}"):
            explainer(images, labels=torch.tensor([0, 1, 2, 3]), tau=tau)


def test_black_reference_needs_the_normalisation():
    with pytest.raises(ValueError, match="image_mean and image_std"):
        _explainer(references=["black"])
    processor = T.ViTImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    assert _explainer(image_processor=processor, references=["black", "mean"]).config.references == ["black", "mean"]
    assert _explainer().config.references == ["mean"]  # the default needs no normalisation


def test_target_checkpointing_recomputes_chunks_without_changing_the_gradients(images):
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), perturbation_batch_size=16).train()
    calls = []
    explainer.classifier.register_forward_hook(lambda *_: calls.append(1))

    def decoder_gradients():
        calls.clear()
        explainer.zero_grad()
        generator = torch.Generator().manual_seed(0)
        explainer(images, labels=torch.tensor([0, 1, 2, 3]), tau=1.0, generator=generator).loss.backward()
        return [p.grad.clone() for p in explainer.decoder.parameters()], len(calls)

    plain, plain_calls = decoder_gradients()
    explainer.activation_checkpointing_enable()
    checkpointed, checkpointed_calls = decoder_gradients()
    # 4 images x classes x 2 curves x the inner fractions, in chunks of 16: each chunk runs again in backward;
    # the clean pass and the curves' end points (no gradient) do not
    classes = 2 if explainer.config.second_class else 1
    perturbed = 4 * classes * 2 * (explainer.config.num_fractions - 2)
    assert checkpointed_calls - plain_calls == -(-perturbed // 16)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_processor_without_normalisation_gives_mean_0_and_std_1():
    processor = T.ViTImageProcessorPil(do_normalize=False, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    config = _explainer(image_processor=processor, references=["black"]).config
    assert config.image_mean == [0.0] * 3 and config.image_std == [1.0] * 3  # "black" is then 0 in pixel space


def test_the_training_step_draws_from_its_generator_only(images):
    """Grid size, reference and Gumbel noise come from the generator passed in: the same seed gives the same
    loss, and neither Python's nor torch's global RNG is touched."""
    explainer = _explainer(references=["mean", "blur"])
    labels = torch.tensor([0, 1, 2, 3])
    python_state, torch_state = random.getstate(), torch.get_rng_state()
    losses = [
        explainer(images, labels=labels, tau=0.5, generator=torch.Generator().manual_seed(seed)).loss
        for seed in (0, 0, 1, 2, 3)
    ]
    assert random.getstate() == python_state and torch.equal(torch.get_rng_state(), torch_state)
    assert torch.equal(losses[0], losses[1]) and len({loss.item() for loss in losses[1:]}) == 4
    grids = [explainer.objective.sample_grid(32, 32, torch.Generator().manual_seed(seed)) for seed in range(40)]
    assert set(grids) == set(
        range(explainer.objective.grid_range(32, 32)[0], explainer.objective.grid_range(32, 32)[1] + 1)
    )


def test_the_objective_integrates_over_the_fractions_its_curve_fractions_give(images):
    explainer = _explainer().eval()
    maps = torch.randn(images.shape[0], IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    target = explainer(images).target
    fractions = torch.linspace(0, 1, explainer.config.num_fractions)

    def terms(curve_fractions=None):
        objective = type(explainer.objective)(explainer.config, explainer.objective.patch_size)
        if curve_fractions is not None:
            objective.curve_fractions = curve_fractions
        return objective(explainer.classifier, images, maps, target, tau=0.3, grid=4, reference="mean", noise=False)

    default = terms()
    explicit = terms(lambda device, generator=None: (fractions[1:-1], fractions))  # the default spacing, spelled out
    squeezed = terms(lambda device, generator=None: (fractions[1:-1], fractions / 2))  # same points, on [0, 0.5]
    torch.testing.assert_close(explicit.loss, default.loss)
    torch.testing.assert_close(squeezed.deletion_auc, default.deletion_auc / 2)
    torch.testing.assert_close(squeezed.lrf_auc, default.lrf_auc / 2)
