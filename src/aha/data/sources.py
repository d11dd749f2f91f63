"""Where training images come from: the Hub, a local image folder, a saved dataset, or memory.

Every loader returns ``datasets`` splits keyed by name ("train", optionally "validation"), each a
map-style ``Dataset`` or a streaming ``IterableDataset``. Nothing here decodes an image: loading reads
metadata (features, split sizes) only, so columns can be validated before any example is touched.
"""

from __future__ import annotations

import os

import datasets
from datasets.packaged_modules.folder_based_builder.folder_based_builder import FolderBasedBuilder
from datasets.packaged_modules.imagefolder.imagefolder import IMAGE_EXTENSIONS
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


def check_image_folder(path: str, flag: str) -> None:
    """Raise a FileNotFoundError or ValueError naming ``flag`` unless ``path`` is laid out as the
    ``imagefolder`` builder needs to infer labels: ``<path>/<class name>/<image>``, images at one depth in at
    least two class folders (or a ``metadata.csv/jsonl/parquet`` file that gives the labels)."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{flag}: no such folder {path}")
    class_names, depths, metadata = set(), set(), False
    for root, _, names in os.walk(path):
        metadata = metadata or any(name in FolderBasedBuilder.METADATA_FILENAMES for name in names)
        if any(os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS for name in names):
            class_names.add(os.path.relpath(root, path))
            depths.add(os.path.relpath(root, path).count(os.sep))
    layout = f"expected {path}/<class name>/<image> (.jpg, .png, ...)"
    if not class_names:
        raise ValueError(f"{flag} {path} holds no image files; {layout}")
    if not metadata and (len(class_names) < 2 or len(depths) > 1 or "." in class_names):
        raise ValueError(
            f"{flag} {path} holds images in {sorted(class_names)}: the class labels come from the names of the "
            f"folders that hold the images, so it needs at least two class folders side by side; {layout}"
        )


def load_image_folders(train_dir: str | None, validation_dir: str | None) -> dict[str, datasets.Dataset]:
    """Local folders laid out as ``<dir>/<class name>/<image>`` (the ``imagefolder`` builder), checked first
    (see :func:`check_image_folder`)."""
    data_files = {}
    for split, path, flag in (("train", train_dir, "--train_dir"), ("validation", validation_dir, "--validation_dir")):
        if path is not None:
            check_image_folder(path, flag)
            data_files[split] = os.path.join(path, "**")
    return dict(datasets.load_dataset("imagefolder", data_files=data_files))


def load_saved_dataset(path: str) -> dict[str, datasets.Dataset]:
    """A dataset written with ``save_to_disk``: a ``DatasetDict`` (its splits) or one ``Dataset`` (as "train")."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--dataset_path: no such folder {path}")
    loaded = datasets.load_from_disk(path)
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def load_splits(
    dataset_name: str | None,
    dataset_config_name: str | None = None,
    *,
    dataset_path: str | None = None,
    image_dirs: tuple[str | None, str | None] = (None, None),
    streaming: bool = False,
    token: str | bool | None = None,
) -> dict[str, AnyDataset]:
    """The splits of the one source given, in this order: the image folders ``image_dirs`` (train, validation;
    :func:`load_image_folders`), the saved dataset ``dataset_path``, else the Hub dataset ``dataset_name``."""
    if any(path is not None for path in image_dirs):
        return load_image_folders(*image_dirs)
    if dataset_path is not None:
        return load_saved_dataset(dataset_path)
    return load_hub_dataset(dataset_name, dataset_config_name, streaming=streaming, token=token)


def get_split(splits: dict[str, AnyDataset], name: str, flag: str) -> AnyDataset:
    """The split called ``name``, or a ValueError naming the splits there are and ``flag``, the option to change."""
    if name not in splits:
        raise ValueError(f"the dataset has no split {name!r} (splits: {sorted(splits)}); pass {flag}")
    return splits[name]


def split_off_validation(train: datasets.Dataset, fraction: float, seed: int) -> dict[str, datasets.Dataset]:
    """Hold out a random ``fraction`` of a map-style train split as "validation"."""
    if isinstance(train, datasets.IterableDataset):
        raise ValueError("--train_val_split needs a map-style dataset; a stream has no random access to split")
    parts = train.train_test_split(test_size=fraction, seed=seed)
    return {"train": parts["train"], "validation": parts["test"]}
