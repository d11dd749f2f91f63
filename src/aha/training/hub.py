"""Saving the trained explainer (``save_pretrained``) and optionally pushing it to the Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from accelerate import Accelerator
from huggingface_hub import ModelCard, ModelCardData, create_repo, upload_folder

from .. import __version__
from .checkpointing import CHECKPOINTS_DIR

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "hub_cards" / "model_card.md"


def model_card(args: argparse.Namespace, steps: int) -> ModelCard:
    """The explainer's model card, from the ``hub_cards/model_card.md`` template shipped in the package."""
    data = ModelCardData(
        library_name="aha-explain",
        tags=["aha", "explainability", "image-classification"],
        base_model=args.model_name_or_path,
        datasets=[args.dataset_name] if args.dataset_name else None,
    )
    return ModelCard.from_template(
        data,
        template_path=str(MODEL_CARD_TEMPLATE),
        target=args.model_name_or_path or "in-memory classifier",
        dataset=args.dataset_name or args.train_dir or args.dataset_path or "in-memory dataset",
        steps=steps,
        repo_id=args.hub_model_id or args.output_dir,
        aha_version=__version__,
    )


def save_and_push(accelerator: Accelerator, explainer, image_processor, args: argparse.Namespace, steps: int) -> None:
    """Write the explainer, the target's image processor and a model card to ``args.output_dir`` (main
    process), and upload them (not the checkpoints) when ``--push_to_hub``."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    explainer.save_pretrained(args.output_dir, include_target=not args.decoder_only)
    if image_processor is not None:
        image_processor.save_pretrained(args.output_dir)
    model_card(args, steps).save(f"{args.output_dir}/README.md")
    if args.push_to_hub:
        repo_id = create_repo(args.hub_model_id or args.output_dir.rstrip("/").split("/")[-1], token=args.hub_token,
                              exist_ok=True).repo_id
        upload_folder(repo_id=repo_id, folder_path=args.output_dir, token=args.hub_token,
                      commit_message=f"AHA explainer after {steps} steps", ignore_patterns=[f"{CHECKPOINTS_DIR}/*"])
