"""The benchmarks' classifiers, trained from scratch on a world's data: a small ``ViTForImageClassification``
(:func:`classifier_config`), or a small ``ResNetForImageClassification`` (:func:`cnn_classifier_config`).

A ViT trained from a random init on a few thousand small images can sit near chance for a long time. An
auxiliary per-patch loss gets it out quickly: a linear probe on the last layer's patch tokens predicts
the object's class where the patch shows the object and "background" elsewhere (from the dataset's
masks). A convolutional classifier gets the same loss on the positions of its last feature map
(``hidden_states[-1]``). The probe is used during training only: the saved model is a plain classifier.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import (
    AutoModelForImageClassification,
    PreTrainedConfig,
    PreTrainedModel,
    ResNetConfig,
    ViTConfig,
    ViTImageProcessorPil,
)

from ..modeling.backbones import BackboneSpec


def classifier_config(
    class_names: tuple[str, ...],
    image_size: int = 64,
    patch_size: int = 8,
    hidden_size: int = 128,
    num_layers: int = 4,
) -> ViTConfig:
    """The benchmark ViT for ``class_names`` (at the defaults: 64 px, patch 8, 4 layers of width 128, 0.56 M
    parameters)."""
    if len(class_names) < 2:
        raise ValueError(f"a classifier needs at least 2 class names, got {class_names!r}")
    return ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden_size,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)},
    )


def cnn_classifier_config(
    class_names: tuple[str, ...],
    image_size: int = 64,
    hidden_sizes: tuple[int, ...] = (32, 64, 128),
    depths: tuple[int, ...] = (2, 2, 2),
) -> ResNetConfig:
    """The benchmark CNN for ``class_names``: a ResNet of basic blocks (at the defaults: a stem of 32 channels and three
    stages of widths 32, 64, 128 with two blocks each, 0.70 M parameters, the ViT's 0.56 M's order). Its feature maps
    have strides 4, 8 and 16 (the stem's 4, then 2 per stage after the first): at 64 px the last one, Grad-CAM's, is
    4 x 4, and AHA's decoder works on the stride-8 grid, as on the ViT's patches. ``image_size`` must hold at least
    one cell of the last feature map."""
    if len(class_names) < 2:
        raise ValueError(f"a classifier needs at least 2 class names, got {class_names!r}")
    if len(hidden_sizes) != len(depths) or not depths:
        raise ValueError(f"hidden_sizes and depths must have one entry per stage, got {hidden_sizes} and {depths}")
    stride = 4 * 2 ** (len(depths) - 1)
    if image_size < stride:
        raise ValueError(f"{len(depths)} stages need images of at least {stride} px, got image_size={image_size}")
    return ResNetConfig(
        embedding_size=hidden_sizes[0],
        hidden_sizes=list(hidden_sizes),
        depths=list(depths),
        layer_type="basic",
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)},
    )


def image_processor_for(train_split, image_size: int) -> ViTImageProcessorPil:
    """A ViT processor at ``image_size`` normalised by the train split's per-channel pixel mean and std, so
    the "mean" reference is the dataset's mean colour."""
    pixels = np.stack([np.asarray(image, dtype=np.float64) / 255.0 for image in train_split["image"]])
    return ViTImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=pixels.mean(axis=(0, 1, 2)).tolist(),
        image_std=pixels.std(axis=(0, 1, 2)).tolist(),
    )


def tensors_of(split, processor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A split as (N, 3, H, W) normalised pixel values, (N,) labels and (N, H, W) bool object masks."""
    pixel_values = processor(list(split["image"]), return_tensors="pt")["pixel_values"]
    labels = torch.tensor(split["label"])
    masks = torch.from_numpy(np.stack([np.asarray(mask, dtype=bool) for mask in split["mask"]]))
    return pixel_values, labels, masks


def patch_targets(masks: torch.Tensor, labels: torch.Tensor, patch_size: int, background: int) -> torch.Tensor:
    """Per-patch classes for the auxiliary loss: the image's label where at least a quarter of the patch is
    object, ``background`` elsewhere. (N, H, W) bool, (N,) -> (N, h * w) long."""
    share = F.avg_pool2d(masks[:, None].float(), patch_size).flatten(1)
    return torch.where(share >= 0.25, labels[:, None], torch.full_like(share, background, dtype=torch.long))


def pixel_patch_targets(pixel_classes: torch.Tensor, num_classes: int, patch_size: int) -> torch.Tensor:
    """Per-patch classes from per-pixel ones ((N, H, W) long, -1 for none): the class covering the largest
    share of the patch where that share is at least a quarter, ``num_classes`` (background) elsewhere.
    -> (N, h * w) long."""
    best_share = torch.zeros(
        len(pixel_classes), (pixel_classes.shape[1] // patch_size) * (pixel_classes.shape[2] // patch_size)
    )
    targets = torch.full(best_share.shape, num_classes, dtype=torch.long)
    for index in range(num_classes):
        share = F.avg_pool2d((pixel_classes == index)[:, None].float(), patch_size).flatten(1)
        wins = (share >= 0.25) & (share > best_share)
        targets[wins], best_share = index, torch.maximum(best_share, share)
    return targets


def last_positions(model: PreTrainedModel, last_hidden_state: torch.Tensor) -> torch.Tensor:
    """The per-patch loss's features (B, h * w, C), row-major over the grid: a convolutional model's last feature
    map (B, C, h, w), or a ViT's last tokens (B, 1 + h * w, C) without the CLS token, after its final LayerNorm."""
    if last_hidden_state.ndim == 4:
        return last_hidden_state.flatten(2).transpose(1, 2)
    return model.vit.layernorm(last_hidden_state[:, 1:])


@torch.no_grad()
def accuracy(model: PreTrainedModel, pixel_values: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(pixel_values=chunk).logits.argmax(-1) for chunk in pixel_values.split(256)])
    return (predictions == labels).float().mean().item()


def train_classifier(
    train_split,
    processor: ViTImageProcessorPil,
    config: PreTrainedConfig,
    epochs: int = 12,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    patch_loss_weight: float = 1.0,
    dihedral: bool = True,
    seed: int = 0,
    progress: bool = True,
    patch_evidence: tuple[np.ndarray, int] | None = None,
) -> PreTrainedModel:
    """Train the benchmark classifier of ``config`` (:func:`classifier_config`, :func:`cnn_classifier_config`, or
    another image classifier whose hidden states :mod:`aha.modeling.backbones` reads) from a random init (AdamW, one-cycle schedule, the auxiliary per-patch loss,
    and random flips and transposition when ``dihedral``: when they keep an image's class); returns it in
    eval mode. ``patch_evidence`` (:meth:`aha.demo.canvas.World.patch_evidence`: per-pixel classes (N, H, W),
    -1 for none, and their number) sets what the per-patch loss predicts; ``None``: the image's label on its
    mask. The per-patch loss reads the last layer's positions: a ViT's patch tokens after its final LayerNorm, a
    convolutional model's last feature map; a patch is the pixels of one position (``patch_loss_weight`` 0: no
    per-patch loss)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = AutoModelForImageClassification.from_config(config)
    spec = BackboneSpec.from_model(model)
    patch_size, width = spec.strides[-1], spec.hidden_sizes[-1]
    images, labels, masks = tensors_of(train_split, processor)
    if images.shape[-1] % patch_size or images.shape[-2] % patch_size:
        raise ValueError(f"images of {tuple(images.shape[-2:])} px are no whole grid of {patch_size} px positions")
    probe, targets = patch_probe(masks, labels, patch_size, width, config.num_labels, patch_evidence)
    grid_h, grid_w = images.shape[-2] // patch_size, images.shape[-1] // patch_size
    parameters = list(model.parameters()) + list(probe.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.05)
    steps = epochs * (len(labels) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps, pct_start=0.15)
    model.train()
    bar = tqdm(total=steps, desc="classifier", disable=not progress)
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator)[: steps // epochs * batch_size].split(
            batch_size
        ):
            x, patches = images[batch], targets[batch].view(-1, grid_h, grid_w)
            if dihedral:
                x, patches = random_dihedral(x, patches, generator)
            loss = classifier_loss(model, probe, x, labels[batch], patches, patch_loss_weight)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def patch_probe(
    masks: torch.Tensor,
    labels: torch.Tensor,
    patch_size: int,
    width: int,
    num_labels: int,
    patch_evidence: tuple[np.ndarray, int] | None,
) -> tuple[torch.nn.Linear, torch.Tensor]:
    """The per-patch loss's linear probe (``width`` features -> its classes and background) and its (N, h * w)
    long targets: from ``patch_evidence`` (per-pixel classes (N, H, W), -1 for none, and their number) when
    given, else each image's label on its (N, H, W) bool mask (:func:`patch_targets`)."""
    if patch_evidence is None:
        probe = torch.nn.Linear(width, num_labels + 1)
        return probe, patch_targets(masks, labels, patch_size, background=num_labels)
    pixel_classes, num_classes = patch_evidence
    if pixel_classes.shape != masks.shape or num_classes < 1:
        raise ValueError(
            f"patch_evidence must be per-pixel classes of shape {tuple(masks.shape)} and their "
            f"number (>= 1), got {pixel_classes.shape} and {num_classes}"
        )
    probe = torch.nn.Linear(width, num_classes + 1)
    return probe, pixel_patch_targets(torch.from_numpy(pixel_classes), num_classes, patch_size)


def random_dihedral(
    x: torch.Tensor, patches: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random element of the dihedral group (a horizontal flip, a vertical flip, a transposition, each drawn
    by ``generator``), applied alike to (B, C, H, W) images ``x`` and their (B, h, w) patch classes."""
    flip_x, flip_y, transpose = torch.randint(0, 2, (3,), generator=generator).tolist()
    if flip_x:
        x, patches = x.flip(3), patches.flip(2)
    if flip_y:
        x, patches = x.flip(2), patches.flip(1)
    if transpose:
        x, patches = x.transpose(2, 3), patches.transpose(1, 2)
    return x, patches


def classifier_loss(
    model: PreTrainedModel,
    probe: torch.nn.Linear,
    x: torch.Tensor,
    labels: torch.Tensor,
    patches: torch.Tensor,
    patch_loss_weight: float,
) -> torch.Tensor:
    """Cross-entropy of the (B, C, H, W) images' logits against their (B,) ``labels``, plus ``patch_loss_weight``
    times the probe's cross-entropy on the last layer's positions against the (B, h, w) ``patches``."""
    outputs = model(pixel_values=x, output_hidden_states=True)
    loss = F.cross_entropy(outputs.logits, labels)
    if patch_loss_weight:
        positions = last_positions(model, outputs.hidden_states[-1])
        loss = loss + patch_loss_weight * F.cross_entropy(probe(positions).flatten(0, 1), patches.flatten())
    return loss
