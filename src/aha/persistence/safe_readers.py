"""Reading files without pickle: safetensors for tensors, JSON for the rest.

Every reader raises an error that names the file it could not read, so that a damaged, truncated or
foreign file (a pickle put where a safetensors or JSON file belongs, for instance) is reported as such,
never executed and never mistaken for something else. Files are written by :mod:`aha.persistence.atomic_writer`.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import SafetensorError, safe_open

from ..validation import all_finite


class DamagedFileError(ValueError):
    """A file that exists but cannot be read as what it should be (damaged, truncated or foreign)."""


def read_json(path: str):
    """The JSON value in ``path``. Raises FileNotFoundError, or DamagedFileError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        raise DamagedFileError(
            f"{path} is not a readable JSON file ({reason}): it is damaged or was replaced"
        ) from None


def safetensors_header(path: str) -> tuple[dict[str, tuple[torch.dtype, tuple[int, ...]]], dict[str, str]]:
    """``({key: (dtype, shape)}, metadata)`` of a safetensors file, reading its header only (the header and
    the file size are checked, so a truncated file is caught). Raises FileNotFoundError or DamagedFileError."""
    try:
        with safe_open(path, "pt") as handle:
            shapes = {}
            for key in handle.keys():
                view = handle.get_slice(key)
                shapes[key] = (_DTYPES.get(view.get_dtype()), tuple(view.get_shape()))
            return shapes, handle.metadata() or {}
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError) as error:
        raise _damaged(path, error) from error


def read_safetensors(path: str, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file. Raises FileNotFoundError, or DamagedFileError naming the file
    (and the tensor, when one holds NaN or infinite values)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no file {path}")
    try:
        with safe_open(path, "pt", device=str(device)) as handle:
            tensors, metadata = {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise _damaged(path, error) from error
    for key, tensor in tensors.items():
        if not all_finite(tensor):
            raise DamagedFileError(f"{path}: {key} holds NaN or infinite values: the file is damaged or was edited")
    return tensors, metadata


def _damaged(path: str, error: Exception) -> DamagedFileError:
    return DamagedFileError(
        f"{path} is not a readable safetensors file ({error}): it is damaged, truncated or not a safetensors file"
    )


_DTYPES = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}
