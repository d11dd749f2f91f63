"""``aha train``: one Accelerate training loop for an AHA explainer, in the style of transformers'
``run_image_classification_no_trainer.py`` and accelerate's examples: :func:`set_up` builds the run
(:class:`TrainingRun`), :func:`training_loop` runs it, :func:`train` does both and saves the result.

The classifier stays frozen; only the decoder learns. Each optimiser step anneals the
Gumbel-Sinkhorn temperature linearly from ``tau_start`` to ``tau_end``; the learning rate warms up from
lr/25 then decays by cosine. The full training state is checkpointed atomically every
``--checkpointing_steps`` and at the end; ``--resume_from_checkpoint`` continues exactly where it stopped.
Logging goes through the module's logger: :func:`main` (the ``aha train`` command) shows it on stderr.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
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
from ..threads import set_threads
from .arguments import explainer_overrides, num_warmup_steps, public_args, validate_args
from .checkpointing import CHECKPOINTS_DIR, TrainingState, resolve_checkpoint, save_checkpoint
from .classifier import load_classifier_and_processor
from .evaluation import evaluate
from .hub import save_and_push
from .output_dir import check_output_dir, run_args, write_run_args
from .schedule import annealed_tau, warmup_cosine_schedule


logger = get_logger(__name__)

#: consecutive optimiser steps with non-finite gradients (each skipped) after which training stops with an error
MAX_NONFINITE_STEPS = 10


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


@dataclass
class TrainingRun:
    """Everything :func:`training_loop` needs, as :func:`set_up` builds it.

    Attributes:
        args: the arguments, resolved by :func:`~aha.training.arguments.validate_args`.
        accelerator: the run's accelerator.
        explainer: the explainer as prepared by the accelerator; ``state.model`` is the unwrapped one.
        optimizer, lr_scheduler: as prepared by the accelerator.
        trainable: the decoder's parameters (the only ones that train).
        state: what a checkpoint saves and a resume restores (:class:`~aha.training.checkpointing.TrainingState`).
        eval_loader: this process's share of the held-out split, or None.
        validation_split: the name of the held-out split (``"validation"`` when it was split off the train split).
        max_train_steps: optimiser steps of the whole run.
        images_per_step: images per optimiser step over all processes.
    """

    args: argparse.Namespace
    accelerator: Accelerator
    explainer: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    trainable: list
    state: TrainingState
    eval_loader: object
    validation_split: str
    max_train_steps: int
    images_per_step: int


def data_loaders(args, splits: dict, explainer: AHAExplainer, image_processor, accelerator: Accelerator):
    """The training and held-out loaders of the run: ``(train_loader, eval_loader or None, validation split name,
    steps per epoch or None)``. Columns are checked against the splits' metadata before any image is decoded."""
    train_split = splits[args.train_split]
    validation_split = args.validation_split
    if validation_split not in splits and args.train_val_split is not None:
        splits = split_off_validation(train_split, args.train_val_split, args.seed)
        train_split, validation_split = splits["train"], "validation"
    held_out = splits.get(validation_split)
    for name, split in ((args.train_split, train_split), (validation_split, held_out)):
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
    return train_loader, eval_loader, validation_split, updates_per_epoch


def set_up(args: argparse.Namespace, classifier=None, image_processor=None, splits: dict | None = None) -> TrainingRun:
    """Check the arguments, the output folder, the classifier and the data; build the explainer, the loaders,
    the optimiser and the schedule; resume when asked; record the run's arguments. Returns the run."""
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=default_mixed_precision(args),
        log_with=args.report_to if args.with_tracking else None,
        project_config=ProjectConfiguration(project_dir=args.output_dir, total_limit=args.checkpoints_total_limit),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    logger.info(accelerator.state, main_process_only=False)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()

    # Everything that can be checked without data, before any data is touched.
    args = validate_args(args, accelerator.num_processes)
    if classifier is None and args.model_name_or_path is None:
        raise ValueError("--model_name_or_path is required (the classifier to explain)")
    check_output_dir(args)
    recorded_args = run_args(args)  # written when training starts: a run that fails before locks nothing
    set_seed(args.seed)

    if classifier is None:
        classifier, image_processor = load_classifier_and_processor(args.model_name_or_path, token=args.hub_token)
    explainer = AHAExplainer.from_classifier(classifier, image_processor=image_processor, **explainer_overrides(args))
    if args.gradient_checkpointing:
        explainer.activation_checkpointing_enable()
    splits = dict(splits) if splits is not None else load_splits(args)
    train_loader, eval_loader, validation_split, updates_per_epoch = data_loaders(
        args, splits, explainer, image_processor, accelerator
    )
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

    # the objective's random draws (grid size, reference, Gumbel noise) come from the run's own generator, whose
    # state is checkpointed: nothing in the step draws from a global RNG
    generator = torch.Generator(accelerator.device).manual_seed(args.seed)
    state = TrainingState(
        accelerator, unwrapped, optimizer, lr_scheduler, TrainingBatches(train_loader, accelerator),
        weights_fingerprint(unwrapped.classifier), generator=generator, max_train_steps=max_train_steps,
    )
    if args.resume_from_checkpoint is not None:
        checkpoint = resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)
        logger.info(f"Resuming from {checkpoint}")
        state.read(checkpoint)
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
    return TrainingRun(args, accelerator, explainer, optimizer, lr_scheduler, trainable, state, eval_loader,
                       validation_split, max_train_steps, images_per_step)


def training_loop(run: TrainingRun) -> dict[str, float] | None:
    """Train until ``run.max_train_steps`` optimiser steps are done, checkpointing and evaluating as the arguments
    say. Returns the last evaluation (at the last step), or None without a held-out split."""
    args, accelerator, explainer, state = run.args, run.accelerator, run.explainer, run.state
    config = state.model.config
    final_metrics = None
    explainer.train()
    bar = tqdm(total=run.max_train_steps, initial=state.completed_steps, disable=not accelerator.is_local_main_process)
    start, start_step = time.perf_counter(), state.completed_steps
    micro_losses, nonfinite_in_a_row = [], 0
    batch_iterator = iter(state.batches)
    while state.completed_steps < run.max_train_steps:
        batch = next(batch_iterator)
        with accelerator.accumulate(explainer):
            tau = annealed_tau(state.completed_steps, run.max_train_steps, config.tau_start, config.tau_end)
            loss = explainer(**batch, tau=tau, generator=state.generator).loss
            accelerator.backward(loss)
            skipped = False
            if accelerator.sync_gradients:
                gradient_norm = accelerator.clip_grad_norm_(run.trainable, args.max_grad_norm)
                # the norm is taken after the processes' gradients are averaged, so every process skips alike
                skipped = not torch.isfinite(gradient_norm).item()
                if skipped:  # gradients set to None: AdamW leaves those parameters and their moments as they are
                    run.optimizer.zero_grad(set_to_none=True)
            run.optimizer.step()
            run.lr_scheduler.step()
            run.optimizer.zero_grad()
        micro_losses.append(loss.detach())
        if not accelerator.sync_gradients:
            continue

        state.completed_steps += 1
        step = state.completed_steps
        nonfinite_in_a_row = nonfinite_in_a_row + 1 if skipped else 0
        if skipped:
            logger.warning(f"step {step}: the gradients are not finite; this update is skipped")
            if nonfinite_in_a_row == MAX_NONFINITE_STEPS:
                raise RuntimeError(
                    f"training diverged: the gradients were not finite at {MAX_NONFINITE_STEPS} steps in a row (up to "
                    f"step {step}); lower --learning_rate or --max_grad_norm"
                )
        step_loss = accelerator.reduce(torch.stack(micro_losses).mean(), reduction="mean").item()
        micro_losses = []
        images_per_second = run.images_per_step * (step - start_step) / (time.perf_counter() - start)
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}", img_s=f"{images_per_second:.1f}")
        accelerator.log(
            {"train/loss": step_loss, "train/tau": tau, "train/lr": run.lr_scheduler.get_last_lr()[0],
             "train/images_per_second": images_per_second, "train/epoch": state.batches.epoch,
             "train/skipped_update": int(skipped)},
            step=step,
        )
        if step % args.checkpointing_steps == 0 or step == run.max_train_steps:
            save_checkpoint(state, args.output_dir, step)
        if run.eval_loader is not None and ((args.eval_steps and step % args.eval_steps == 0) or step == run.max_train_steps):
            final_metrics = evaluate(explainer, run.eval_loader, accelerator, seed=args.seed)
            if accelerator.is_local_main_process:
                bar.write(f"step {step}: {final_metrics}")  # above the progress bar, on stdout
            accelerator.log(final_metrics, step=step)
            explainer.train()
    bar.close()
    return final_metrics


def train(args: argparse.Namespace, classifier=None, image_processor=None, splits: dict | None = None) -> AHAExplainer:
    """Train an explainer as the arguments say and save it to ``args.output_dir``; returns it (unwrapped).

    ``classifier`` / ``image_processor`` / ``splits`` (``{"train": Dataset | IterableDataset, "validation": ...}``)
    are in-memory alternatives to ``--model_name_or_path`` and the data flags.
    """
    run = set_up(args, classifier, image_processor, splits)
    final_metrics = training_loop(run)
    save_and_push(run.accelerator, run.state.model, run.args, run.state.completed_steps, final_metrics,
                  validation_split=run.validation_split)
    run.accelerator.end_training()
    return run.state.model


def how_to_use(output_dir: str, explainer: AHAExplainer, decoder_only: bool, pushed_to: str | None = None) -> str:
    """What ``aha train`` prints at the end: where the explainer is and the two ways to use it."""
    folder = os.path.abspath(output_dir)
    kind = ("decoder only: it loads its classifier from " + str(explainer.config.classifier_name_or_path)
            if decoder_only else "self-contained: the classifier is inside")
    lines = [f"[aha train] saved the explainer to {folder} ({kind})"]
    if pushed_to:
        lines.append(f"[aha train] pushed it to the Hub as {pushed_to}")
    lines += [
        "[aha train] use it from the command line:",
        f"    aha explain {folder} IMAGE.jpg --output out/ --curves",
        "[aha train] or from Python:",
        f'    import aha; from transformers import pipeline; pipe = pipeline("image-attribution", model="{folder}")',
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    """``aha train``: :func:`train` on the thread count of :func:`aha.threads.set_threads`, its log records shown
    on stderr (INFO; the library configures no handler); ends by printing where the explainer is and how to use it."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    local_main = os.environ.get("LOCAL_RANK", "0") == "0"
    set_threads(args.threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1")), "[aha train]" if local_main else None)
    explainer = train(args)
    if os.environ.get("RANK", "0") == "0":
        pushed_to = (args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir))) if args.push_to_hub else None
        print(how_to_use(args.output_dir, explainer, args.decoder_only, pushed_to), flush=True)
