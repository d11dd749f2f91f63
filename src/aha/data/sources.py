"""Where training images come from: the Hub, a local image folder, a saved dataset, or memory.

Every loader returns ``datasets`` splits keyed by name ("train", optionally "validation"), each a
map-style ``Dataset`` or a streaming ``IterableDataset``. Nothing here decodes an image: loading reads
metadata (features, split sizes) only, so columns can be validated before any example is touched.
"""

from __future__ import annotations

import os

import datasets
from huggingface_hub.errors import GatedRepoError

IMAGENET_ID = "ILSVRC/imagenet-1k"
"""The default training set: ImageNet-1k on the Hub (gated: accept its terms on the dataset page and
log in with ``hf auth login``; the token is then picked up automatically)."""

AnyDataset = datasets.Dataset | datasets.IterableDataset


def load_hub_dataset(
    name: str, config_name: str | None = None, streaming: bool = False, token: str | bool | None = None
) -> dict[str, AnyDataset]:
    """All splits of a Hub dataset by id; ``streaming=True`` reads examples lazily over HTTP."""
    try:
        splits = datasets.load_dataset(name, config_name, streaming=streaming, token=token)
    except GatedRepoError as error:
        raise PermissionError(
            f"{name} is gated: accept its terms at https://huggingface.co/datasets/{name} and log in with "
            "`hf auth login` (or pass --hub_token)"
        ) from error
    return dict(splits)


def load_image_folders(train_dir: str | None, validation_dir: str | None) -> dict[str, datasets.Dataset]:
    """Local folders laid out as ``<dir>/<class name>/<image>`` (the ``imagefolder`` builder)."""
    data_files = {}
    if train_dir is not None:
        data_files["train"] = os.path.join(train_dir, "**")
    if validation_dir is not None:
        data_files["validation"] = os.path.join(validation_dir, "**")
    return dict(datasets.load_dataset("imagefolder", data_files=data_files))


def load_saved_dataset(path: str) -> dict[str, datasets.Dataset]:
    """A dataset written with ``save_to_disk``: a ``DatasetDict`` (its splits) or one ``Dataset`` (as "train")."""
    loaded = datasets.load_from_disk(path)
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def split_off_validation(train: datasets.Dataset, fraction: float, seed: int) -> dict[str, datasets.Dataset]:
    """Hold out a random ``fraction`` of a map-style train split as "validation"."""
    if isinstance(train, datasets.IterableDataset):
        raise ValueError("--train_val_split needs a map-style dataset; a stream has no random access to split")
    parts = train.train_test_split(test_size=fraction, seed=seed)
    return {"train": parts["train"], "validation": parts["test"]}
