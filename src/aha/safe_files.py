"""Reading and writing files without pickle (safetensors for tensors, JSON for the rest), and the one atomic
writer every file the library writes goes through.

Every reader raises an error that names the file it could not read, so that a damaged, truncated or
foreign file (a pickle put where a safetensors or JSON file belongs, for instance) is reported as such,
never executed and never mistaken for something else.

Every writer writes a temporary file beside the destination and moves it into place with ``os.replace``
(:func:`atomic_path`): a reader never sees half a file, and a symbolic link at the destination is replaced by
the new file, never followed, so nothing outside the folder being written is ever changed. Folders the library
writes into are made by :func:`make_folder`, which refuses symbolic links.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .validation import all_finite


class DamagedFileError(ValueError):
    """A file that exists but cannot be read as what it should be (damaged, truncated or foreign)."""


class SymlinkError(ValueError):
    """A symbolic link where the library writes: it is never followed."""


def refuse_symlink(path: str) -> None:
    """Raise :class:`SymlinkError` if ``path`` is a symbolic link."""
    if os.path.islink(path):
        raise SymlinkError(
            f"{path} is a symbolic link (to {os.readlink(path)}): aha writes only inside the folder it was given and "
            "never follows a link there; remove the link or choose another folder"
        )


def make_folder(path: str, root: str | None = None) -> str:
    """Create the folder ``path`` (with its parents) and return it. ``path`` and every folder between ``root`` and it
    must be real folders: a symbolic link among them raises :class:`SymlinkError` (``root`` itself, the folder a
    user chose, may be a link)."""
    path = os.path.normpath(path)
    if root is not None:
        root = os.path.normpath(root)
        relative = os.path.relpath(path, root)
        if relative.startswith(os.pardir):
            raise SymlinkError(f"{path} is outside {root}")
        current = root
        for part in [] if relative == os.curdir else relative.split(os.sep):
            current = os.path.join(current, part)
            refuse_symlink(current)
    else:
        refuse_symlink(path)
    os.makedirs(path, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary file name beside ``path`` to write to; when the block succeeds, the file is flushed to disk and
    moved onto ``path`` in one step (a symbolic link at ``path`` is replaced, never followed); when it fails, the
    temporary file is removed and ``path`` is untouched."""
    folder = os.path.dirname(path) or os.curdir
    if os.path.isdir(path) and not os.path.islink(path):
        raise IsADirectoryError(f"{path} is a folder; expected a file name to write")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(handle)
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_file(path: str, write: Callable[[BinaryIO], None]) -> None:
    """``write(handle)`` into a binary file through :func:`atomic_path` (``image.save(handle, format="PNG")``,
    ``np.save(handle, array)``, ``figure.savefig(handle, format="png")``)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        write(handle)


def write_text(path: str, text: str) -> None:
    """``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_json(path: str, value, indent: int | None = 2) -> None:
    """``value`` as JSON (``indent=None``: compact) through :func:`atomic_path`; NaN and infinities are refused
    (they are not JSON)."""
    write_text(path, json.dumps(value, indent=indent, sort_keys=True, allow_nan=False))


@contextlib.contextmanager
def staged_folder(folder: str) -> Iterator[str]:
    """A new, empty folder inside ``folder`` (created if needed; the folder a user chose may itself be a link) for a
    writer that saves a whole folder (``save_pretrained``); when the
    block succeeds, each file written there is moved into ``folder`` by ``os.replace`` (symbolic links at those names
    are replaced, never followed), and weight shards of an earlier save that the new one no longer has are removed,
    as ``save_pretrained`` does. The staging folder is removed either way."""
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(dir=folder, prefix=".tmp-save-")
    try:
        yield staging
        names = sorted(os.listdir(staging))
        for name in names:
            source = os.path.join(staging, name)
            if not os.path.isfile(source) or os.path.islink(source):
                raise ValueError(f"{source}: expected only files in a saved folder")
            _fsync(source)
            os.replace(source, os.path.join(folder, name))
        for name in os.listdir(folder):
            target = os.path.join(folder, name)
            if _SHARD.fullmatch(name) and name not in names and (os.path.isfile(target) or os.path.islink(target)):
                os.unlink(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


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


def write_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """``tensors`` (moved to the CPU, made contiguous) as a safetensors file with string ``metadata``, through
    :func:`atomic_path`."""
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata={"format": "pt", **(metadata or {})})


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
