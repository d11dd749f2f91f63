"""Saving the trained explainer (``save_pretrained``) and optionally pushing it to the Hub."""

from __future__ import annotations

import argparse

from accelerate import Accelerator
from huggingface_hub import ModelCard, ModelCardData, create_repo, upload_folder

from .checkpointing import CHECKPOINTS_DIR

CARD_TEMPLATE = """---
{card_data}
---

# AHA explainer for `{target}`

A learned per-pixel importance ranking ([aha-explain](https://pypi.org/project/aha-explain/)) for the frozen
image classifier `{target}`, trained for {steps} steps on `{dataset}`. The repository is self-contained: it
holds the frozen target too.

```python
from aha import AHAExplainer
explainer = AHAExplainer.from_pretrained("{repo}")
maps = explainer.explain(pixel_values)  # (batch, height, width)
```
"""


def model_card(args: argparse.Namespace, steps: int) -> ModelCard:
    target = args.model_name_or_path or "in-memory classifier"
    dataset = args.dataset_name or args.train_dir or args.dataset_path or "in-memory dataset"
    data = ModelCardData(
        library_name="aha-explain",
        tags=["aha", "explainability", "image-classification"],
        base_model=args.model_name_or_path,
        datasets=[args.dataset_name] if args.dataset_name else None,
    )
    return ModelCard(
        CARD_TEMPLATE.format(
            card_data=data.to_yaml(), target=target, steps=steps, dataset=dataset, repo=args.hub_model_id or args.output_dir
        )
    )


def save_and_push(accelerator: Accelerator, explainer, image_processor, args: argparse.Namespace, steps: int) -> None:
    """Write the explainer, the target's image processor and a model card to ``args.output_dir`` (main
    process), and upload them (not the checkpoints) when ``--push_to_hub``."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    explainer.save_pretrained(args.output_dir)
    if image_processor is not None:
        image_processor.save_pretrained(args.output_dir)
    model_card(args, steps).save(f"{args.output_dir}/README.md")
    if args.push_to_hub:
        repo_id = create_repo(args.hub_model_id or args.output_dir.rstrip("/").split("/")[-1], token=args.hub_token,
                              exist_ok=True).repo_id
        upload_folder(repo_id=repo_id, folder_path=args.output_dir, token=args.hub_token,
                      commit_message=f"AHA explainer after {steps} steps", ignore_patterns=[f"{CHECKPOINTS_DIR}/*"])
