"""Loading checkpoints strictly: safetensors only, no weight left randomly initialised, no NaN or infinite weight,
no JSON file that asks to run custom code, and errors that name the missing folder or the damaged file instead of a
repo-id, network or deserialisation error: the classifier to explain (:func:`load_classifier_and_processor`, what
``aha train`` and ``aha evaluate`` load from ``--model_name_or_path``) and a saved explainer's files
(:mod:`aha.persistence.explainer_saving`)."""

from __future__ import annotations

import contextlib
import os

import torch
from safetensors import SafetensorError
from transformers import AutoImageProcessor, AutoModelForImageClassification, PreTrainedModel
from transformers.utils import IMAGE_PROCESSOR_NAME, cached_file

from ..validation import all_finite
from .safe_readers import DamagedFileError, read_json, safetensors_header


#: ``cached_file`` arguments that say where and how a Hub file is found
_HUB_FILE_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "token", "revision", "subfolder")


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


def read_model_json(name_or_path, filename: str, required: bool = False, **hub_kwargs) -> tuple[dict, str] | None:
    """``(content, path)`` of the JSON file ``filename`` (e.g. ``config.json``, ``preprocessor_config.json``) of the
    model at ``name_or_path`` (a local folder, or a Hub id through the cache; ``hub_kwargs``: ``revision``,
    ``token``, ...), or None when the model has no such file (unless ``required``: then transformers' error, which
    tells a missing file from a network failure).

    Raises:
        DamagedFileError: the file is not a JSON object (named).
        ValueError: the file has an ``auto_map`` (at any depth): it asks transformers to run custom code from the
            repository, which this library never does (transformers would stop to ask on the terminal).
    """
    optional = (
        {}
        if required
        else dict(_raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    )
    path = cached_file(
        str(name_or_path),
        filename,
        **optional,
        **{key: value for key, value in hub_kwargs.items() if key in _HUB_FILE_KWARGS},
    )
    if path is None:
        return None
    content = read_json(path)
    if not isinstance(content, dict):
        raise DamagedFileError(f"{path} must hold a JSON object, got {type(content).__name__}")
    where = _auto_map(content)
    if where is not None:
        raise ValueError(
            f"{path} sets {where}: it asks transformers to run custom code shipped with the model, which aha-explain "
            "never runs; use a model whose classes are part of transformers, or remove auto_map from the file"
        )
    return content, path


def _auto_map(value, prefix: str = "") -> str | None:
    """The key path of an ``auto_map`` set in a JSON value (``"auto_map"``, ``"classifier_config.auto_map"``), or None."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else key
        if key == "auto_map" and item:
            return path
        found = _auto_map(item, path)
        if found is not None:
            return found
    return None


def check_finite_weights(model: torch.nn.Module, name_or_path, skip: str = "") -> None:
    """Raise a ValueError naming the weights files of ``name_or_path`` and the first tensor of ``model`` that holds
    NaN or infinite values (keys starting with ``skip`` are left out: weights checked elsewhere)."""
    for key, tensor in model.state_dict().items():
        if skip and key.startswith(skip):
            continue
        if not all_finite(tensor):
            raise ValueError(
                f"{weights_files(name_or_path)}: {key} holds NaN or infinite values; the weights file is damaged "
                "or was edited (a model with such weights gives NaN maps), so it is not loaded"
            )


def weights_files(name_or_path) -> str:
    """The safetensors files of a local folder, for messages (``name_or_path`` itself otherwise)."""
    folder = str(name_or_path)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors")) if os.path.isdir(folder) else []
    return ", ".join(os.path.join(folder, name) for name in names) or f"the weights of {folder}"


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
            config = cached_file(
                folder, "config.json", local_files_only=True, _raise_exceptions_for_missing_entries=False, **options
            )
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
        ValueError: ``auto_map`` in config.json (see :func:`read_model_json`); NaN or infinite weights; weights
            missing from the checkpoint.
    """
    check_local_path(name_or_path, what)
    read_model_json(name_or_path, "config.json", **kwargs)  # refuses auto_map before transformers reads it
    with naming_damaged_files(name_or_path, **kwargs):
        model, info = cls.from_pretrained(name_or_path, use_safetensors=True, output_loading_info=True, **kwargs)
    check_finite_weights(model, name_or_path)
    missing = sorted(info["missing_keys"])
    if missing:
        raise ValueError(
            f"{what} {name_or_path} lacks {len(missing)} weights of {type(model).__name__} ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}): they would be randomly initialised. A checkpoint without a trained "
            "classification head (e.g. a ViTModel saved without one) cannot be explained; pass an image "
            "classifier's checkpoint"
        )
    return model


def load_classifier_and_processor(model_name_or_path: str, token: str | None = None):
    """The classifier (``AutoModelForImageClassification``, from safetensors, every weight in the checkpoint)
    and its ``AutoImageProcessor``. Raises when the checkpoint lacks weights (e.g. a headless model), holds NaN or
    infinite ones, or when config.json or preprocessor_config.json sets ``auto_map`` (custom code, never run)."""
    classifier = load_classifier(
        AutoModelForImageClassification, model_name_or_path, "--model_name_or_path", token=token
    )
    read_model_json(model_name_or_path, IMAGE_PROCESSOR_NAME, token=token)
    image_processor = AutoImageProcessor.from_pretrained(model_name_or_path, token=token)
    return classifier, image_processor
