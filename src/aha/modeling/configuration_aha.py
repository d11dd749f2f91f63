"""Configuration of the AHA explainer."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re

from transformers import AutoConfig, GenerationConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

from ..persistence.fingerprints import FINGERPRINTED_PARTS
from ..ranking.perturbation import check_reference
from ..validation import MAX_FRACTIONS, check_bool, check_number


logger = logging.get_logger(__name__)

# Range rules of numeric fields: name -> keyword arguments of `aha.validation.check_number` (None is accepted
# where the default is None). Every other field of AHAConfig is checked by the type of its default (bool, int,
# finite float, str) or, for lists, by `_LIST_RULES`; a field with none of these fails `test_every_field_is_checked`.
_NUMBER_RULES = {
    "fusion_channels": dict(integer=True, minimum=1),
    "num_fractions": dict(integer=True, minimum=3, maximum=MAX_FRACTIONS),
    "sinkhorn_iterations": dict(integer=True, minimum=1),
    "peak_window": dict(integer=True, minimum=1),
    "perturbation_batch_size": dict(integer=True, minimum=1),
    "mask_sigma": dict(minimum=0),
    "guide_blur_sigma": dict(minimum=0),
    "tau_start": dict(above=0),
    "tau_end": dict(above=0),
    "deletion_weight": dict(minimum=0),
    "lrf_insertion_weight": dict(minimum=0),
    "rise_insertion_weight": dict(minimum=0),
    "peak_weight": dict(minimum=0),
    "refine_lr": dict(above=0),
    "initializer_range": dict(above=0),
}
# Fields recorded by `from_classifier` and `save_pretrained` from the classifier, its image processor and the
# separate feature backbone: never set by hand.
RECORDED_FIELDS = frozenset(
    {
        "classifier_config",
        "classifier_name_or_path",
        "classifier_revision",
        "classifier_fingerprint",
        "includes_classifier",
        "fingerprints",
        "feature_backbone_config",
        "image_mean",
        "image_std",
    }
)
# List fields: name -> (check_number keyword arguments of each element, allowed lengths or None for any >= 1)
_LIST_RULES = {
    "feature_layers": (dict(integer=True, minimum=0), None),
    "image_mean": ({}, None),
    "image_std": (dict(above=0), None),
    "grid_cell_patches": (dict(above=0), (2,)),
    "references": (None, None),  # checked against aha.ranking.perturbation.REFERENCES below
}
# Fields of earlier versions that this one no longer has: name -> (whether a saved value still describes the
# explainer this version builds, given the config; what became of the field). A config holding such a value loads,
# with a warning naming the field; one holding another value describes a decoder this version does not build and is
# refused (its weights would not fit, or would be dropped in silence).
_REMOVED_FIELDS = {
    "pixel_head": (
        lambda value, config: value in (None, "guided"),
        'the "conv" pixel head was removed: the decoder always has the "guided" one',
    ),
    "head_channels": (lambda value, config: value is None, 'it set the width of the removed "conv" pixel head'),
    "image_branch_stride": (lambda value, config: value is None, 'it set a part of the removed "conv" pixel head'),
    "decoder_blocks": (
        lambda value, config: value is None or value == 0,
        "the decoder has no residual units on the token grid",
    ),
    "class_embedding_dim": (
        lambda value, config: value is None or value == config.fusion_channels,
        "the class embedding is fusion_channels wide",
    ),
    "decoder_flops_budget": (
        lambda value, config: True,
        "the default decoder costs under 8% of every supported classifier; the width a budget chose was recorded in "
        "fusion_channels",
    ),
}
# Fields added after explainers were first saved: name -> the value that gives the explainer a version without the
# field built. A config.json written by `save_pretrained` (it records `transformers_version`) that lacks such a field
# loads with this value, not with today's default, so a saved explainer keeps its maps across versions.
_ADDED_FIELDS = {"guide_blur_sigma": 0.0}
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
# Keys besides the fields that transformers itself passes to a config (from config.json, from_dict, BC names)
_TRANSFORMERS_KEYS = {
    "model_type",
    "transformers_version",
    "torch_dtype",
    "num_labels",
    "name_or_path",
    "_name_or_path",
    "_commit_hash",
    "output_attentions",
    "attn_implementation",
    "experts_implementation",
    "per_layer_config",
    "auto_map",
    "custom_pipelines",
    "rope_scaling",
    "rope_theta",
}


class AHAConfig(PreTrainedConfig):
    r"""Configuration of an [`AHAExplainer`]: the frozen classifier it explains, the decoder that
    turns the classifier's features into a per-pixel map, and the ranking objective it is trained with.

    Args:
        classifier_config (`PreTrainedConfig` or `dict`):
            Config of the frozen image classifier (its `architectures[0]` names the class).
        classifier_name_or_path (`str`, *optional*):
            Where the classifier's weights come from (Hub id or local path): a decoder-only save loads its classifier
            from there. Default in [`AHAExplainer.from_classifier`]: the classifier's `name_or_path`.
        classifier_revision (`str`, *optional*):
            Hub revision (branch, tag or commit) of `classifier_name_or_path`.
        classifier_fingerprint (`str`, *optional*):
            `"sha256:<hex>"` digest of the classifier's weights (see [`aha.persistence.fingerprints.weights_fingerprint`]),
            recorded by `save_pretrained` and checked whenever a save is loaded.
        fingerprints (`dict`, *optional*):
            `"sha256:<hex>"` digests of everything else a save holds that decides a map (see
            [`aha.persistence.fingerprints.saved_fingerprints`]): `"weights"` (the explainer's own weights), `"classifier_config"`,
            `"explainer_config"` and `"image_processor"` (None when saved without one). Recorded by `save_pretrained`;
            `from_pretrained` refuses a save whose files no longer match them.
        includes_classifier (`bool`):
            Whether the saved weights include the frozen classifier (`save_pretrained(include_classifier=...)`).
        feature_backbone_config (`PreTrainedConfig` or `dict`, *optional*):
            Config of a separate frozen feature backbone (any supported HF vision model). When set, the
            decoder reads this model's hidden states instead of the classifier's.
        feature_layers (`list[int]`, *optional*):
            Indices into the feature model's `hidden_states` to decode from. Default: 4 depths spread
            evenly for plain ViTs; for hierarchical models the deepest entry of each of the coarsest strides: the 4
            stages of Swin (strides 4, 8, 16, 32 px), strides 8, 16, 32 px of convolutional ones (ResNet, ConvNeXt,
            ...; see [`aha.modeling.backbones.BackboneSpec.default_feature_layers`]).
        guide_blur_sigma (`float`):
            Std in pixels of the Gaussian blur of the image that the guided pixel head's colour term reads
            ([`~aha.modeling.modeling_aha.AHADecoder`], step 4), in training and at inference; 0 reads the image itself.
            The objective ranks cells of several pixels, so it leaves the head's colour coefficients free to copy a
            background's fine texture into the map; a blurred guide keeps the edges of objects and drops that texture.
            Default 1.5 (chosen on the benchmark suite's macro average: benchmarks/RESULTS.md, "The texture imprint");
            a save written before this field existed loads with 0, what it was trained with.
        fusion_channels (`int`, *optional*):
            Width of the decoder ([`~aha.modeling.modeling_aha.AHADecoder`]: its token projection and class embedding).
            Default: a quarter of the feature model's widest hidden size, in [16, 256], so that the decoder costs
            under 8% of the classifier at every scale, but for the guide's blur
            ([`aha.modeling.decoder_cost.guide_cost`]: 12 S + 22 FLOPs per pixel at side S, 4.2% of the 64 px benchmark
            ViT, 1.5% of ViT-S/16, 23% of MobileNetV2); on AHA Shapes twice that width tied the default
            (benchmarks/RESULTS.md).
        image_mean, image_std (`list[float]`, *optional*):
            The classifier's input normalisation (from its image processor); needed for the "black" reference.
        references (`list[str]`):
            References drawn at random each training step, among "black", "mean", "blur". Default: "mean"
            alone. The paper draws among all three; on AHA Shapes that mix trained slower and ended worse under
            every evaluation reference, black and blur included (benchmarks/RESULTS.md, ablations).
        grid_cell_patches (`list[float]`):
            Range of training-grid cell sides, in patches of the classifier. Each step draws a grid side G
            uniformly so that cells span this range (the paper's 7..28 at 224 px / 16 px patches is
            cells of 2 down to 0.5 patches).
        num_fractions (`int`): points of the soft deletion/insertion curves (fractions linspace(0, 1)); the two end
            points cost nothing. Default 8 (the paper: 16, which costs twice the classifier passes per step and, over the
            benchmark suite's three worlds and 3 seeds, tied 8 on deletion and lost localisation: benchmarks/RESULTS.md).
        mask_sigma (`float`): std in pixels of the Gaussian that smooths upsampled cell masks.
        tau_start, tau_end (`float`): Gumbel-Sinkhorn temperature, annealed linearly over training.
        sinkhorn_iterations (`int`): Sinkhorn iterations of the soft ranking.
        deletion_weight (`float`): weight of the deletion AUC (most important cells removed first; low is good).
        lrf_insertion_weight (`float`): weight of 1 - AUC of least-relevant-first deletion (the paper's
            "insertion").
        rise_insertion_weight (`float`): weight of 1 - AUC of RISE-style insertion (most important cells
            inserted first into the blurred image).
        peak_weight (`float`): weight of the peak penalty `mean(relu(h - avgpool(h))^2)`.
        peak_window (`int`): side in pixels of that average pool at 224 px; scaled with the image side.
        second_class (`bool`): also train on a second class per image (the runner-up if the prediction is right,
            else the label), as the paper does, so that maps of classes other than the predicted one are trained
            too; it doubles the classifier passes per step. Default False: the predicted class only.
        perturbation_batch_size (`int`): perturbed images per forward of the classifier (chunk size).
        refine_lr (`float`): Adam learning rate of test-time refinement, on per-image standardised maps (Adam
            moves every pixel by about this much per step, so a few steps need a large rate).
    """

    model_type = "aha"
    sub_configs_defaults = {
        "classifier_config": SubConfigSpec(config_class=AutoConfig, model_type="vit", optional=True),
        "feature_backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="dinov2", optional=True),
    }

    classifier_config: dict | PreTrainedConfig | None = None
    classifier_name_or_path: str | None = None
    classifier_revision: str | None = None
    classifier_fingerprint: str | None = None
    fingerprints: dict | None = None
    includes_classifier: bool = True
    feature_backbone_config: dict | PreTrainedConfig | None = None
    feature_layers: list[int] | None = None
    fusion_channels: int | None = None
    guide_blur_sigma: float = 1.5
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    references: list[str] | tuple[str, ...] = ("mean",)
    grid_cell_patches: list[float] | tuple[float, float] = (0.5, 2.0)
    num_fractions: int = 8
    mask_sigma: float = 1.0
    tau_start: float = 1.0
    tau_end: float = 0.3
    sinkhorn_iterations: int = 30
    deletion_weight: float = 1.0
    lrf_insertion_weight: float = 1.0
    rise_insertion_weight: float = 0.0
    peak_weight: float = 0.0025
    peak_window: int = 15
    second_class: bool = False
    perturbation_batch_size: int = 64
    refine_lr: float = 0.3
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self._drop_removed_fields(kwargs)
        self._check_keys(kwargs)
        super().__post_init__(**kwargs)
        self._check_fields()
        normalisation = (
            (self.image_mean, self.image_std) if self.image_mean is not None and self.image_std is not None else None
        )
        self.references = list(self.references)
        self.grid_cell_patches = list(self.grid_cell_patches)
        for kind in self.references:
            check_reference(kind, normalisation, 'the "black" reference of AHAConfig.references')
        low, high = self.grid_cell_patches
        if not low <= high:
            raise ValueError(
                f"grid_cell_patches must be [low, high] with 0 < low <= high, got {self.grid_cell_patches}"
            )
        if not (self.deletion_weight or self.lrf_insertion_weight or self.rise_insertion_weight):
            raise ValueError(
                "deletion_weight, lrf_insertion_weight and rise_insertion_weight are all 0: at least one must be > 0 "
                "for the objective to have a term"
            )

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> AHAConfig:
        """[`PreTrainedConfig.from_dict`], where a config written by `save_pretrained` before a field existed gets
        the value that describes the explainer it saved (:data:`_ADDED_FIELDS`) instead of today's default."""
        if "transformers_version" in config_dict:
            config_dict = {**_ADDED_FIELDS, **config_dict}
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def own_fields(cls) -> dict:
        """The fields AHAConfig adds to PreTrainedConfig: name -> default."""
        names = cls.__dict__.get("__annotations__", {})
        return {f.name: f.default for f in dataclasses.fields(cls) if f.name in names}

    @classmethod
    def user_fields(cls) -> dict:
        """The fields a user sets (``aha train --explainer_config``, ``from_classifier(**overrides)``): name -> declared
        type. The others (:data:`RECORDED_FIELDS`) are recorded from the classifier and its image processor."""
        hints = inspect.get_annotations(cls, eval_str=True)
        return {name: hints[name] for name in cls.own_fields() if name not in RECORDED_FIELDS}

    def _drop_removed_fields(self, kwargs: dict) -> None:
        """Take the fields of earlier versions (:data:`_REMOVED_FIELDS`) out of ``kwargs``: with a logged warning
        naming them when their values describe the explainer this version builds (the guided pixel head, the
        default widths: every save of the benchmark suite), else a ValueError naming the field and what became of
        it."""
        removed = {name: kwargs.pop(name) for name in list(kwargs) if name in _REMOVED_FIELDS}
        refusal = (
            "this explainer cannot be loaded: train it again with this version, or load it with the version that "
            "saved it (benchmarks/RESULTS.md records what the removed decoders measured)"
        )
        if "head_channels" in removed and "pixel_head" not in removed:
            raise ValueError(
                "AHAConfig: head_channels without pixel_head: this config was written before the guided pixel head "
                'existed (aha-explain before commit 2b2d59e), whose decoder had the "conv" pixel head, since '
                f"removed; {refusal}"
            )
        for name, value in removed.items():
            still_holds, what_became = _REMOVED_FIELDS[name]
            if not still_holds(value, self):
                raise ValueError(
                    f"AHAConfig: {name}={value!r} describes a decoder that this version of aha-explain no longer "
                    f"builds ({what_became}); {refusal}"
                )
        if removed:
            logger.warning(
                f"AHAConfig: ignoring {', '.join(f'{name}={value!r}' for name, value in removed.items())}, fields of "
                "an earlier version of aha-explain that this one no longer has; they describe the decoder this "
                "version builds. Save the explainer again to drop them."
            )

    @classmethod
    def _check_keys(cls, kwargs: dict) -> None:
        """Refuse keys that are neither fields nor keys transformers passes (a misspelled option)."""
        known = _TRANSFORMERS_KEYS | set(GenerationConfig._get_default_generation_params())
        unknown = sorted(key for key in kwargs if key not in known and not hasattr(PreTrainedConfig, key))
        if unknown:
            valid = sorted(cls.own_fields())
            hints = {key: difflib.get_close_matches(key, valid, n=1) for key in unknown}
            hint = "; ".join(f"did you mean {match[0]!r} for {key!r}?" for key, match in hints.items() if match)
            raise ValueError(
                f"AHAConfig got unknown keys {unknown}{' (' + hint + ')' if hint else ''}; valid keys: {valid} "
                "(or a config written by a newer aha-explain)"
            )

    def _check_fields(self) -> None:
        """Check every field of AHAConfig: range rules, list rules, else by the type of its default."""
        for name, default in self.own_fields().items():
            value = getattr(self, name)
            if name in _NUMBER_RULES:
                check_number(name, value, optional=default is None, **_NUMBER_RULES[name])
            elif name in _LIST_RULES:
                element_rule, lengths = _LIST_RULES[name]
                if value is None and default is None:
                    continue
                if not isinstance(value, (list, tuple)) or not value or (lengths and len(value) not in lengths):
                    size = f"{' or '.join(map(str, lengths))} values" if lengths else "at least one value"
                    raise ValueError(f"{name} must be a list of {size}, got {value!r}")
                for index, element in enumerate(value if element_rule is not None else ()):
                    check_number(f"{name}[{index}]", element, **element_rule)
            elif name == "classifier_fingerprint":
                if value is not None and not (isinstance(value, str) and _FINGERPRINT.match(value)):
                    raise ValueError(
                        f'classifier_fingerprint must be "sha256:" and 64 hex digits, or None, got {value!r}'
                    )
            elif name == "fingerprints":
                _check_fingerprints(value)
            elif isinstance(default, bool):
                check_bool(name, value)
            elif isinstance(default, (int, float)):
                check_number(name, value, integer=isinstance(default, int))
            elif value is not None and not isinstance(value, (str, dict, PreTrainedConfig)):
                raise ValueError(f"{name} must be a string or None, got {value!r}")
        num_labels = getattr(self.classifier_config, "num_labels", None)
        if num_labels is not None and num_labels < 2:
            raise ValueError(
                f"classifier_config.num_labels is {num_labels}: a classifier with fewer than 2 classes cannot be "
                "explained (the softmax probability of its one class is always 1, so every deletion and insertion "
                "curve, and the objective, is constant)"
            )
        if self.image_mean is not None and self.image_std is not None and len(self.image_mean) != len(self.image_std):
            raise ValueError(
                f"image_mean and image_std must have one value per channel each, got {len(self.image_mean)} and "
                f"{len(self.image_std)} values"
            )


def _check_fingerprints(value) -> None:
    """``AHAConfig.fingerprints``: None, or one fingerprint per part of :data:`aha.persistence.fingerprints.FINGERPRINTED_PARTS`
    (``image_processor`` may be None)."""
    if value is None:
        return
    if not isinstance(value, dict) or set(value) != set(FINGERPRINTED_PARTS):
        raise ValueError(
            f"fingerprints must be None or a dict with the keys {sorted(FINGERPRINTED_PARTS)}, got {value!r:.200}"
        )
    for part, fingerprint in value.items():
        if not (isinstance(fingerprint, str) and _FINGERPRINT.match(fingerprint)) and not (
            part == "image_processor" and fingerprint is None
        ):
            raise ValueError(f'fingerprints[{part!r}] must be "sha256:" and 64 hex digits, got {fingerprint!r}')
