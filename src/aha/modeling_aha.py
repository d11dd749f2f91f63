"""The AHA explainer: a frozen HF image classifier plus a light, class-conditioned DPT-style decoder that
outputs a per-pixel importance map, trained to rank pixels by the deletion / insertion objective."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import AutoImageProcessor, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import IMAGE_PROCESSOR_NAME, ModelOutput, cached_file, logging

from .backbones import BackboneSpec
from .configuration_aha import AHAConfig
from .fingerprint import short_fingerprint, weights_fingerprint
from .loading import check_local_path, load_classifier, naming_damaged_files
from .objectives import ObjectiveTerms, RankingObjective
from .perturbation import resolve_normalisation
from .validation import check_classes, check_number, check_pixel_values

logger = logging.get_logger(__name__)

# state-dict prefix of the frozen target inside the explainer: left out of decoder-only saves
TARGET_PREFIX = "classifier."
# from_pretrained arguments that also apply to loading a decoder-only save's target from its reference
_TARGET_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "token")


@dataclass
class AHAExplainerOutput(ModelOutput):
    """Output of [`AHAExplainer`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            The ranking objective averaged over images and explained classes.
        attributions (`torch.FloatTensor` of shape `(batch_size, height, width)`):
            One unbounded importance score per input pixel for the class in `target` (higher = more important).
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            The target classifier's logits on the clean images.
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


class AHADecoder(nn.Module):
    """Token grids of several depths and the image -> full-resolution importance map for a class.

    1. Tokens: each level is layer-normalised over its channels (the residual streams of different depths
       have very different scales), resized to the base grid (the middle level's; every level of a plain
       ViT is on the patch grid), concatenated and projected to ``fusion_channels`` by a 1x1 convolution.
    2. Class: FiLM. A learned embedding of the class explained gives a per-channel scale and shift after
       the projection and after each residual unit, so one decoder explains any class.
    3. Grid blocks: ``num_blocks`` residual units of 3x3 convolutions at the base grid (cheap: the grid is
       the classifier's token grid).
    4. Image branch: two narrow 3x3 convolutions on the pixel values at full resolution, so the map can
       follow edges inside a patch.
    5. Head: a 1x1 projection of the grid features to ``head_channels``, bilinear upsampling to H x W, the
       image features added, GELU, and a 3x3 convolution to one unbounded score per pixel.

    Activations are GELU, not ReLU: a region where a ReLU head is dead in every channel comes out as one
    constant score, a tie that the pixel ranking can only break at random (seen: a quarter of the pixels of
    a trained map in one tie).
    """

    def __init__(
        self,
        in_channels: list[int],
        num_labels: int,
        fusion_channels: int,
        head_channels: int,
        class_dim: int,
        image_channels: int,
        num_blocks: int = 2,
    ):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in in_channels)
        self.projection = nn.Conv2d(sum(in_channels), fusion_channels, 1)
        self.class_embedding = nn.Embedding(num_labels, class_dim)
        self.film = nn.Linear(class_dim, 2 * fusion_channels * (num_blocks + 1))
        self.blocks = nn.ModuleList(ResidualConvUnit(fusion_channels) for _ in range(num_blocks))
        self.to_head = nn.Conv2d(fusion_channels, head_channels, 1)
        self.image_conv1 = nn.Conv2d(image_channels, head_channels, 3, padding=1)
        self.image_conv2 = nn.Conv2d(head_channels, head_channels, 3, padding=1)
        self.out_conv = nn.Conv2d(head_channels, 1, 3, padding=1)

    def forward(self, features: list[torch.Tensor], classes: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Args:
            features: per level (B, C_l, h_l, w_l), shallow first.
            classes: (B,) class index each map explains.
            pixel_values: (B, C, H, W) the images, in the classifier's normalised space.
        Returns:
            (B, H, W) unbounded scores.
        """
        base = features[len(features) // 2].shape[-2:]
        grids = []
        for norm, feature in zip(self.norms, features):
            feature = norm(feature.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            if feature.shape[-2:] != base:
                feature = F.interpolate(feature, size=base, mode="bilinear", align_corners=False, antialias=True)
            grids.append(feature)
        x = self.projection(torch.cat(grids, dim=1))
        scales, shifts = self.film(self.class_embedding(classes))[:, :, None, None].chunk(2, dim=1)
        scales, shifts = scales.chunk(len(self.blocks) + 1, dim=1), shifts.chunk(len(self.blocks) + 1, dim=1)
        x = x * (1 + scales[0]) + shifts[0]
        for block, scale, shift in zip(self.blocks, scales[1:], shifts[1:]):
            x = block(x) * (1 + scale) + shift
        x = F.interpolate(self.to_head(F.gelu(x)), size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)
        image = self.image_conv2(F.gelu(self.image_conv1(pixel_values)))
        return self.out_conv(F.gelu(x + image)).squeeze(1)


def _classifier_class(config) -> type[PreTrainedModel]:
    """The transformers class named by ``config.architectures[0]`` (never remote code)."""
    name = (config.architectures or [None])[0]
    cls = getattr(transformers, name, None) if name else None
    if cls is None or "ForImageClassification" not in name:
        raise ValueError(
            f"classifier_config.architectures must name a transformers image classification class "
            f"(e.g. ViTForImageClassification), got {config.architectures}"
        )
    return cls


def _describe_reference(config: AHAConfig) -> str:
    """``name_or_path@revision`` of the recorded target, for messages."""
    reference = config.classifier_name_or_path or "<no classifier_name_or_path recorded>"
    return f"{reference}@{config.classifier_revision}" if config.classifier_revision else reference


def _check_explainer_folder(name_or_path, **hub_kwargs) -> None:
    """Raise a FileNotFoundError or ValueError saying what ``name_or_path`` holds when it is not a saved explainer
    (a missing local folder, no config.json, or the config of another model type)."""
    check_local_path(name_or_path, "AHAExplainer.from_pretrained")
    if os.path.isdir(name_or_path) and not os.path.isfile(os.path.join(name_or_path, "config.json")):
        raise FileNotFoundError(
            f"{name_or_path} holds no config.json: it is not a saved explainer (AHAExplainer.save_pretrained writes one)"
        )
    model_type = AHAConfig.get_config_dict(name_or_path, **hub_kwargs)[0].get("model_type")
    if model_type != AHAConfig.model_type:
        raise ValueError(
            f"{name_or_path} holds a model of type {model_type!r}, not an AHA explainer (model_type "
            f"{AHAConfig.model_type!r}); to explain a classifier, wrap it: AHAExplainer.from_classifier(classifier)"
        )


def _load_target(config: AHAConfig, **hub_kwargs) -> PreTrainedModel:
    """The target classifier a decoder-only save references: ``config.classifier_name_or_path`` (Hub id or
    local path) at ``config.classifier_revision``, as the exact class in ``classifier_config.architectures``
    (never remote code), from safetensors only, in its checkpoint dtype."""
    if not config.classifier_name_or_path:
        raise ValueError(
            "this explainer was saved without its target (include_target=False) and records no "
            "classifier_name_or_path: pass the target, AHAExplainer.from_pretrained(path, classifier=classifier)"
        )
    try:
        return load_classifier(
            _classifier_class(config.classifier_config), config.classifier_name_or_path,
            "the target classifier this explainer references,", revision=config.classifier_revision, **hub_kwargs
        )
    except OSError as error:
        raise OSError(
            f"could not load the target classifier {_describe_reference(config)} that this decoder-only explainer "
            f"references ({error}). Pass it explicitly: AHAExplainer.from_pretrained(path, classifier=classifier)"
        ) from error


def _saved_image_processor(name_or_path, **hub_kwargs):
    """The image processor saved next to an explainer (``preprocessor_config.json``), or None if there is none."""
    found = cached_file(
        name_or_path, IMAGE_PROCESSOR_NAME, _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False, **hub_kwargs,
    )
    return None if found is None else AutoImageProcessor.from_pretrained(name_or_path, **hub_kwargs)


class AHAExplainer(PreTrainedModel):
    """Explains a frozen Hugging Face image classifier with a learned per-pixel importance ranking (AHA).

    The classifier (and the optional separate feature backbone) are frozen: no gradients, always in eval
    mode, even when the explainer is put in train mode. Only the decoder learns.
    """

    config_class = AHAConfig
    base_model_prefix = "aha"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False
    _no_split_modules = []
    image_processor = None  # the classifier's image processor, when known: saved and loaded next to the weights

    def __init__(self, config: AHAConfig):
        super().__init__(config)
        if config.classifier_config is None:
            raise ValueError("AHAConfig.classifier_config is required: use AHAExplainer.from_classifier(classifier)")
        self.classifier = _classifier_class(config.classifier_config)(config.classifier_config)
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
        fusion = config.fusion_channels or int(min(256, max(16, max(self.feature_spec.hidden_sizes) // 4)))
        self.decoder = AHADecoder(
            in_channels=[self.feature_spec.hidden_sizes[i] for i in self.feature_layers],
            num_labels=self.num_labels,
            fusion_channels=fusion,
            head_channels=config.head_channels or max(8, fusion // 4),
            class_dim=config.class_embedding_dim or fusion,
            image_channels=self.classifier_spec.num_channels,
        )
        self.objective = RankingObjective(config, patch_size=self.classifier_spec.patch_size)
        self.target_checkpointing = False
        self.post_init()
        if not config.includes_target:  # a decoder-only save: the target is attached after loading, not missing
            self._keys_to_ignore_on_load_missing.add("^" + re.escape(TARGET_PREFIX))
        self._freeze_frozen_models()

    # ----------------------------------------------------------------------------------------- set-up
    @property
    def num_labels(self) -> int:
        return self.config.classifier_config.num_labels

    def _frozen_models(self) -> list[nn.Module]:
        return [m for m in (self.classifier, self.feature_backbone) if m is not None]

    def _freeze_frozen_models(self) -> None:
        for model in self._frozen_models():
            model.requires_grad_(False)
            model.eval()

    def train(self, mode: bool = True):
        """Set the decoder's mode; the frozen classifier and feature backbone always stay in eval mode."""
        super().train(mode)
        for model in self._frozen_models():
            model.eval()
        return self

    def enable_target_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the frozen classifier's activations in the backward pass of the training loss.

        Training pushes ``num_fractions x terms x classes`` perturbed copies of every image through the
        classifier and backpropagates to the masks, so the classifier's activations dominate memory. With
        checkpointing on, each chunk of ``config.perturbation_batch_size`` perturbed images is recomputed
        in the backward pass (one extra classifier forward per chunk), so memory holds one chunk's
        activations at a time. Works for any classifier; test-time refinement always uses it.
        """
        self.target_checkpointing = enabled

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
        cls, classifier: PreTrainedModel, image_processor=None, feature_backbone: PreTrainedModel | None = None, **config_overrides
    ) -> "AHAExplainer":
        """Wrap an in-memory HF image classifier (frozen) with a freshly initialised decoder.

        Args:
            classifier: a `transformers` image classification model of a supported family (ViT, DeiT,
                BEiT, DINOv2, Swin, ...).
            image_processor: the classifier's image processor; its normalisation enables the "black" reference,
                and it is saved next to the explainer (the pipeline and `aha explain` read it from there).
            feature_backbone: optional separate frozen HF vision model whose hidden states feed the decoder.
            **config_overrides: any [`AHAConfig`] field.
        """
        if not isinstance(classifier, PreTrainedModel) or not hasattr(classifier.config, "num_labels"):
            raise ValueError(
                f"expected a transformers image classification model, got {type(classifier).__name__}"
            )
        BackboneSpec.from_model(classifier)
        if "ForImageClassification" not in type(classifier).__name__:
            raise ValueError(
                f"expected a transformers *ForImageClassification model, got {type(classifier).__name__}"
            )
        config_overrides.setdefault("classifier_name_or_path", classifier.name_or_path or None)
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
        config = AHAConfig(classifier_config=classifier_config, feature_backbone_config=backbone_config, **config_overrides)
        explainer = cls(config)
        explainer.image_processor = image_processor
        explainer.classifier.load_state_dict(classifier.state_dict())
        if feature_backbone is not None:
            explainer.feature_backbone.load_state_dict(feature_backbone.state_dict())
        return explainer.to(device=classifier.device, dtype=classifier.dtype)

    def attribute(
        self,
        pixel_values: torch.Tensor,
        target: torch.Tensor | int | None = None,
        refine_steps: int = 0,
        refine_lr: float | None = None,
    ) -> torch.Tensor:
        """The verb every attribution method shares (:mod:`aha.baselines`): :meth:`explain`'s maps as float32
        (B, H, W), so AHA and the comparison methods are called alike (``get_attributor("aha", ...)``)."""
        return self.explain(pixel_values, target, refine_steps=refine_steps, refine_lr=refine_lr).float()

    # --------------------------------------------------------------------------------- save / load
    def save_pretrained(self, save_directory, *args, include_target: bool = True, state_dict: dict | None = None, **kwargs):
        """[`~PreTrainedModel.save_pretrained`], self-contained by default or, like a PEFT adapter, without the target.

        Either way the config records the fingerprint of the target's weights (`classifier_fingerprint`, see
        [`~aha.fingerprint.weights_fingerprint`]) next to its reference (`classifier_name_or_path`,
        `classifier_revision`, set in [`from_classifier`] or on `self.config`), and the classifier's image
        processor, when the explainer knows it (`self.image_processor`), is saved next to the weights.

        Args:
            include_target (`bool`, defaults to `True`):
                `False` leaves the frozen target's weights (every `classifier.*` key) out of the weights file:
                the decoder (and the separate feature backbone, if any, which is kept) is saved alone, and
                [`from_pretrained`] loads the target from its reference, or takes it as `classifier=`, and
                checks its fingerprint.
            state_dict (`dict`, *optional*): the weights to save instead of `self.state_dict()`.

        Raises:
            NotADirectoryError: `save_directory` is a file (transformers would only log an error and return).
        """
        if os.path.isfile(save_directory):
            raise NotADirectoryError(f"save_pretrained: {save_directory} is a file; pass a folder to save the explainer in")
        self.config.classifier_fingerprint = weights_fingerprint(self.classifier)
        if not include_target:
            state_dict = self.state_dict() if state_dict is None else state_dict
            state_dict = {key: value for key, value in state_dict.items() if not key.startswith(TARGET_PREFIX)}
        self.config.includes_target = include_target
        try:
            super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        finally:
            self.config.includes_target = True  # in memory the explainer always holds its target
        if self.image_processor is not None and kwargs.get("is_main_process", True):
            self.image_processor.save_pretrained(save_directory)

    def push_to_hub(self, repo_id: str, *, include_target: bool = True, eval_results=None, **kwargs):
        """Upload the explainer, its image processor and an aha model card to the Hub in one commit.

        Args:
            include_target (`bool`, defaults to `True`): `False` uploads a decoder-only save (see
                [`save_pretrained`]); the card says which and how to load it.
            eval_results (`list[huggingface_hub.EvalResult]`, *optional*): measured faithfulness for the card,
                e.g. [`aha.hub.faithfulness_results`] of an evaluation.
            **kwargs: `license`, `commit_message`, `private`, `token`, `revision`, `create_pr` (see
                [`aha.hub.push_explainer`]).
        """
        from .hub import push_explainer  # aha.hub imports this module

        return push_explainer(self, repo_id, include_target=include_target, eval_results=eval_results, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, classifier: PreTrainedModel | None = None, **kwargs):
        """[`~PreTrainedModel.from_pretrained`] from safetensors only, for self-contained and decoder-only saves.

        A decoder-only save (`save_pretrained(include_target=False)`) gets its target from `classifier`, or
        else from the recorded `classifier_name_or_path` / `classifier_revision` (local paths work offline;
        `cache_dir`, `force_download`, `local_files_only`, `proxies` and `token` apply to that load too).

        Args:
            classifier (`PreTrainedModel`, *optional*):
                The target to explain. Its weights must have the recorded fingerprint (with a self-contained
                save too, where this only checks them); they are copied into the explainer.

        The target's weights are always checked against the recorded fingerprint (one hash of the target's
        weights per load): the stored ones of a self-contained save, the referenced or passed ones otherwise.
        They are checked in their stored dtype; a `dtype` argument casts the explainer after the check.

        Raises:
            FileNotFoundError: a local path that does not exist, or a folder without `config.json`.
            ValueError: the folder holds another kind of model; a weights file is damaged or truncated (naming
                the file); the checkpoint lacks some of the explainer's own weights (never randomly
                initialised); or the target's weights are not the ones the explainer was saved with.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("use_safetensors", True)
        dtype = kwargs.pop("dtype", None) or kwargs.pop("torch_dtype", None)
        hub_kwargs = {key: kwargs[key] for key in _TARGET_HUB_KWARGS if key in kwargs}
        config = kwargs.get("config")
        if dtype is not None and isinstance(config, PreTrainedConfig):
            # AutoModel folds a requested dtype into the config it passes: load the stored one, cast after the check
            stored = cls.config_class.get_config_dict(
                pretrained_model_name_or_path, **hub_kwargs, revision=kwargs.get("revision")
            )[0].get("dtype")
            config.dtype = getattr(torch, stored) if isinstance(stored, str) else stored
        if kwargs.get("config") is None:
            _check_explainer_folder(pretrained_model_name_or_path, **hub_kwargs, revision=kwargs.get("revision"))
        with naming_damaged_files(pretrained_model_name_or_path, **hub_kwargs, revision=kwargs.get("revision")):
            model, loading_info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        if loading_info["missing_keys"]:
            missing = sorted(loading_info["missing_keys"])
            raise ValueError(f"{pretrained_model_name_or_path} lacks {len(missing)} weights of the explainer: {missing[:5]}")
        model._freeze_frozen_models()  # loading replaces the parameters that __init__ froze
        if classifier is None and not model.config.includes_target:
            classifier = _load_target(model.config, **hub_kwargs)
        if classifier is not None:
            model._attach_target(classifier)
        else:
            model._check_stored_target()
        if dtype is not None and dtype != "auto":
            model.to(dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        model.image_processor = _saved_image_processor(
            pretrained_model_name_or_path, **{k: kwargs[k] for k in (*_TARGET_HUB_KWARGS, "revision", "subfolder") if k in kwargs}
        )
        return (model, loading_info) if output_loading_info else model

    def _check_stored_target(self) -> None:
        """Check the target stored in a self-contained save against the fingerprint its config records.

        Raises:
            ValueError: the fingerprints differ (the weights file or config.json was changed after saving).
        """
        expected = self.config.classifier_fingerprint
        if expected is None:
            logger.warning(f"{self.name_or_path} records no classifier_fingerprint: its target cannot be checked")
            return
        got = weights_fingerprint(self.classifier)
        if got != expected:
            raise ValueError(
                f"the target classifier stored in {self.name_or_path} has the weights fingerprint {short_fingerprint(got)}, "
                f"but its config.json records {short_fingerprint(expected)}: the weights file or config.json was "
                "changed after saving, so this is not the classifier the explainer was trained for"
            )

    def _attach_target(self, classifier: PreTrainedModel) -> None:
        """Copy ``classifier``'s weights into the frozen target after checking them against the recorded fingerprint.

        Raises:
            ValueError: the fingerprints differ (a checkpoint for a different target model), naming both
                fingerprints and the recorded reference.
        """
        expected = self.config.classifier_fingerprint
        got = weights_fingerprint(classifier)
        if got != expected:
            raise ValueError(
                f"this explainer ({self.name_or_path or 'in memory'}) was saved for a different target model: the "
                f"target's weights fingerprint is {short_fingerprint(got)} ({classifier.name_or_path or type(classifier).__name__}), "
                f"expected {short_fingerprint(expected)} (recorded reference: {_describe_reference(self.config)})"
            )
        self.classifier.load_state_dict(classifier.state_dict())
        self.config.includes_target = True

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
        r"""Explain ``pixel_values`` in one forward pass; with ``labels``, also compute the training loss.

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
        batch_size, _, height, width = pixel_values.shape
        logits, features = self._features(pixel_values)
        target = logits.argmax(-1) if target is None else check_classes(target, batch_size, self.num_labels, "target", self.device)
        if labels is None:
            attributions = self.decoder(features, target, pixel_values)
            return AHAExplainerOutput(attributions=attributions, logits=logits, target=target)

        labels = check_classes(labels, batch_size, self.num_labels, "labels", self.device)
        classes = [target]
        if self.config.second_class:
            runner_up = logits.topk(2, dim=-1).indices[:, 1]
            classes.append(torch.where(logits.argmax(-1) == labels, runner_up, labels))
        repeats = len(classes)
        classes = torch.cat(classes)
        maps = self.decoder([f.repeat(repeats, 1, 1, 1) for f in features], classes, pixel_values.repeat(repeats, 1, 1, 1))
        terms = self.objective(
            self.classifier,
            pixel_values.repeat(repeats, 1, 1, 1),
            maps,
            classes,
            tau=self.config.tau_end if tau is None else tau,
            grid=self.objective.sample_grid(height, width, generator),
            reference=self.objective.sample_reference(generator),
            checkpoint=self.target_checkpointing,
            clean_logits=logits.repeat(repeats, 1),
            generator=generator,
        )
        return AHAExplainerOutput(
            loss=terms.loss.mean(), attributions=maps[:batch_size], logits=logits, target=target, objective=terms
        )

    # -------------------------------------------------------------------------------------- explain
    def refinement_objective(self, pixel_values: torch.Tensor, maps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The deterministic objective test-time refinement minimises, per image: (B,).

        No Gumbel noise, tau = ``config.tau_end``, the finest training grid, the "mean" reference; the
        classifier's activations are recomputed chunk by chunk in the backward pass (bounded memory).
        """
        height, width = pixel_values.shape[-2:]
        return self.objective(
            self.classifier,
            pixel_values,
            maps,
            target,
            tau=self.config.tau_end,
            grid=self.objective.grid_range(height, width)[1],
            reference="mean",
            noise=False,
            checkpoint=True,
        ).loss

    def explain(
        self,
        pixel_values: torch.Tensor,
        target: torch.Tensor | int | None = None,
        refine_steps: int = 0,
        refine_lr: float | None = None,
    ) -> torch.Tensor:
        """Importance maps (B, H, W) at the input resolution, for `target` (default: the predicted class).

        With ``refine_steps > 0``, each map is standardised per image (ranking unchanged) and refined by
        that many Adam steps (learning rate ``refine_lr``, default ``config.refine_lr``) on
        :meth:`refinement_objective`, all images at once; the refined maps are returned.
        """
        check_number("refine_steps", refine_steps, integer=True, minimum=0)
        check_number("refine_lr", refine_lr, above=0, optional=True)
        with torch.no_grad():
            output = self(pixel_values, target=target)
        maps = output.attributions
        if refine_steps == 0:
            return maps
        flat = maps.flatten(1)
        maps = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)).view_as(maps)
        maps = maps.detach().requires_grad_(True)
        optimizer = torch.optim.Adam([maps], lr=self.config.refine_lr if refine_lr is None else refine_lr)
        with torch.enable_grad():
            for _ in range(refine_steps):
                loss = self.refinement_objective(pixel_values, maps, output.target).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return maps.detach()
