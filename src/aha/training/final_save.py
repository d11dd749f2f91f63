"""Saving the trained explainer (``save_pretrained``, its image processor and a model card with the final
evaluation) and optionally pushing it to the Hub."""

from __future__ import annotations

import os

from accelerate import Accelerator
from huggingface_hub import HfApi, ModelCard

from ..persistence.atomic_writer import write_text
from ..persistence.hub_upload import upload_folder
from ..persistence.model_cards import faithfulness_results, hub_id, model_card
from .arguments import DataArguments, RunArguments
from .checkpointing import CHECKPOINTS_DIR


def _folder_name(path: str | None) -> str | None:
    return os.path.basename(os.path.normpath(path)) if path else None


def training_data(data: DataArguments) -> str:
    """The training data as a card names it: the Hub dataset id, or the local folder's name (never a path)."""
    return data.dataset_name or _folder_name(data.train_dir or data.dataset_path) or "in-memory dataset"


def run_card(
    config,
    data: DataArguments,
    repo_id: str,
    include_classifier: bool,
    steps: int,
    metrics: dict[str, float] | None,
    validation_split: str | None = None,
) -> ModelCard:
    """The card of the run: the explainer's :func:`aha.persistence.model_cards.model_card` with the final held-out evaluation
    (``{"eval/deletion_auc": ..., "eval/insertion_auc": ...}``, mean reference, least-relevant-first insertion)."""
    eval_results = None
    if metrics:
        dataset = hub_id(data.dataset_name) or ("imagefolder" if data.train_dir else "local dataset")
        eval_results = faithfulness_results(
            {key.removeprefix("eval/"): value for key, value in metrics.items()},
            dataset=dataset,
            dataset_name=data.dataset_name or _folder_name(data.validation_dir or data.train_dir or data.dataset_path),
            dataset_config=data.dataset_config_name,
            split=validation_split or data.validation_split,
        )
    return model_card(
        config,
        repo_id=repo_id,
        include_classifier=include_classifier,
        eval_results=eval_results,
        dataset=training_data(data),
        steps=steps,
    )


def save_and_push(
    accelerator: Accelerator,
    explainer,
    data: DataArguments,
    run: RunArguments,
    steps: int,
    metrics: dict[str, float] | None = None,
    validation_split: str | None = None,
) -> None:
    """Write the explainer (with the classifier's image processor) and the run's model card to ``run.output_dir``
    (main process), and upload them (not the checkpoints) when ``run.push_to_hub``."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    explainer.save_pretrained(run.output_dir, include_classifier=not run.decoder_only)
    card = run_card(explainer.config, data, run.repo_name(), not run.decoder_only, steps, metrics, validation_split)
    write_text(os.path.join(run.output_dir, "README.md"), str(card))
    if run.push_to_hub:
        api = HfApi(token=run.hub_token)
        repo_id = api.create_repo(run.repo_name(), exist_ok=True).repo_id
        upload_folder(api, run.output_dir, repo_id, f"AHA explainer after {steps} steps", skip=[CHECKPOINTS_DIR])
