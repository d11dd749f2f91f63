"""Loading checkpoints strictly: safetensors only, no weight left randomly initialised, and errors that name
the missing folder or the damaged file instead of a repo-id, network or deserialisation error."""

from __future__ import annotations

import contextlib
import os

from safetensors import SafetensorError
from transformers import PreTrainedModel
from transformers.utils import cached_file

from .safe_files import DamagedFileError, safetensors_header


def looks_local(name_or_path: str) -> bool:
    """Whether ``name_or_path`` can only be a local path: a Hub id is ``name`` or ``namespace/name``, never
    absolute, never starting with ``.`` or ``~``, never with two slashes or a backslash."""
    path = str(name_or_path)
    return os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1 or "\\" in path


def check_local_path(name_or_path, what: str) -> None:
    """Raise FileNotFoundError naming ``what`` (e.g. ``"--model_name_or_path"``) when ``name_or_path`` is
    meant to be a local path (see :func:`looks_local`) that does not exist."""
    if looks_local(name_or_path) and not os.path.exists(os.path.expanduser(str(name_or_path))):
        raise FileNotFoundError(f"{what}: no such local folder {name_or_path}")


@contextlib.contextmanager
def naming_damaged_files(name_or_path, **hub_kwargs):
    """Turn a safetensors deserialisation error raised inside into a DamagedFileError naming the file.

    The folder is ``name_or_path`` itself or, for a Hub id, its snapshot in the local cache (``hub_kwargs``:
    ``cache_dir``, ``revision``, ...); each of its safetensors files has its header and size checked.
    """
    try:
        yield
    except SafetensorError as error:
        folder = str(name_or_path)
        if not os.path.isdir(folder):
            options = {key: value for key, value in hub_kwargs.items() if key in ("cache_dir", "revision", "token")}
            config = cached_file(folder, "config.json", local_files_only=True,
                                 _raise_exceptions_for_missing_entries=False, **options)
            folder = os.path.dirname(config) if config else None
        for name in sorted(os.listdir(folder)) if folder else ():
            if name.endswith(".safetensors"):
                safetensors_header(os.path.join(folder, name))  # raises a DamagedFileError naming the file
        raise DamagedFileError(f"a weights file of {name_or_path} is damaged ({error})") from error


def load_classifier(cls, name_or_path, what: str, **kwargs) -> PreTrainedModel:
    """``cls.from_pretrained(name_or_path, **kwargs)`` from safetensors only, refusing a checkpoint that lacks
    some of the model's weights (a classifier without its trained head, such as a ``ViTModel`` checkpoint
    loaded as ``ViTForImageClassification``, would explain a random head).

    Args:
        cls: a transformers image classification class, or ``AutoModelForImageClassification``.
        what: how the caller calls this checkpoint in messages (e.g. ``"--model_name_or_path"``).
    Raises:
        FileNotFoundError: a local path that does not exist. DamagedFileError: an unreadable weights file.
        ValueError: weights missing from the checkpoint.
    """
    check_local_path(name_or_path, what)
    with naming_damaged_files(name_or_path, **kwargs):
        model, info = cls.from_pretrained(name_or_path, use_safetensors=True, output_loading_info=True, **kwargs)
    missing = sorted(info["missing_keys"])
    if missing:
        raise ValueError(
            f"{what} {name_or_path} lacks {len(missing)} weights of {type(model).__name__} ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}): they would be randomly initialised. A checkpoint without a trained "
            "classification head (e.g. a ViTModel saved without one) cannot be explained; pass an image "
            "classifier's checkpoint"
        )
    return model
