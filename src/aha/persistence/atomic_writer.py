"""The one atomic writer: every file the library writes reaches its name through :func:`_move_into_place`.

A file is written under a temporary name beside its destination, flushed to disk, and moved onto the destination
with ``os.replace`` (:func:`atomic_path`, and :func:`write_file`, :func:`write_text`, :func:`write_json`,
:func:`write_safetensors` on top of it): a reader never sees half a file, and a symbolic link at the destination is
replaced by the new file, never followed, so nothing outside the folder being written is ever changed. A writer
that saves a whole folder (``save_pretrained``) writes into :func:`staged_folder`, whose files are moved into place
the same way one by one; a folder that several processes write into (a training checkpoint) is written under a
temporary name (:func:`fresh_staging_folder`) and renamed onto its name in one step (:func:`publish_folder`).
Folders the library writes into are made by :func:`make_folder`, which refuses symbolic links. Files are read back
by :mod:`aha.persistence.safe_readers`.
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
from safetensors.torch import save_file


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
        _move_into_place(temporary, path)
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
            _move_into_place(source, os.path.join(folder, name))
        for name in os.listdir(folder):
            target = os.path.join(folder, name)
            if _SHARD.fullmatch(name) and name not in names and (os.path.isfile(target) or os.path.islink(target)):
                os.unlink(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def staging_name(final: str) -> str:
    """``.tmp-<name>`` beside the folder ``final``: where :func:`fresh_staging_folder` stages it."""
    return os.path.join(os.path.dirname(final), f".tmp-{os.path.basename(final)}")


def fresh_staging_folder(final: str, root: str) -> str:
    """Make the new, empty folder :func:`staging_name` of ``final`` (inside ``root``, the folder a user chose) and
    return it: a folder that several processes write into before :func:`publish_folder` gives it its name. A
    leftover of an earlier, interrupted write is removed first; a symbolic link at either name is refused, never
    followed."""
    staging = staging_name(final)
    for folder in (staging, final):
        refuse_symlink(folder)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    return make_folder(staging, root=root)


def publish_folder(staging: str, final: str) -> None:
    """Give the complete folder ``staging`` (from :func:`fresh_staging_folder`) its name ``final`` in one rename,
    replacing a folder written there before (the same step saved again)."""
    if os.path.exists(final):
        shutil.rmtree(final)
    _move_into_place(staging, final)


def _move_into_place(source: str, destination: str) -> None:
    """The one step by which anything written reaches its name: a file is flushed to disk, then ``source`` is
    renamed onto ``destination`` (atomic within one file system; a link at ``destination`` is replaced)."""
    if os.path.isfile(source):
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
    os.replace(source, destination)


_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


def write_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """``tensors`` (moved to the CPU, made contiguous) as a safetensors file with string ``metadata``, through
    :func:`atomic_path`."""
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata={"format": "pt", **(metadata or {})})
