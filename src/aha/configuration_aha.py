"""Configuration of the AHA explainer."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

REFERENCE_CHOICES = ("black", "mean", "blur")


class AHAConfig(PreTrainedConfig):
    r"""Configuration of an [`AHAExplainer`]: the frozen target classifier it explains, the decoder that
    turns the target's features into a per-pixel map, and the ranking objective it is trained with.

    Args:
        classifier_config (`PreTrainedConfig` or `dict`):
            Config of the frozen target image classifier (its `architectures[0]` names the class).
        classifier_name_or_path (`str`, *optional*):
            Where the target's weights come from (Hub id or local path): a decoder-only save loads its target
            from there. Default in [`AHAExplainer.from_classifier`]: the classifier's `name_or_path`.
        classifier_revision (`str`, *optional*):
            Hub revision (branch, tag or commit) of `classifier_name_or_path`.
        classifier_fingerprint (`str`, *optional*):
            `"sha256:<hex>"` digest of the target's weights (see [`aha.fingerprint.weights_fingerprint`]),
            recorded by `save_pretrained` and checked when a decoder-only save is loaded.
        includes_target (`bool`):
            Whether the saved weights include the frozen target (`save_pretrained(include_target=...)`).
        feature_backbone_config (`PreTrainedConfig` or `dict`, *optional*):
            Config of a separate frozen feature backbone (any supported HF vision model). When set, the
            decoder reads this model's hidden states instead of the classifier's.
        feature_layers (`list[int]`, *optional*):
            Indices into the feature model's `hidden_states` to decode from. Default: 4 depths spread
            evenly for plain ViTs, the last entry of each stage for hierarchical models.
        fusion_channels (`int`, *optional*):
            Decoder width. Default: a quarter of the feature model's widest hidden size, in [16, 256],
            so the decoder stays light next to the backbone at every scale.
        head_channels (`int`, *optional*):
            Width of the last, full-resolution convolution. Default: `max(8, fusion_channels // 4)`.
        class_embedding_dim (`int`, *optional*):
            Size of the learned target-class embedding joined to every token. Default: `fusion_channels`.
        image_mean, image_std (`list[float]`, *optional*):
            The target's input normalisation (from its image processor); needed for the "black" reference.
        references (`list[str]`, *optional*):
            References drawn at random each training step, among "black", "mean", "blur". Default: all
            three, or "mean" and "blur" when the normalisation (needed for "black") is unknown.
        grid_cell_patches (`list[float]`):
            Range of training-grid cell sides, in patches of the target. Each step draws a grid side G
            uniformly so that cells span this range (the reference's 7..28 at 224 px / 16 px patches is
            cells of 2 down to 0.5 patches).
        num_fractions (`int`): points of the soft deletion/insertion curves (fractions linspace(0, 1)).
        mask_sigma (`float`): std in pixels of the Gaussian that smooths upsampled cell masks.
        tau_start, tau_end (`float`): Gumbel-Sinkhorn temperature, annealed linearly over training.
        sinkhorn_iterations (`int`): log-domain Sinkhorn iterations.
        deletion_weight (`float`): weight of the deletion AUC (most important cells removed first; low is good).
        lrf_insertion_weight (`float`): weight of 1 - AUC of least-relevant-first deletion (the reference's
            "insertion").
        rise_insertion_weight (`float`): weight of 1 - AUC of RISE-style insertion (most important cells
            inserted first into the blurred image).
        peak_weight (`float`): weight of the peak penalty `mean(relu(h - avgpool(h))^2)`.
        peak_window (`int`): side in pixels of that average pool at 224 px; scaled with the image side.
        second_class (`bool`): train on a second class per image (runner-up if top-1 is right, else the label).
        perturbation_batch_size (`int`): perturbed images per forward of the target (chunk size).
        refine_lr (`float`): Adam learning rate of test-time refinement, on per-image standardised maps.
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
    includes_target: bool = True
    feature_backbone_config: dict | PreTrainedConfig | None = None
    feature_layers: list[int] | None = None
    fusion_channels: int | None = None
    head_channels: int | None = None
    class_embedding_dim: int | None = None
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    references: list[str] | tuple[str, ...] | None = None
    grid_cell_patches: list[float] | tuple[float, float] = (0.5, 2.0)
    num_fractions: int = 16
    mask_sigma: float = 1.0
    tau_start: float = 1.0
    tau_end: float = 0.3
    sinkhorn_iterations: int = 30
    deletion_weight: float = 1.0
    lrf_insertion_weight: float = 1.0
    rise_insertion_weight: float = 0.0
    peak_weight: float = 0.0025
    peak_window: int = 15
    second_class: bool = True
    perturbation_batch_size: int = 64
    refine_lr: float = 0.05
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        normalisation_known = self.image_mean is not None and self.image_std is not None
        if self.references is None:
            self.references = [r for r in REFERENCE_CHOICES if r != "black" or normalisation_known]
        self.references = list(self.references)
        self.grid_cell_patches = list(self.grid_cell_patches)
        unknown = sorted(set(self.references) - set(REFERENCE_CHOICES))
        if unknown or not self.references:
            raise ValueError(f"references must be a non-empty subset of {REFERENCE_CHOICES}, got {self.references}")
        if "black" in self.references and not normalisation_known:
            raise ValueError(
                'the "black" reference needs image_mean and image_std (pass the image processor to '
                "AHAExplainer.from_classifier, or set references without \"black\")"
            )
        low, high = self.grid_cell_patches
        if not 0 < low <= high:
            raise ValueError(f"grid_cell_patches must be [low, high] with 0 < low <= high, got {self.grid_cell_patches}")
        if not self.tau_start > 0 or not self.tau_end > 0:
            raise ValueError(f"tau_start and tau_end must be > 0, got {self.tau_start}, {self.tau_end}")
        if self.num_fractions < 2:
            raise ValueError(f"num_fractions must be >= 2, got {self.num_fractions}")
