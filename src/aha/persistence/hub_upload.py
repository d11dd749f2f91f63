"""Uploading explainers to the Hub: ``explainer.push_to_hub`` and ``aha train --push_to_hub``, each in one commit."""

from __future__ import annotations

import os
import tempfile
from typing import Sequence

from huggingface_hub import CommitInfo, CommitOperationAdd, EvalResult, HfApi

from .atomic_writer import write_text
from .model_cards import DEFAULT_LICENSE, model_card


def upload_folder(
    api: HfApi, folder: str, repo_id: str, commit_message: str, skip: Sequence[str] = (), **commit_kwargs
) -> CommitInfo:
    """Every file under ``folder`` but those in the subfolders ``skip`` (e.g. checkpoints), in one commit."""
    operations = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if os.path.relpath(os.path.join(root, d), folder) not in skip)
        for file in sorted(files):
            path = os.path.join(root, file)
            operations.append(
                CommitOperationAdd(
                    path_in_repo=os.path.relpath(path, folder).replace(os.sep, "/"), path_or_fileobj=path
                )
            )
    return api.create_commit(repo_id, operations, commit_message=commit_message, **commit_kwargs)


def push_explainer(
    explainer,
    repo_id: str,
    *,
    include_classifier: bool = True,
    eval_results: Sequence[EvalResult] | None = None,
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
) -> CommitInfo:
    """Save ``explainer`` (with its image processor) and its :func:`model_card` in a temporary folder and
    upload them in one commit, creating the repository if needed (what ``explainer.push_to_hub`` does)."""
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as folder:
        explainer.save_pretrained(folder, include_classifier=include_classifier)
        card = model_card(
            explainer.config,
            repo_id=repo_id,
            include_classifier=include_classifier,
            eval_results=eval_results,
            license=license,
        )
        write_text(os.path.join(folder, "README.md"), str(card))
        message = (
            commit_message or f"Upload AHA explainer ({'self-contained' if include_classifier else 'decoder only'})"
        )
        return upload_folder(api, folder, repo_id, message, revision=revision, create_pr=create_pr)
