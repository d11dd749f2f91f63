"""A compute budget for the explainer's decoder.

The decoder should cost little next to the classifier it explains, at every scale. The default decoder (the
"guided" pixel head) costs 0.7-7% of the benchmark ViTs' FLOPs with its widths following the classifier's hidden
size alone; the "conv" pixel head, whose full-resolution image branch cost as much as a small classifier's whole
forward, is what the budget was made for. With ``AHAConfig.decoder_flops_budget = b``, the decoder's widths (and
the conv head's image-branch stride) are chosen so that the decoder costs at most ``b`` times the classifier's
forward, in FLOPs and in parameters, at the classifier's configured image size.

FLOPs are what ``torch.utils.flop_counter.FlopCounterMode`` counts (matrix products, convolutions, attention;
not normalisations, activations or resizing), on copies of the models built on the ``meta`` device from their
configs: nothing is allocated and nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .backbones import BackboneSpec


#: the smallest widths the budget may choose
MIN_FUSION_CHANNELS = 8
MIN_HEAD_CHANNELS = 4


@dataclass(frozen=True)
class DecoderWidths:
    """The sizes of an :class:`~aha.modeling_aha.AHADecoder` that the config leaves open."""

    fusion_channels: int
    head_channels: int | None  # the "conv" pixel head's; None for the "guided" one
    class_dim: int
    image_stride: int | None  # likewise
    num_blocks: int


def widths_of(decoder: nn.Module) -> DecoderWidths:
    """The widths an :class:`~aha.modeling_aha.AHADecoder` was built with."""
    conv = decoder.pixel_head == "conv"
    return DecoderWidths(
        decoder.projection.out_channels,
        decoder.to_head.out_channels if conv else None,
        decoder.class_embedding.embedding_dim,
        decoder.image_stride if conv else None,
        len(decoder.blocks),
    )


@dataclass(frozen=True)
class Cost:
    """FLOPs of one forward of one image, and parameters."""

    flops: int
    parameters: int

    def fraction_of(self, other: "Cost") -> tuple[float, float]:
        return self.flops / other.flops, self.parameters / other.parameters


def count_flops(module: nn.Module, *args, **kwargs) -> int:
    """FLOPs of ``module(*args, **kwargs)`` as :class:`~torch.utils.flop_counter.FlopCounterMode` counts them."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return counter.get_total_flops()


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classifier_cost(classifier_class: type[nn.Module], classifier_config, spec: BackboneSpec) -> Cost:
    """Cost of one forward of one image at the classifier's configured size (built on the meta device)."""
    with torch.device("meta"):
        classifier = classifier_class(classifier_config).eval()
    pixels = torch.zeros(1, spec.num_channels, *spec.image_size, device="meta")
    return Cost(count_flops(classifier, pixel_values=pixels), _parameters(classifier))


def default_widths(config, feature_spec: BackboneSpec) -> DecoderWidths:
    """The widths without a budget: a quarter of the feature model's widest hidden size in [16, 256]; no residual
    blocks with the "guided" pixel head, two with the "conv" one, whose head is a quarter of the fusion width (at
    least 8) with its image branch at full resolution; fields set in ``config`` win. ``config.pixel_head`` must be
    resolved (not None)."""
    fusion = config.fusion_channels or int(min(256, max(16, max(feature_spec.hidden_sizes) // 4)))
    conv = config.pixel_head == "conv"
    return DecoderWidths(
        fusion_channels=fusion,
        head_channels=(config.head_channels or max(8, fusion // 4)) if conv else None,
        class_dim=config.class_embedding_dim or fusion,
        image_stride=(config.image_branch_stride or 1) if conv else None,
        num_blocks=(2 if conv else 0) if config.decoder_blocks is None else config.decoder_blocks,
    )


class DecoderBudget:
    """Counts candidate decoders for one explainer and picks the widths that fit ``budget``.

    Args:
        make_decoder: builds a decoder from :class:`DecoderWidths` (keyword arguments of its ``__init__``).
        config: the :class:`~aha.AHAConfig`.
        classifier_class: the classifier's class (built from ``config.classifier_config`` to be counted).
        classifier_spec, feature_spec: how the classifier and the feature model are read.
        feature_layers: indices into the feature model's ``hidden_states`` the decoder reads.
    """

    def __init__(
        self,
        make_decoder,
        config,
        classifier_class,
        classifier_spec: BackboneSpec,
        feature_spec: BackboneSpec,
        feature_layers,
    ):
        self.make_decoder = make_decoder
        self.config = config
        self.classifier_spec = classifier_spec
        self.feature_spec = feature_spec
        self.feature_layers = tuple(feature_layers)
        self.classifier = classifier_cost(classifier_class, config.classifier_config, classifier_spec)

    @classmethod
    def of(cls, explainer) -> "DecoderBudget":
        """The budget counter of an :class:`~aha.AHAExplainer` (from ``__init__`` on, once its specs are set)."""
        return cls(
            explainer._make_decoder,
            explainer.config,
            type(explainer.classifier),
            explainer.classifier_spec,
            explainer.feature_spec,
            explainer.feature_layers,
        )

    def decoder_cost(self, widths: DecoderWidths) -> Cost:
        """Cost of the decoder with ``widths`` on one image at the classifier's configured size."""
        height, width = self.classifier_spec.image_size
        with torch.device("meta"):
            decoder = self.make_decoder(widths)
        features = [
            torch.zeros(
                1, self.feature_spec.hidden_sizes[i], *self.feature_spec.grid_size(i, height, width), device="meta"
            )
            for i in self.feature_layers
        ]
        classes = torch.zeros(1, dtype=torch.long, device="meta")
        pixels = torch.zeros(1, self.classifier_spec.num_channels, height, width, device="meta")
        return Cost(count_flops(decoder, features, classes, pixels), _parameters(decoder))

    def fits(self, cost: Cost, budget: float) -> bool:
        return cost.flops <= budget * self.classifier.flops and cost.parameters <= budget * self.classifier.parameters

    def choose(self, budget: float) -> DecoderWidths:
        """The preferred widths whose decoder fits ``budget``.

        Preference, most important first: the finest image branch (stride 1, then the classifier's patch size
        halved repeatedly, finest first: 1, 2, 4, 8, 16 for 16 px patches; the image branch is what lets a map follow edges inside a patch, and at small sizes its
        full-resolution convolutions are the decoder's dearest part), then the most residual blocks (2, 1, 0),
        then the widest fusion width (the default rule's, halved down to 8; the class embedding follows it), then
        the widest head, which is also the image branch's width (the default rule's, halved down to 4). With the
        "guided" pixel head, which has no image branch, only the fusion width is chosen (the blocks follow the
        default rule). Fields set in the config are kept as they are.

        Raises:
            ValueError: even the cheapest decoder the config allows does not fit, naming both costs.
        """
        config, default = self.config, default_widths(self.config, self.feature_spec)
        conv = config.pixel_head == "conv"
        strides = (
            [default.image_stride]
            if config.image_branch_stride or not conv
            else _halvings(self.classifier_spec.patch_size, 1)[::-1]
        )
        blocks = [default.num_blocks] if config.decoder_blocks is not None or not conv else [2, 1, 0]
        fusions = (
            [default.fusion_channels]
            if config.fusion_channels
            else _halvings(default.fusion_channels, MIN_FUSION_CHANNELS)
        )
        heads = (
            [default.head_channels]
            if config.head_channels or not conv
            else _halvings(default.head_channels, MIN_HEAD_CHANNELS)
        )

        def widths(stride, num_blocks, fusion, head):
            class_dim = config.class_embedding_dim or fusion
            return DecoderWidths(fusion, head, class_dim, stride, num_blocks)

        for stride in strides:
            for num_blocks in blocks:
                if not self.fits(self.decoder_cost(widths(stride, num_blocks, fusions[-1], heads[-1])), budget):
                    continue
                fusion = next(
                    f
                    for f in fusions
                    if self.fits(self.decoder_cost(widths(stride, num_blocks, f, heads[-1])), budget)
                )
                head = next(
                    h for h in heads if self.fits(self.decoder_cost(widths(stride, num_blocks, fusion, h)), budget)
                )
                return widths(stride, num_blocks, fusion, head)
        cheapest = widths(strides[-1], blocks[-1], fusions[-1], heads[-1])
        flops, parameters = self.decoder_cost(cheapest).fraction_of(self.classifier)
        raise ValueError(
            f"decoder_flops_budget={budget} is too small for this classifier: the cheapest decoder the config allows "
            f"({cheapest}) costs {flops:.1%} of the classifier's FLOPs and {parameters:.1%} of its parameters; raise "
            "the budget, or leave fusion_channels, head_channels, class_embedding_dim, image_branch_stride and "
            "decoder_blocks unset so that the budget can choose them"
        )


def _halvings(start: int, floor: int) -> list[int]:
    """``start``, ``start // 2``, ... down to ``floor`` (included; ``start`` itself when below it)."""
    values = [start]
    while values[-1] // 2 >= floor:
        values.append(values[-1] // 2)
    return values


def decoder_widths(explainer) -> DecoderWidths:
    """The decoder widths of an :class:`~aha.AHAExplainer` being built: the default rule, or with
    ``config.decoder_flops_budget`` set, :meth:`DecoderBudget.choose`'s, which are then written into the config's
    width fields, so that a save reloads the same decoder whatever a later version would choose."""
    config = explainer.config
    if config.decoder_flops_budget is None:
        return default_widths(config, explainer.feature_spec)
    widths = DecoderBudget.of(explainer).choose(config.decoder_flops_budget)
    config.fusion_channels, config.head_channels = widths.fusion_channels, widths.head_channels
    config.class_embedding_dim, config.image_branch_stride = widths.class_dim, widths.image_stride
    config.decoder_blocks = widths.num_blocks
    return widths
