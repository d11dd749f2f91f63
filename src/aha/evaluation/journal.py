"""The run's journal: per-image result rows appended as batches finish, one JSON-lines file per process.

A batch's rows are appended in one write of whole lines, flushed and fsynced before the next batch starts, so a
killed run loses at most the batch it was scoring. The last line of a file that a kill tore (no newline, or not
JSON) is dropped on resume: :func:`repair` cuts it off before anything is appended after it. The per-image file of
the run (``per_image.jsonl``) is merged from the journals, sorted, with one row per (image, method).
"""

from __future__ import annotations

import glob
import json
import os

from ..persistence.atomic_writer import refuse_symlink, write_text


JOURNAL_DIR = "journal"


def journal_path(output_dir: str, process_index: int) -> str:
    return os.path.join(output_dir, JOURNAL_DIR, f"process-{process_index:05d}.jsonl")


def journal_files(output_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(output_dir, JOURNAL_DIR, "process-*.jsonl")))


def _complete_length(data: bytes) -> int:
    """The length of the leading run of whole, parseable lines of ``data``."""
    length = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            json.loads(line)
        except ValueError:
            break
        length += len(line)
    return length


def repair(path: str) -> int:
    """Cut ``path`` after its last whole line (what a kill in the middle of an append leaves behind); returns the
    number of bytes dropped."""
    refuse_symlink(path)
    with open(path, "rb+") as handle:
        data = handle.read()
        keep = _complete_length(data)
        if keep < len(data):
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    return len(data) - keep


def read_rows(paths: list[str]) -> list[dict]:
    """Every whole row of the journals ``paths`` (a torn last line is skipped)."""
    rows = []
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        rows.extend(json.loads(line) for line in data[: _complete_length(data)].splitlines())
    return rows


def append_rows(path: str, rows: list[dict]) -> None:
    """Append ``rows`` as whole JSON lines in one write, flushed and fsynced."""
    if not rows:
        return
    refuse_symlink(path)
    text = "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def finished_images(rows: list[dict], methods: list[str]) -> set[int]:
    """Indices of the images with a row for every method."""
    seen: dict[int, set[str]] = {}
    for row in rows:
        seen.setdefault(row["index"], set()).add(row["method"])
    return {index for index, done in seen.items() if done >= set(methods)}


def merged_rows(rows: list[dict], methods: list[str], limit: int | None) -> list[dict]:
    """One row per (image, method) for the finished images below ``limit`` (all when None), sorted by index and then
    by the order of ``methods``: the per-image file, the same however the work was split or resumed."""
    finished = finished_images(rows, methods)
    unique = {
        (row["index"], row["method"]): row
        for row in rows
        if row["index"] in finished and row["method"] in methods and (limit is None or row["index"] < limit)
    }
    order = {method: position for position, method in enumerate(methods)}
    return [unique[key] for key in sorted(unique, key=lambda key: (key[0], order[key[1]]))]


def write_rows(path: str, rows: list[dict]) -> None:
    """``rows`` as a JSON-lines file (``datasets.load_dataset("json", data_files=path)``), written atomically."""
    write_text(path, "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows))
