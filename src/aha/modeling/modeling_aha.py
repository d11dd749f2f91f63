"""The AHA explainer: a frozen HF image classifier plus a light, class-conditioned DPT-style decoder that
outputs a per-pixel importance map, trained to rank pixels by the deletion / insertion objective."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..persistence.explainer_saving import ExplainerSavingMixin, classifier_class
from ..ranking.objectives import ObjectiveTerms, RankingObjective
from ..ranking.perturbation import gaussian_blur, resolve_normalisation
from ..ranking.refinement import RefinementPlan, refine_with_plan, refinement_loss
from ..validation import check_classes, check_number, check_pixel_values, resolve_target
from .backbones import BackboneSpec
from .configuration_aha import AHAConfig


#: bytes: the address alignment of torch's CPU allocator, which loaded weights are given (`_freeze_frozen_models`)
_ALIGNMENT = 64


@dataclass
class AHAExplainerOutput(ModelOutput):
    """Output of [`AHAExplainer`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            The ranking objective averaged over images and explained classes.
        attributions (`torch.FloatTensor` of shape `(batch_size, height, width)`):
            One unbounded importance score per input pixel for the class in `target` (higher = more important).
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            The classifier's logits on the clean images.
        target (`torch.LongTensor` of shape `(batch_size,)`):
            The class each map explains (the predicted class unless one was given).
        objective (`ObjectiveTerms`, *optional*, returned when `labels` is given):
            Per-map parts of the loss (AUCs, peak penalty), for logging.
    """

    loss: torch.FloatTensor | None = None
    attributions: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    target: torch.LongTensor | None = None
    objective: ObjectiveTerms | None = None


class ResidualConvUnit(nn.Module):
    """Pre-activation residual block of two 3x3 convolutions (DPT's fusion unit, with GELU): (B, C, h, w) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


def bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` of (..., h, w) -> (..., H, W), as two matrix
    products with the (H, h) and (W, w) interpolation matrices: the same values to float rounding, several times
    faster on CPU for the decoder's few-channel grids."""

    def matrix(n_in: int, n_out: int) -> torch.Tensor:  # (n_out, n_in): row i interpolates output pixel i
        eye = torch.eye(n_in, device=x.device, dtype=x.dtype).unsqueeze(0)
        return F.interpolate(eye, size=n_out, mode="linear", align_corners=False).squeeze(0).T

    return matrix(x.shape[-2], size[0]) @ x @ matrix(x.shape[-1], size[1]).T


def default_fusion_channels(feature_spec: BackboneSpec) -> int:
    """The decoder's width when ``AHAConfig.fusion_channels`` is unset: a quarter of the feature model's widest hidden
    size, in [16, 256], so that the decoder stays light next to the classifier at every scale (0.4-7.2% of the
    benchmark classifiers' FLOPs, see :mod:`aha.modeling.decoder_cost`)."""
    return int(min(256, max(16, max(feature_spec.hidden_sizes) // 4)))


class AHADecoder(nn.Module):
    """Token grids of several depths and the image -> full-resolution importance map for a class.

    1. Tokens: each level is layer-normalised over its channels (the residual streams of different depths
       have very different scales), resized to the base grid (the middle level's; every level of a plain
       ViT is on the patch grid), concatenated and projected to ``fusion_channels`` by a 1x1 convolution.
    2. Class: FiLM. A learned embedding of the class explained (``fusion_channels`` wide) gives a per-channel scale
       and shift after the projection and after each residual unit, so one decoder explains any class.
    3. Grid blocks: ``num_blocks`` residual units of 3x3 convolutions at the base grid. The explainer builds none:
       on AHA Shapes two made it no better and worse on some columns (benchmarks/ablation_shapes.py's
       ``guided_2_blocks`` row, benchmarks/RESULTS.md).
    4. Guided pixel head: a linear projection of each cell's features to an offset and one coefficient per image
       channel, bilinearly upsampled to H x W; a pixel's score is the offset plus the dot product of the coefficients
       with its pixel values. Within a cell the map is a linear function of the image (a guided filter's model), so
       it follows edges inside a patch at the cost of a few elementwise passes. With ``guide_blur_sigma`` > 0 the
       colour term reads the image blurred by a Gaussian of that std (pixels), so fine texture stays out of the map.

    Activations are GELU, not ReLU: a region where a ReLU head is dead in every channel comes out as one
    constant score, a tie that the pixel ranking can only break at random (seen: a quarter of the pixels of
    a trained map in one tie).
    """

    def __init__(
        self,
        in_channels: list[int],
        num_labels: int,
        fusion_channels: int,
        image_channels: int,
        num_blocks: int = 0,
        guide_blur_sigma: float = 0.0,
    ):
        super().__init__()
        self.guide_blur_sigma = guide_blur_sigma
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in in_channels)
        self.projection = nn.Conv2d(sum(in_channels), fusion_channels, 1)
        self.class_embedding = nn.Embedding(num_labels, fusion_channels)
        self.film = nn.Linear(fusion_channels, 2 * fusion_channels * (num_blocks + 1))
        self.blocks = nn.ModuleList(ResidualConvUnit(fusion_channels) for _ in range(num_blocks))
        # applied to the channels-last grid; initialised like a transformers head
        self.to_head = nn.Linear(fusion_channels, 1 + image_channels)

    def forward(self, features: list[torch.Tensor], classes: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Args:
            features: per level (B, C_l, h_l, w_l), shallow first.
            classes: (B,) class index each map explains.
            pixel_values: (B, C, H, W) the images, in the classifier's normalised space.
        Returns:
            (B, H, W) unbounded scores.
        """
        x = F.gelu(self.token_grid(features, classes))
        head = self.to_head(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()  # (B, 1 + C, h, w)
        coefficients = bilinear_resize(head, pixel_values.shape[-2:])
        return coefficients[:, 0] + (coefficients[:, 1:] * self.guide(pixel_values)).sum(1)

    def guide(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) the image the pixel head's colour term reads: ``pixel_values``, blurred by
        ``guide_blur_sigma`` when it is > 0."""
        if not self.guide_blur_sigma:
            return pixel_values
        return gaussian_blur(pixel_values, self.guide_blur_sigma)

    def token_grid(self, features: list[torch.Tensor], classes: torch.Tensor) -> torch.Tensor:
        """Steps 1-3 (tokens, class, grid blocks): the class-conditioned features on the base grid, (B, F, h, w)
        in channels-last memory, before the pixel head."""
        base = features[len(features) // 2].shape[-2:]
        # the 1x1 projection of the concatenated levels as a sum of per-level matrix products over channels (no
        # concatenated copy); the result, (B, F, h, w) in channels-last memory, keeps every convolution below
        # channels-last (several times faster on CPU for these narrow layers)
        weights = self.projection.weight.flatten(1).split([norm.normalized_shape[0] for norm in self.norms], dim=1)
        x = None
        for norm, feature, weight in zip(self.norms, features, weights):
            feature = norm(feature.permute(0, 2, 3, 1))  # (B, h, w, C_l): the token layout, no copy for a ViT
            if feature.shape[1:3] != base:
                feature = F.interpolate(
                    feature.permute(0, 3, 1, 2), size=base, mode="bilinear", align_corners=False, antialias=True
                ).permute(0, 2, 3, 1)
            rows = feature.reshape(-1, feature.shape[-1])
            x = torch.addmm(self.projection.bias if x is None else x, rows, weight.T)
        x = x.view(len(features[0]), *base, -1).permute(0, 3, 1, 2)
        scales, shifts = self.film(self.class_embedding(classes))[:, :, None, None].chunk(2, dim=1)
        scales, shifts = scales.chunk(len(self.blocks) + 1, dim=1), shifts.chunk(len(self.blocks) + 1, dim=1)
        x = x * (1 + scales[0]) + shifts[0]
        for block, scale, shift in zip(self.blocks, scales[1:], shifts[1:]):
            x = block(x) * (1 + scale) + shift
        return x


class AHAExplainer(ExplainerSavingMixin, PreTrainedModel):
    """Explains a frozen Hugging Face image classifier with a learned per-pixel importance ranking (AHA).

    The classifier (and the optional separate feature backbone) are frozen: no gradients, always in eval
    mode, even when the explainer is put in train mode. Only the decoder learns. Saving and loading
    (self-contained or decoder-only, fingerprints checked) come from :class:`~aha.persistence.explainer_saving.ExplainerSavingMixin`,
    test-time refinement from :mod:`aha.ranking.refinement`.
    """

    config_class = AHAConfig
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = []
    image_processor = None  # the classifier's image processor, when known: saved and loaded next to the weights

    def __init__(self, config: AHAConfig):
        super().__init__(config)
        if config.classifier_config is None:
            raise ValueError("AHAConfig.classifier_config is required: use AHAExplainer.from_classifier(classifier)")
        self.classifier = classifier_class(config.classifier_config)(config.classifier_config)
        self.classifier_spec = BackboneSpec.from_model(self.classifier)
        self.feature_backbone = None
        feature_model = self.classifier
        if config.feature_backbone_config is not None:
            self.feature_backbone = AutoModel.from_config(config.feature_backbone_config)
            feature_model = self.feature_backbone
        self.feature_spec = BackboneSpec.from_model(feature_model)
        self.feature_layers = tuple(config.feature_layers or self.feature_spec.default_feature_layers())
        if not all(0 <= i < self.feature_spec.num_layers for i in self.feature_layers):
            raise ValueError(
                f"feature_layers must index hidden_states in [0, {self.feature_spec.num_layers}), "
                f"got {list(self.feature_layers)}"
            )
        self.decoder = AHADecoder(
            in_channels=[self.feature_spec.hidden_sizes[i] for i in self.feature_layers],
            num_labels=self.num_labels,
            fusion_channels=config.fusion_channels or default_fusion_channels(self.feature_spec),
            image_channels=self.classifier_spec.num_channels,
            guide_blur_sigma=config.guide_blur_sigma,
        )
        self.objective = RankingObjective(config, patch_size=self.classifier_spec.patch_size)
        self.gradient_checkpointing = False
        self.post_init()
        if not config.includes_classifier:  # a decoder-only save: the classifier is attached after loading
            self.ignore_missing_classifier_weights()
        self._freeze_frozen_models()

    # ----------------------------------------------------------------------------------------- set-up
    @property
    def num_labels(self) -> int:
        return self.config.classifier_config.num_labels

    def _frozen_models(self) -> list[nn.Module]:
        return [m for m in (self.classifier, self.feature_backbone) if m is not None]

    def _freeze_frozen_models(self) -> None:
        """Freeze the classifier and feature backbone (no gradients, eval mode); called in ``__init__`` and again after
        loading, which replaces the parameters. Loading also maps weights straight from the safetensors file, at
        addresses that need not be aligned: a CPU convolution (oneDNN) over such a weight rounds differently from one
        over the same values in memory of its own, so a reloaded convolutional classifier would not reproduce its
        maps bit for bit. Every such tensor gets memory of its own here (a no-op for freshly built ones)."""
        for model in self._frozen_models():
            model.requires_grad_(False)
            model.eval()
        for tensor in [*self.parameters(), *self.buffers()]:
            if tensor.data_ptr() % _ALIGNMENT:
                tensor.data = tensor.data.clone()

    def train(self, mode: bool = True):
        """Set the decoder's mode; the frozen classifier and feature backbone always stay in eval mode."""
        super().train(mode)
        for model in self._frozen_models():
            model.eval()
        return self

    def _set_gradient_checkpointing(
        self, enable: bool = True, gradient_checkpointing_func=None, every_n_layers: int = 1
    ):
        """What transformers' ``activation_checkpointing_enable()`` / ``_disable()`` switch: recomputing the frozen
        classifier's activations in the backward pass of the training loss.

        Training pushes ``num_fractions x terms x classes`` perturbed copies of every image through the
        classifier and backpropagates to the masks, so the classifier's activations dominate memory. With
        checkpointing on, each chunk of ``config.perturbation_batch_size`` perturbed images is recomputed
        in the backward pass (one extra classifier forward per chunk), so memory holds one chunk's
        activations at a time. It wraps whole classifier forwards in ``torch.utils.checkpoint`` and never switches the
        classifier's own checkpointing, so it works for any classifier, the convolutional families whose
        ``supports_gradient_checkpointing`` is False (ResNet, ConvNeXt, RegNet, EfficientNet, MobileNetV2) included;
        recomputing them is exact because the frozen classifier stays in eval mode (batch-norm statistics, no dropout).
        Test-time refinement always uses it. (The decoder is small and is not checkpointed; the classifier's own
        layers are never trained.)
        """
        self.gradient_checkpointing = enable

    def _init_weights(self, module: nn.Module) -> None:
        """Decoder init: Kaiming-normal convolutions, normal(0, initializer_range) embeddings, zero biases.

        The frozen models' weights always come from their checkpoint or in-memory source.
        """
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, std=self.config.initializer_range)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)

    @classmethod
    def from_classifier(
        cls,
        classifier: PreTrainedModel,
        image_processor=None,
        feature_backbone: PreTrainedModel | None = None,
        **config_overrides,
    ) -> "AHAExplainer":
        """Wrap an in-memory HF image classifier (frozen) with a freshly initialised decoder.

        Args:
            classifier: a `transformers` image classification model of a supported family: ViT, DeiT, BEiT,
                DINOv2, Swin, ..., or one whose `hidden_states` are feature maps (B, C, h, w): ResNet, ConvNeXt v1/v2,
                RegNet, EfficientNet, MobileNetV2, MobileViT, ... (:mod:`aha.modeling.backbones`).
            image_processor: the classifier's image processor; its normalisation enables the "black" reference,
                and it is saved next to the explainer (the pipeline and `aha explain` read it from there).
            feature_backbone: optional separate frozen HF vision model whose hidden states feed the decoder.
            **config_overrides: any [`AHAConfig`] field.
        """
        if not isinstance(classifier, PreTrainedModel) or not hasattr(classifier.config, "num_labels"):
            raise ValueError(f"expected a transformers image classification model, got {type(classifier).__name__}")
        BackboneSpec.from_model(classifier)
        if "ForImageClassification" not in type(classifier).__name__:
            raise ValueError(f"expected a transformers *ForImageClassification model, got {type(classifier).__name__}")
        # a local folder is recorded by its absolute path, so a decoder-only save loads from any working directory
        source = classifier.name_or_path or None
        if source and os.path.isdir(source):
            source = os.path.abspath(source)
        config_overrides.setdefault("classifier_name_or_path", source)
        classifier_config = classifier.config.__class__.from_dict(classifier.config.to_dict())
        classifier_config.architectures = [type(classifier).__name__]
        normalisation = resolve_normalisation(image_processor, channels=classifier.config.num_channels)
        if normalisation is not None:  # a processor with do_normalize=False gives mean 0 and std 1
            config_overrides.setdefault("image_mean", normalisation[0])
            config_overrides.setdefault("image_std", normalisation[1])
        backbone_config = None
        if feature_backbone is not None:
            BackboneSpec.from_model(feature_backbone)
            backbone_config = feature_backbone.config.__class__.from_dict(feature_backbone.config.to_dict())
        config = AHAConfig(
            classifier_config=classifier_config, feature_backbone_config=backbone_config, **config_overrides
        )
        explainer = cls(config)
        explainer.image_processor = image_processor
        explainer.classifier.load_state_dict(classifier.state_dict())
        if feature_backbone is not None:
            explainer.feature_backbone.load_state_dict(feature_backbone.state_dict())
        return explainer.to(device=classifier.device, dtype=classifier.dtype)

    # -------------------------------------------------------------------------------------- forward
    def _features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One frozen forward: the classifier's logits (B, num_labels) and the decoder's feature maps."""
        height, width = pixel_values.shape[-2:]
        with torch.no_grad():
            outputs = self.classifier(pixel_values=pixel_values, output_hidden_states=self.feature_backbone is None)
            feature_outputs = outputs
            if self.feature_backbone is not None:
                feature_outputs = self.feature_backbone(pixel_values=pixel_values, output_hidden_states=True)
            features = [self.feature_spec.feature_map(feature_outputs, i, height, width) for i in self.feature_layers]
        return outputs.logits, features

    def forward(
        self,
        pixel_values: torch.Tensor,
        target: torch.Tensor | int | None = None,
        labels: torch.Tensor | None = None,
        tau: float | None = None,
        generator: torch.Generator | None = None,
    ) -> AHAExplainerOutput:
        r"""One pass with every output: the classifier's logits, the target, the decoder's maps and, with ``labels``,
        the training loss.

        The verb of training and of callers that need the classifier's predictions beside the maps: the
        classifier runs once, the decoder once. The maps are the decoder's, unrefined, in the explainer's dtype;
        :meth:`explain` adds test-time refinement, :meth:`attribute` is the verb shared with the other methods.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, channels, height, width)`):
                Images in the classifier's normalised space (the output of its image processor).
            target (`int` or `torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Class to explain per image. Default: the classifier's prediction.
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Ground-truth classes. When given, `loss` is the ranking objective over the target class and
                (if `config.second_class`) a second class: the runner-up when the prediction is right, else
                the label. A random grid size and reference are drawn for the step.
            tau (`float`, *optional*): Gumbel-Sinkhorn temperature of this step. Default: `config.tau_end`.
            generator (`torch.Generator`, *optional*): where the step's random draws (grid size, reference,
                Gumbel noise) come from, on the model's device; the training loop passes its own. Default: torch's
                default generator.
        """
        check_pixel_values(pixel_values, {self.classifier_spec, self.feature_spec})
        check_number("tau", tau, above=0, optional=True)
        batch_size = len(pixel_values)
        logits, features = self._features(pixel_values)
        target = resolve_target(target, batch_size, self.num_labels, lambda: logits.argmax(-1), device=self.device)
        if labels is None:
            attributions = self.decoder(features, target, pixel_values)
            return AHAExplainerOutput(attributions=attributions, logits=logits, target=target)

        labels = check_classes(labels, batch_size, self.num_labels, "labels", self.device)
        maps, terms = self._training_objective(pixel_values, features, logits, target, labels, tau, generator)
        return AHAExplainerOutput(
            loss=terms.loss.mean(), attributions=maps[:batch_size], logits=logits, target=target, objective=terms
        )

    def _training_objective(self, pixel_values, features, logits, target, labels, tau, generator):
        """The training step's maps (R * B, H, W) and :class:`~aha.ranking.objectives.ObjectiveTerms`: the decoder's maps
        of the (B,) ``target`` and, with ``config.second_class``, of a second class (the runner-up where the
        prediction is the label, else the label), scored by the objective on a grid size and a reference drawn
        by ``generator``."""
        height, width = pixel_values.shape[-2:]
        classes = [target]
        if self.config.second_class:
            runner_up = logits.topk(2, dim=-1).indices[:, 1]
            classes.append(torch.where(logits.argmax(-1) == labels, runner_up, labels))
        repeats = len(classes)
        classes = torch.cat(classes)
        maps = self.decoder(
            [f.repeat(repeats, 1, 1, 1) for f in features], classes, pixel_values.repeat(repeats, 1, 1, 1)
        )
        terms = self.objective(
            self.classifier,
            pixel_values.repeat(repeats, 1, 1, 1),
            maps,
            classes,
            tau=self.config.tau_end if tau is None else tau,
            grid=self.objective.sample_grid(height, width, generator),
            reference=self.objective.sample_reference(generator),
            checkpoint=self.gradient_checkpointing,
            clean_logits=logits.repeat(repeats, 1),
            generator=generator,
        )
        return maps, terms

    # -------------------------------------------------------------------------------------- explain
    def refinement_objective(
        self, pixel_values: torch.Tensor, maps: torch.Tensor, target: torch.Tensor, step: int = 0
    ) -> torch.Tensor:
        """The deterministic objective step ``step`` of :meth:`explain`'s refinement minimises, per image: (B,) (see
        :func:`aha.ranking.refinement.refinement_loss`), against the reference ``RefinementPlan().reference(step)``."""
        check_number("step", step, integer=True, minimum=0)
        return refinement_loss(self, pixel_values, maps, target, step=step)

    def explain(
        self,
        pixel_values: torch.Tensor,
        target: torch.Tensor | int | None = None,
        refine_steps: int = 0,
        refine_lr: float | None = None,
        refine_plan: RefinementPlan | None = None,
        return_dict: bool = False,
    ) -> torch.Tensor | AHAExplainerOutput:
        """Importance maps (B, H, W) at the input resolution, for `target` (default: the predicted class), with
        optional test-time refinement: the verb for explaining images.

        It runs :meth:`forward` once (no gradients, no loss) and refines its maps. With ``refine_steps > 0``, each
        map is standardised per image (ranking unchanged) and refined by that many Adam steps (learning rate
        ``refine_lr``, default ``config.refine_lr``) on :meth:`refinement_objective`, all images at once; the
        steps' change, one value per ranking-grid cell, is interpolated between cell centres (no grid in the map) and
        the refined maps are returned, in float32 (:func:`aha.ranking.refinement.refine_with_plan`; the objective's clean
        scores are the forward pass's logits, not a second classifier pass). ``refine_plan``, a
        :class:`~aha.ranking.refinement.RefinementPlan` (default: ``RefinementPlan()``), says what each step evaluates;
        cheaper plans trade faithfulness for cost, e.g.
        ``RefinementPlan(num_fractions=5, alternate_terms=True, sinkhorn_iterations=10)`` (benchmarks/RESULTS.md
        measures them).

        Args:
            return_dict (`bool`, defaults to `False`): return an [`AHAExplainerOutput`] (the maps, refined when
                asked, as ``attributions``, with the forward pass's ``logits`` and ``target``) instead of the maps
                alone, for a caller that needs the classifier's predictions too (the ``image-attribution``
                pipeline): the classifier then runs once for both.
        """
        check_number("refine_steps", refine_steps, integer=True, minimum=0)
        check_number("refine_lr", refine_lr, above=0, optional=True)
        if refine_plan is not None and not isinstance(refine_plan, RefinementPlan):
            raise TypeError(
                f"refine_plan must be an aha.ranking.refinement.RefinementPlan or None, got {type(refine_plan).__name__}"
            )
        if not isinstance(return_dict, bool):
            raise TypeError(f"return_dict must be True or False, got {return_dict!r}")
        with torch.no_grad():
            output = self(pixel_values, target=target)
        if refine_steps:
            output.attributions = refine_with_plan(
                self,
                pixel_values,
                output.attributions,
                output.target,
                refine_steps,
                self.config.refine_lr if refine_lr is None else refine_lr,
                RefinementPlan() if refine_plan is None else refine_plan,
                clean_logits=output.logits,
            )
        return output if return_dict else output.attributions

    # ------------------------------------------------------------------------------------ attribute
    def attribute(
        self, pixel_values: torch.Tensor, target: torch.Tensor | int | None = None, **refinement
    ) -> torch.Tensor:
        """The verb every attribution method shares, as Captum's ``attribute``: (B, H, W) float32 maps of
        ``pixel_values`` for ``target``, whatever dtype the explainer runs in.

        This is how AHA is called beside the comparison methods of :mod:`aha.baselines`
        (``get_attributor("aha", classifier, explainer=explainer)``), so benchmarks and the metrics treat every method
        alike. It is :meth:`explain`'s maps, cast to float32; the arguments are :meth:`explain`'s (``refinement``:
        ``refine_steps``, ``refine_lr``, ``refine_plan``).
        """
        return self.explain(pixel_values, target, return_dict=False, **refinement).float()
