"""``aha train``: one Accelerate training loop for an AHA explainer, in the style of transformers'
``run_image_classification_no_trainer.py`` and accelerate's examples. :func:`train` is the entry point: it takes
the four argument dataclasses of :mod:`aha.training.arguments`; :func:`set_up` builds the run
(:class:`TrainingRun`), :func:`training_loop` runs it, and :func:`train` saves the result.

The classifier stays frozen; only the decoder learns. Each optimiser step anneals the
Gumbel-Sinkhorn temperature linearly from ``tau_start`` to ``tau_end``; the learning rate warms up from
lr/25 then decays by cosine. The full training state is checkpointed atomically every
``--checkpointing_steps`` and at the end; ``--resume_from_checkpoint`` continues exactly where it stopped.
Logging goes through the module's logger: :func:`main` (the ``aha train`` command) shows it on stderr.
"""

from __future__ import annotations

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
    get_split,
    limit_examples,
    load_splits,
    split_off_validation,
    train_dataloader,
)
from ..modeling.modeling_aha import AHAExplainer
from ..persistence.fingerprints import weights_fingerprint
from ..persistence.strict_loading import load_classifier_and_processor
from ..threads import set_threads
from .arguments import (
    DataArguments,
    ModelArguments,
    OptimisationArguments,
    RunArguments,
    check_arguments,
    public_values,
)
from .checkpointing import CHECKPOINTS_DIR, TrainingState, resolve_checkpoint, save_checkpoint
from .final_save import save_and_push
from .held_out_evaluation import evaluate
from .output_dir import check_output_dir, run_args, write_run_args
from .schedule import annealed_tau, warmup_cosine_schedule


logger = get_logger(__name__)

#: consecutive optimiser steps with non-finite gradients (each skipped) after which training stops with an error
MAX_NONFINITE_STEPS = 10


def default_mixed_precision(mixed_precision: str | None) -> str | None:
    """``--mixed_precision``; else the launcher's setting (None lets accelerate read it); else bf16 on a GPU
    that supports it, else no."""
    if mixed_precision is not None or "ACCELERATE_MIXED_PRECISION" in os.environ:
        return mixed_precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(optimisation: OptimisationArguments, run: RunArguments) -> Accelerator:
    """The run's accelerator: accumulation, precision, trackers, checkpoint rotation and the seeded sampler. Only
    the local main process logs datasets' and transformers' warnings."""
    accelerator = Accelerator(
        gradient_accumulation_steps=optimisation.gradient_accumulation_steps,
        mixed_precision=default_mixed_precision(optimisation.mixed_precision),
        log_with=run.report_to if run.with_tracking else None,
        project_config=ProjectConfiguration(project_dir=run.output_dir, total_limit=run.checkpoints_total_limit),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=optimisation.seed),
    )
    logger.info(accelerator.state, main_process_only=False)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
    return accelerator


def training_splits(data: DataArguments, token: str | None = None) -> dict:
    """The dataset splits named by the data arguments (metadata only; nothing is decoded), the training split
    among them."""
    splits = load_splits(
        data.dataset_name or IMAGENET_ID,
        data.dataset_config_name,
        dataset_path=data.dataset_path,
        image_dirs=(data.train_dir, data.validation_dir),
        streaming=data.streaming,
        token=token,
    )
    get_split(splits, data.train_split, "--train_split")
    return splits


def steps_per_epoch(
    train_loader, num_processes: int, batch_size: int, accumulation_steps: int, stream_size: int | None
) -> int | None:
    """Optimiser steps in one pass over the training split (None for a stream of unknown size)."""
    if not isinstance(train_loader.dataset, datasets.IterableDataset):
        micro_batches = len(train_loader)
    elif stream_size is not None:
        micro_batches = stream_size // (num_processes * batch_size)
    else:
        return None
    return math.ceil(micro_batches / accumulation_steps)


def total_steps(optimisation: OptimisationArguments, updates_per_epoch: int | None) -> int:
    """``--max_train_steps``, else ``--num_train_epochs`` passes of ``updates_per_epoch`` steps."""
    if optimisation.max_train_steps is not None:
        return optimisation.max_train_steps
    if updates_per_epoch is None:
        raise ValueError("the stream's size is unknown: pass --max_train_steps")
    return optimisation.num_train_epochs * updates_per_epoch


@dataclass
class TrainingRun:
    """Everything :func:`training_loop` needs, as :func:`set_up` builds it.

    Attributes:
        accelerator: the run's accelerator.
        explainer: the explainer as prepared by the accelerator; ``state.model`` is the unwrapped one.
        optimizer, lr_scheduler: as prepared by the accelerator.
        trainable: the decoder's parameters (the only ones that train).
        state: what a checkpoint saves and a resume restores (:class:`~aha.training.checkpointing.TrainingState`).
        eval_loader: this process's share of the held-out split, or None.
        validation_split: the name of the held-out split (``"validation"`` when it was split off the train split).
        max_train_steps: optimiser steps of the whole run.
        images_per_step: images per optimiser step over all processes.
        output_dir, checkpointing_steps, eval_steps: where and how often to checkpoint and evaluate.
        max_grad_norm: gradient clipping norm.
        seed: the seed of the held-out evaluation's draws.
    """

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
    output_dir: str
    checkpointing_steps: int
    eval_steps: int | None
    max_grad_norm: float
    seed: int


def data_loaders(
    data: DataArguments,
    optimisation: OptimisationArguments,
    splits: dict,
    explainer: AHAExplainer,
    image_processor,
    accelerator: Accelerator,
):
    """The training and held-out loaders of the run: ``(train_loader, eval_loader or None, validation split name,
    steps per epoch or None)``. Columns are checked against the splits' metadata before any image is decoded.
    ``optimisation`` holds the batch sizes of each process (:meth:`OptimisationArguments.per_process`)."""
    train_split = splits[data.train_split]
    validation_split = data.validation_split
    if validation_split not in splits and data.train_val_split is not None:
        splits = split_off_validation(train_split, data.train_val_split, optimisation.seed)
        train_split, validation_split = splits["train"], "validation"
    held_out = splits.get(validation_split)
    for name, split in ((data.train_split, train_split), (validation_split, held_out)):
        if split is not None:
            check_columns(split, data.image_column_name, data.label_column_name, name)
    stream_size = None
    if isinstance(train_split, datasets.IterableDataset) and train_split.info.splits:
        stream_size = train_split.info.splits[data.train_split].num_examples
        if data.max_train_samples is not None:
            stream_size = min(stream_size, data.max_train_samples)

    columns = [data.image_column_name, data.label_column_name]
    collator = ImageClassificationCollator(
        image_processor,
        *columns,
        num_labels=explainer.num_labels,
        class_index_map=class_index_map(
            (train_split.features or {}).get(data.label_column_name),
            explainer.config.classifier_config.label2id,
            explainer.num_labels,
        ),
    )
    with accelerator.main_process_first():
        train_split = limit_examples(train_split.select_columns(columns), data.max_train_samples)
    train_loader = train_dataloader(
        train_split,
        collator,
        optimisation.per_device_train_batch_size,
        accelerator,
        seed=optimisation.seed,
        shuffle_buffer_size=data.shuffle_buffer_size,
        num_workers=data.dataloader_num_workers,
    )
    eval_loader = None
    if held_out is not None:
        held_out = limit_examples(held_out.select_columns(columns), data.max_eval_samples)
        eval_loader = eval_dataloader(held_out, collator, optimisation.per_device_eval_batch_size, accelerator)
    updates_per_epoch = steps_per_epoch(
        train_loader,
        accelerator.num_processes,
        optimisation.per_device_train_batch_size,
        optimisation.gradient_accumulation_steps,
        stream_size,
    )
    return train_loader, eval_loader, validation_split, updates_per_epoch


def optimiser_and_schedule(
    explainer: AHAExplainer, optimisation: OptimisationArguments, max_train_steps: int, num_processes: int
):
    """``(trainable parameters, AdamW, schedule)``: only the decoder trains; the warm-up + cosine schedule is
    stepped once per process by accelerate, hence the factor."""
    trainable = [p for p in explainer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=optimisation.learning_rate, weight_decay=optimisation.weight_decay)
    lr_scheduler = warmup_cosine_schedule(
        optimizer,
        num_warmup_steps=optimisation.warmup_steps(max_train_steps) * num_processes,
        num_training_steps=max_train_steps * num_processes,
    )
    return trainable, optimizer, lr_scheduler


def record_run(accelerator: Accelerator, run: RunArguments, recorded: dict, tracked: dict) -> None:
    """When training starts: the main process clears the checkpoints of an overwritten run and writes the run's
    arguments (``recorded``, :func:`~aha.training.output_dir.run_args`); ``tracked`` goes to the trackers."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if run.overwrite_output_dir:
            shutil.rmtree(os.path.join(run.output_dir, CHECKPOINTS_DIR), ignore_errors=True)
        write_run_args(run.output_dir, recorded)
    if run.with_tracking:
        accelerator.init_trackers("aha_train", tracked)


def set_up(
    data: DataArguments,
    model: ModelArguments,
    optimisation: OptimisationArguments,
    run: RunArguments,
    classifier=None,
    image_processor=None,
    splits: dict | None = None,
) -> TrainingRun:
    """Check the arguments, the output folder, the classifier and the data; build the explainer, the loaders,
    the optimiser and the schedule; resume when asked; record the run's arguments. Returns the run."""
    check_arguments(data, model, optimisation, run)  # everything that can be checked before any data is touched
    if classifier is None and model.model_name_or_path is None:
        raise ValueError("--model_name_or_path is required (the classifier to explain)")
    accelerator = make_accelerator(optimisation, run)
    optimisation = optimisation.per_process(accelerator.num_processes)
    recorded = run_args(data, model, optimisation, run)  # written when training starts: a failed start locks nothing
    check_output_dir(run.output_dir, recorded, run.overwrite_output_dir, run.resume_from_checkpoint)
    set_seed(optimisation.seed)

    explainer, image_processor = build_explainer(model, optimisation, run.hub_token, classifier, image_processor)
    splits = dict(splits) if splits is not None else training_splits(data, token=run.hub_token)
    train_loader, eval_loader, validation_split, updates_per_epoch = data_loaders(
        data, optimisation, splits, explainer, image_processor, accelerator
    )
    max_train_steps = total_steps(optimisation, updates_per_epoch)
    trainable, optimizer, lr_scheduler = optimiser_and_schedule(
        explainer, optimisation, max_train_steps, accelerator.num_processes
    )
    explainer, optimizer, lr_scheduler = accelerator.prepare(explainer, optimizer, lr_scheduler)
    state = training_state(
        accelerator, explainer, optimizer, lr_scheduler, train_loader, max_train_steps, optimisation.seed
    )
    if run.resume_from_checkpoint is not None:
        resume(state, run.resume_from_checkpoint, run.output_dir)
    tracked = {k: v for k, v in public_values(data, model, optimisation, run).items() if k != "explainer_config"}
    record_run(accelerator, run, recorded, tracked)

    images_per_step = (
        optimisation.per_device_train_batch_size * accelerator.num_processes * optimisation.gradient_accumulation_steps
    )
    log_start(trainable, updates_per_epoch, max_train_steps, images_per_step)
    return TrainingRun(
        accelerator,
        explainer,
        optimizer,
        lr_scheduler,
        trainable,
        state,
        eval_loader,
        validation_split,
        max_train_steps,
        images_per_step,
        run.output_dir,
        run.checkpointing_steps,
        run.eval_steps,
        optimisation.max_grad_norm,
        optimisation.seed,
    )


def build_explainer(
    model: ModelArguments, optimisation: OptimisationArguments, token: str | None, classifier, image_processor
) -> tuple[AHAExplainer, object]:
    """``(explainer, image processor)``: a new explainer around ``classifier`` (None: loaded from
    ``model.model_name_or_path`` with its image processor), configured by ``model``, with activation checkpointing
    when ``optimisation.gradient_checkpointing``."""
    if classifier is None:
        classifier, image_processor = load_classifier_and_processor(model.model_name_or_path, token=token)
    explainer = AHAExplainer.from_classifier(classifier, image_processor=image_processor, **model.config_overrides())
    if optimisation.gradient_checkpointing:
        explainer.activation_checkpointing_enable()
    return explainer, image_processor


def training_state(
    accelerator: Accelerator,
    explainer,
    optimizer,
    lr_scheduler,
    train_loader,
    max_train_steps: int,
    seed: int,
) -> TrainingState:
    """What a checkpoint saves and a resume restores, of the explainer, optimiser and schedule as prepared by
    ``accelerator``, with the run's own generator seeded by ``seed``."""
    unwrapped = accelerator.unwrap_model(explainer)
    # the objective's random draws (grid size, reference, Gumbel noise) come from the run's own generator, whose
    # state is checkpointed: nothing in the step draws from a global RNG
    generator = torch.Generator(accelerator.device).manual_seed(seed)
    return TrainingState(
        accelerator,
        unwrapped,
        optimizer,
        lr_scheduler,
        TrainingBatches(train_loader, accelerator),
        weights_fingerprint(unwrapped.classifier),
        generator=generator,
        max_train_steps=max_train_steps,
    )


def resume(state: TrainingState, resume_from_checkpoint: str, output_dir: str) -> None:
    """Restore ``state`` from the checkpoint ``resume_from_checkpoint`` names (``"latest"``: the newest one in
    ``output_dir``)."""
    checkpoint = resolve_checkpoint(resume_from_checkpoint, output_dir)
    logger.info(f"Resuming from {checkpoint}")
    state.read(checkpoint)


def log_start(trainable: list, updates_per_epoch: int | None, max_train_steps: int, images_per_step: int) -> None:
    """The run's size in the log, as training starts."""
    logger.info("***** Running training *****")
    logger.info(f"  Trainable parameters = {sum(p.numel() for p in trainable)}")
    logger.info(f"  Steps per epoch = {updates_per_epoch}, total optimisation steps = {max_train_steps}")
    logger.info(f"  Images per step (all processes, with accumulation) = {images_per_step}")


def skip_if_not_finite(run: TrainingRun) -> bool:
    """Clip the gradients (their norm is taken after the processes' gradients are averaged, so every process
    decides alike); when the norm is not finite, drop them and return True (the update is skipped: AdamW leaves
    parameters without gradients, and their moments, as they are)."""
    gradient_norm = run.accelerator.clip_grad_norm_(run.trainable, run.max_grad_norm)
    skipped = not torch.isfinite(gradient_norm).item()
    if skipped:
        run.optimizer.zero_grad(set_to_none=True)
    return skipped


def count_skipped(skipped: bool, in_a_row: int, step: int) -> int:
    """Consecutive skipped updates up to ``step``: warns of a skipped one; raises at :data:`MAX_NONFINITE_STEPS`."""
    if not skipped:
        return 0
    logger.warning(f"step {step}: the gradients are not finite; this update is skipped")
    if in_a_row + 1 == MAX_NONFINITE_STEPS:
        raise RuntimeError(
            f"training diverged: the gradients were not finite at {MAX_NONFINITE_STEPS} steps in a row (up to "
            f"step {step}); lower --learning_rate or --max_grad_norm"
        )
    return in_a_row + 1


def training_loop(run: TrainingRun) -> dict[str, float] | None:
    """Train until ``run.max_train_steps`` optimiser steps are done, checkpointing and evaluating as the arguments
    say. Returns the last evaluation (at the last step), or None without a held-out split."""
    accelerator, explainer, state = run.accelerator, run.explainer, run.state
    config, final_metrics = state.model.config, None
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
            skipped = accelerator.sync_gradients and skip_if_not_finite(run)
            run.optimizer.step()
            run.lr_scheduler.step()
            run.optimizer.zero_grad()
        micro_losses.append(loss.detach())
        if not accelerator.sync_gradients:
            continue

        state.completed_steps += 1
        step = state.completed_steps
        nonfinite_in_a_row = count_skipped(skipped, nonfinite_in_a_row, step)
        step_loss = accelerator.reduce(torch.stack(micro_losses).mean(), reduction="mean").item()
        micro_losses = []
        images_per_second = run.images_per_step * (step - start_step) / (time.perf_counter() - start)
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}", img_s=f"{images_per_second:.1f}")
        accelerator.log(
            {
                "train/loss": step_loss,
                "train/tau": tau,
                "train/lr": run.lr_scheduler.get_last_lr()[0],
                "train/images_per_second": images_per_second,
                "train/epoch": state.batches.epoch,
                "train/skipped_update": int(skipped),
            },
            step=step,
        )
        if step % run.checkpointing_steps == 0 or step == run.max_train_steps:
            save_checkpoint(state, run.output_dir, step)
        if run.eval_loader is not None and (
            (run.eval_steps and step % run.eval_steps == 0) or step == run.max_train_steps
        ):
            final_metrics = evaluate(explainer, run.eval_loader, accelerator, seed=run.seed)
            if accelerator.is_local_main_process:
                bar.write(f"step {step}: {final_metrics}")  # above the progress bar, on stdout
            accelerator.log(final_metrics, step=step)
            explainer.train()
    bar.close()
    return final_metrics


def train(
    data: DataArguments,
    model: ModelArguments,
    optimisation: OptimisationArguments,
    run: RunArguments,
    *,
    classifier=None,
    image_processor=None,
    splits: dict | None = None,
) -> AHAExplainer:
    """Train an AHA explainer for a frozen image classifier and save it to ``run.output_dir``.

    The Python form of ``aha train``, which parses its flags (or a JSON / YAML file) into these four dataclasses.
    Each field is parsed by its declared type (``RunArguments(output_dir="out", push_to_hub="false")`` does not
    push); ranges and combinations are checked before any model or data is loaded. Runs under ``accelerate launch``.

    Args:
        data (`DataArguments`):
            Where the images come from (a Hub dataset, an image folder, a saved dataset), the splits and columns.
        model (`ModelArguments`):
            The classifier to explain (``model_name_or_path``) and the explainer's settings (``tau_start``,
            ``tau_end``, any other :class:`~aha.AHAConfig` field in ``explainer_config``).
        optimisation (`OptimisationArguments`):
            Batch sizes, steps, learning rate and schedule, precision, seed.
        run (`RunArguments`):
            Where the run writes (``output_dir``), checkpoints, resuming, evaluation, trackers and the Hub.
        classifier (`transformers.PreTrainedModel`, *optional*):
            The classifier in memory, instead of ``model.model_name_or_path``; pass its ``image_processor`` with it.
        image_processor (`transformers.BaseImageProcessor`, *optional*):
            The classifier's image processor (with ``classifier``).
        splits (`dict[str, datasets.Dataset | datasets.IterableDataset]`, *optional*):
            The data in memory by split name, instead of the source in ``data`` (which names splits and columns).

    Returns:
        `AHAExplainer`: the trained explainer (unwrapped from the accelerator), as saved in ``run.output_dir``
        with its image processor, a model card and, when ``run.push_to_hub``, on the Hub.

    Raises:
        TypeError: an argument is not the dataclass expected.
        ValueError: an option out of range, a combination that cannot run, an output folder holding another run,
            a dataset without the named split or columns (each message names the flag).

    Example:

    ```python
    >>> from aha.training import DataArguments, ModelArguments, OptimisationArguments, RunArguments, train
    >>> explainer = train(
    ...     DataArguments(train_dir="photos/"),
    ...     ModelArguments(model_name_or_path="google/vit-base-patch16-224"),
    ...     OptimisationArguments(max_train_steps=2000, learning_rate=3e-4),
    ...     RunArguments(output_dir="aha-vit-base-patch16-224"),
    ... )
    ```
    """
    training = set_up(data, model, optimisation, run, classifier, image_processor, splits)
    final_metrics = training_loop(training)
    explainer, steps, split = training.state.model, training.state.completed_steps, training.validation_split
    save_and_push(training.accelerator, explainer, data, run, steps, final_metrics, validation_split=split)
    training.accelerator.end_training()
    return explainer


def how_to_use(output_dir: str, explainer: AHAExplainer, decoder_only: bool, pushed_to: str | None = None) -> str:
    """What ``aha train`` prints at the end: where the explainer is and the two ways to use it."""
    folder = os.path.abspath(output_dir)
    kind = (
        "decoder only: it loads its classifier from " + str(explainer.config.classifier_name_or_path)
        if decoder_only
        else "self-contained: the classifier is inside"
    )
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


def main(arguments: tuple[DataArguments, ModelArguments, OptimisationArguments, RunArguments]) -> None:
    """``aha train``: :func:`train` on the arguments its parser read (:func:`~aha.training.build_parser`), on the
    thread count of :func:`aha.threads.set_threads`, its log records shown on stderr (INFO; the library configures
    no handler); ends by printing where the explainer is and how to use it."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    data, model, optimisation, run = arguments
    local_main = os.environ.get("LOCAL_RANK", "0") == "0"
    set_threads(run.threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1")), "[aha train]" if local_main else None)
    explainer = train(data, model, optimisation, run)
    if os.environ.get("RANK", "0") == "0":
        pushed_to = run.repo_name() if run.push_to_hub else None
        print(how_to_use(run.output_dir, explainer, run.decoder_only, pushed_to), flush=True)
