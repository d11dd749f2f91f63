"""Saving the trained explainer (``save_pretrained``, its image processor and a model card with the final
evaluation) and optionally pushing it to the Hub."""

from __future__ import annotations

import argparse
import os

from accelerate import Accelerator
from huggingface_hub import HfApi, ModelCard

from ..hub import faithfulness_results, hub_id, model_card, upload_folder
from ..safe_files import write_text
from .checkpointing import CHECKPOINTS_DIR


def _folder_name(path: str | None) -> str | None:
    return os.path.basename(os.path.normpath(path)) if path else None


def training_data(args: argparse.Namespace) -> str:
    """The training data as a card names it: the Hub dataset id, or the local folder's name (never a path)."""
    return args.dataset_name or _folder_name(args.train_dir or args.dataset_path) or "in-memory dataset"


def run_card(
    args: argparse.Namespace, config, steps: int, metrics: dict[str, float] | None, validation_split: str | None = None
) -> ModelCard:
    """The card of the run: the explainer's :func:`aha.hub.model_card` with the final held-out evaluation
    (``{"eval/deletion_auc": ..., "eval/insertion_auc": ...}``, mean reference, least-relevant-first insertion)."""
    eval_results = None
    if metrics:
        dataset = hub_id(args.dataset_name) or ("imagefolder" if args.train_dir else "local dataset")
        eval_results = faithfulness_results(
            {key.removeprefix("eval/"): value for key, value in metrics.items()},
            dataset=dataset,
            dataset_name=args.dataset_name or _folder_name(args.validation_dir or args.train_dir or args.dataset_path),
            dataset_config=args.dataset_config_name,
            split=validation_split or args.validation_split,
        )
    repo_id = args.hub_model_id or _folder_name(args.output_dir)
    return model_card(
        config, repo_id=repo_id, include_classifier=not args.decoder_only, eval_results=eval_results,
        dataset=training_data(args), steps=steps,
    )


def save_and_push(
    accelerator: Accelerator, explainer, args: argparse.Namespace, steps: int, metrics: dict[str, float] | None = None,
    validation_split: str | None = None,
) -> None:
    """Write the explainer (with the classifier's image processor) and the run's model card to
    ``args.output_dir`` (main process), and upload them (not the checkpoints) when ``--push_to_hub``."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    explainer.save_pretrained(args.output_dir, include_classifier=not args.decoder_only)
    write_text(os.path.join(args.output_dir, "README.md"), str(run_card(args, explainer.config, steps, metrics, validation_split)))
    if args.push_to_hub:
        api = HfApi(token=args.hub_token)
        repo_id = api.create_repo(args.hub_model_id or _folder_name(args.output_dir), exist_ok=True).repo_id
        upload_folder(api, args.output_dir, repo_id, f"AHA explainer after {steps} steps", skip=[CHECKPOINTS_DIR])
