"""Tiny datasets, processors and argument lists shared by the data and training tests."""

import datasets
import numpy as np
import torch
import transformers as T
from conftest import IMAGE_SIZE, NUM_LABELS, make_classifier
from PIL import Image


def random_images(n: int, seed: int = 0, size: int = 40) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def image_dataset(n: int = 16, seed: int = 0) -> datasets.Dataset:
    """``n`` random RGB images with labels ``i % NUM_LABELS`` and an ``id`` column."""
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(num_classes=NUM_LABELS),
            "id": datasets.Value("int64"),
        }
    )
    return datasets.Dataset.from_dict(
        {"image": random_images(n, seed), "label": [i % NUM_LABELS for i in range(n)], "id": list(range(n))},
        features=features,
    )


def processor() -> T.ViTImageProcessorPil:
    return T.ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def sharp_classifier() -> torch.nn.Module:
    """A tiny random ViT whose head is scaled up, so that the objective has something to learn."""
    return make_classifier("vit", head_scale=30)


def train_argv(output_dir, *extra) -> list[str]:
    return [
        "--output_dir",
        str(output_dir),
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "3e-3",
        "--num_warmup_steps",
        "0",
        "--seed",
        "0",
        *map(str, extra),
    ]
