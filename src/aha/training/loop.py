"""``aha train``: one Accelerate training loop for an AHA explainer, in the style of transformers'
``run_image_classification_no_trainer.py``.

The classifier stays frozen; only the decoder learns. Each optimiser step anneals the
Gumbel-Sinkhorn temperature linearly from ``tau_start`` to ``tau_end``; the learning rate warms up from
lr/25 then decays by cosine. The full training state is checkpointed atomically every
``--checkpointing_steps`` and at the end; ``--resume_from_checkpoint`` continues exactly where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import time

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, set_seed
from tqdm.auto import tqdm

from ..data import (
    IMAGENET_ID,
    ImageClassificationCollator,
    TrainingBatches,
    check_columns,
    class_index_map,
    eval_dataloader,
    limit_examples,
    load_hub_dataset,
    load_image_folders,
    load_saved_dataset,
    split_off_validation,
    train_dataloader,
)
from ..fingerprint import weights_fingerprint
from ..modeling_aha import AHAExplainer
from .arguments import explainer_overrides, num_warmup_steps, public_args, validate_args
from .checkpointing import CHECKPOINTS_DIR, TrainingState, resolve_checkpoint, save_checkpoint
from .evaluation import evaluate
from .hub import save_and_push
from .output_dir import check_output_dir, run_args, write_run_args
from .schedule import annealed_tau, warmup_cosine_schedule
from .classifier import load_classifier_and_processor

logger = get_logger(__name__)


def default_mixed_precision(args: argparse.Namespace) -> str | None:
    """``--mixed_precision``; else the launcher's setting (None lets accelerate read it); else bf16 on a GPU
    that supports it, else no."""
    if args.mixed_precision is not None or "ACCELERATE_MIXED_PRECISION" in os.environ:
        return args.mixed_precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def load_splits(args: argparse.Namespace) -> dict:
    """The dataset splits named by the arguments (metadata only; nothing is decoded)."""
    if args.train_dir is not None:
        splits = load_image_folders(args.train_dir, args.validation_dir)
    elif args.dataset_path is not None:
        splits = load_saved_dataset(args.dataset_path)
    else:
        name = args.dataset_name or IMAGENET_ID
        splits = load_hub_dataset(name, args.dataset_config_name, streaming=args.streaming, token=args.hub_token)
    if args.train_split not in splits:
        raise ValueError(f"the dataset has no split {args.train_split!r} (splits: {sorted(splits)}); pass --train_split")
    return splits


def steps_per_epoch(train_loader, num_processes: int, args: argparse.Namespace, stream_size: int | None) -> int | None:
    """Optimiser steps in one pass over the training split (None for a stream of unknown size)."""
    if not isinstance(train_loader.dataset, datasets.IterableDataset):
        micro_batches = len(train_loader)
    elif stream_size is not None:
        micro_batches = stream_size // (num_processes * args.per_device_train_batch_size)
    else:
        return None
    return math.ceil(micro_batches / args.gradient_accumulation_steps)


def train(args: argparse.Namespace, classifier=None, image_processor=None, splits: dict | None = None) -> AHAExplainer:
    """Train an explainer as the arguments say and save it to ``args.output_dir``; returns it (unwrapped).

    ``classifier`` / ``image_processor`` / ``splits`` (``{"train": Dataset | IterableDataset, "validation": ...}``)
    are in-memory alternatives to ``--model_name_or_path`` and the data flags.
    """
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=default_mixed_precision(args),
        log_with=args.report_to if args.with_tracking else None,
        project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()

    # Everything that can be checked without data, before any data is touched.
    validate_args(args, accelerator.num_processes)
    if classifier is None and args.model_name_or_path is None:
        raise ValueError("--model_name_or_path is required (the classifier to explain)")
    check_output_dir(args)
    recorded_args = run_args(args)  # written when training starts: a run that fails before locks nothing
    set_seed(args.seed)

    if classifier is None:
        classifier, image_processor = load_classifier_and_processor(args.model_name_or_path, token=args.hub_token)
    explainer = AHAExplainer.from_classifier(classifier, image_processor=image_processor, **explainer_overrides(args))
    config = explainer.config

    splits = dict(splits) if splits is not None else load_splits(args)
    train_split = splits[args.train_split]
    if args.validation_split not in splits and args.train_val_split is not None:
        splits = split_off_validation(train_split, args.train_val_split, args.seed)
        train_split = splits["train"]
        args.validation_split = "validation"
    held_out = splits.get(args.validation_split)
    for name, split in ((args.train_split, train_split), (args.validation_split, held_out)):
        if split is not None:
            check_columns(split, args.image_column_name, args.label_column_name, name)
    stream_size = None
    if isinstance(train_split, datasets.IterableDataset) and train_split.info.splits:
        stream_size = train_split.info.splits[args.train_split].num_examples
        if args.max_train_samples is not None:
            stream_size = min(stream_size, args.max_train_samples)

    columns = [args.image_column_name, args.label_column_name]
    collator = ImageClassificationCollator(
        image_processor,
        *columns,
        num_labels=explainer.num_labels,
        class_index_map=class_index_map(
            (train_split.features or {}).get(args.label_column_name),
            explainer.config.classifier_config.label2id,
            explainer.num_labels,
        ),
    )
    with accelerator.main_process_first():
        train_split = limit_examples(train_split.select_columns(columns), args.max_train_samples)
    train_loader = train_dataloader(
        train_split,
        collator,
        args.per_device_train_batch_size,
        accelerator,
        seed=args.seed,
        shuffle_buffer_size=args.shuffle_buffer_size,
        num_workers=args.dataloader_num_workers,
    )
    eval_loader = None
    if held_out is not None:
        held_out = limit_examples(held_out.select_columns(columns), args.max_eval_samples)
        eval_loader = eval_dataloader(held_out, collator, args.per_device_eval_batch_size, accelerator)

    updates_per_epoch = steps_per_epoch(train_loader, accelerator.num_processes, args, stream_size)
    max_train_steps = args.max_train_steps
    if max_train_steps is None:
        if updates_per_epoch is None:
            raise ValueError("the stream's size is unknown: pass --max_train_steps")
        max_train_steps = args.num_train_epochs * updates_per_epoch

    # Only the decoder trains. The scheduler is stepped once per process by accelerate, hence the factor.
    trainable = [p for p in explainer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
    lr_scheduler = warmup_cosine_schedule(
        optimizer,
        num_warmup_steps=num_warmup_steps(args, max_train_steps) * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    explainer, optimizer, lr_scheduler = accelerator.prepare(explainer, optimizer, lr_scheduler)
    unwrapped = accelerator.unwrap_model(explainer)

    batches = TrainingBatches(train_loader, accelerator)
    # the objective's random draws (grid size, reference, Gumbel noise) come from the run's own generator, whose
    # state is checkpointed: nothing in the step draws from a global RNG
    generator = torch.Generator(accelerator.device).manual_seed(args.seed)
    progress = TrainingState(
        accelerator, unwrapped, optimizer, lr_scheduler, batches, weights_fingerprint(unwrapped.classifier),
        generator=generator,
    )
    if args.resume_from_checkpoint is not None:
        checkpoint = resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)
        accelerator.print(f"Resuming from {checkpoint}")
        progress.read(checkpoint)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if args.overwrite_output_dir:
            shutil.rmtree(os.path.join(args.output_dir, CHECKPOINTS_DIR), ignore_errors=True)
        write_run_args(args.output_dir, recorded_args)
    if args.with_tracking:
        tracked = {key: value for key, value in public_args(args).items() if key != "explainer_config"}
        accelerator.init_trackers("aha_train", tracked)

    images_per_step = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info(f"  Trainable parameters = {sum(p.numel() for p in trainable)}")
    logger.info(f"  Steps per epoch = {updates_per_epoch}, total optimisation steps = {max_train_steps}")
    logger.info(f"  Images per step (all processes, with accumulation) = {images_per_step}")

    if args.gradient_checkpointing:
        unwrapped.activation_checkpointing_enable()

    def run_evaluation(step: int) -> dict[str, float]:
        metrics = evaluate(explainer, eval_loader, accelerator, seed=args.seed)
        accelerator.print(f"step {step}: {metrics}")
        accelerator.log(metrics, step=step)
        explainer.train()
        return metrics

    explainer.train()
    bar = tqdm(total=max_train_steps, initial=progress.completed_steps, disable=not accelerator.is_local_main_process)
    start, start_step = time.perf_counter(), progress.completed_steps
    micro_losses = []
    final_metrics = None  # the last evaluation (at the last step), for the model card
    batch_iterator = iter(batches)
    while progress.completed_steps < max_train_steps:
        batch = next(batch_iterator)
        with accelerator.accumulate(explainer):
            tau = annealed_tau(progress.completed_steps, max_train_steps, config.tau_start, config.tau_end)
            loss = explainer(**batch, tau=tau, generator=generator).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        micro_losses.append(loss.detach())
        if not accelerator.sync_gradients:
            continue

        progress.completed_steps += 1
        step = progress.completed_steps
        step_loss = accelerator.reduce(torch.stack(micro_losses).mean(), reduction="mean").item()
        micro_losses = []
        images_per_second = images_per_step * (step - start_step) / (time.perf_counter() - start)
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}", img_s=f"{images_per_second:.1f}")
        accelerator.log(
            {"train/loss": step_loss, "train/tau": tau, "train/lr": lr_scheduler.get_last_lr()[0],
             "train/images_per_second": images_per_second, "train/epoch": batches.epoch},
            step=step,
        )
        if step % args.checkpointing_steps == 0 or step == max_train_steps:
            save_checkpoint(progress, args.output_dir, step)
        if eval_loader is not None and ((args.eval_steps and step % args.eval_steps == 0) or step == max_train_steps):
            final_metrics = run_evaluation(step)
    bar.close()

    save_and_push(accelerator, unwrapped, args, progress.completed_steps, final_metrics)
    accelerator.end_training()
    return unwrapped
