"""Arguments of ``aha train``: dataclasses read by transformers' ``HfArgumentParser``, and the checks that need
nothing but the arguments.

Flag names follow transformers' ``run_image_classification_no_trainer.py`` wherever the concept is the
same; the AHA-specific ones set fields of :class:`aha.AHAConfig`. The same arguments can come from a JSON or
YAML file (``aha train run.yaml``, keys named as the flags), as ``HfArgumentParser`` reads them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import typing
from dataclasses import dataclass, field, fields
from typing import Literal

import yaml
from transformers import HfArgumentParser

from ..typed_options import parse_option, parse_options


# Arguments that do not change what is trained: a run may be resumed with different values.
OPERATIONAL_ARGS = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "checkpointing_steps",
        "checkpoints_total_limit",
        "eval_steps",
        "with_tracking",
        "report_to",
        "push_to_hub",
        "decoder_only",
        "hub_model_id",
        "hub_token",
        "dataloader_num_workers",
        "per_device_eval_batch_size",
        "max_eval_samples",
        "threads",
    }
)
# Arguments that must never reach a tracker, a log, a saved argument file or a model card.
SECRET_ARGS = frozenset({"hub_token"})


def _help(text: str, **metadata) -> dict:
    return {"help": text, **metadata}


@dataclass
class DataArguments:
    _argument_group_name = "data"

    dataset_name: str | None = field(default=None, metadata=_help(
        "Hub dataset id (default when no local data is given: ILSVRC/imagenet-1k, gated: accept its terms and run "
        "`hf auth login`)."))
    dataset_config_name: str | None = field(default=None, metadata=_help("Configuration of the Hub dataset."))
    dataset_path: str | None = field(default=None, metadata=_help("A dataset saved with `save_to_disk`."))
    train_dir: str | None = field(default=None, metadata=_help("A folder containing the training data."))
    validation_dir: str | None = field(default=None, metadata=_help("A folder containing the validation data."))
    train_split: str = field(default="train", metadata=_help("Name of the training split."))
    validation_split: str = field(default="validation", metadata=_help(
        "Name of the held-out split (evaluation is skipped when it is absent)."))
    train_val_split: float | None = field(default=None, metadata=_help(
        "Fraction of a map-style train split to hold out when there is no validation split."))
    image_column_name: str = field(default="image", metadata=_help("Column holding the images."))
    label_column_name: str = field(default="label", metadata=_help("Column holding the labels."))
    streaming: bool = field(default=False, metadata=_help("Stream the Hub dataset instead of downloading it."))
    shuffle_buffer_size: int = field(default=10_000, metadata=_help(
        "Shuffle buffer of a stream (0: shard order only; the only setting with exact resume)."))
    max_train_samples: int | None = field(default=None, metadata=_help("Truncate the training split."))
    max_eval_samples: int | None = field(default=None, metadata=_help("Truncate the held-out split."))
    dataloader_num_workers: int = field(default=0, metadata=_help("DataLoader workers (map-style only)."))


@dataclass
class ModelArguments:
    _argument_group_name = "model"

    model_name_or_path: str | None = field(default=None, metadata=_help(
        "The classifier to explain (AutoModelForImageClassification): Hub id or local dir."))
    tau_start: float | None = field(default=None, metadata=_help("Gumbel-Sinkhorn temperature at step 0."))
    tau_end: float | None = field(default=None, metadata=_help("Gumbel-Sinkhorn temperature at the last step."))
    explainer_config: list[str] = field(default_factory=list, metadata=_help(
        "Any other AHAConfig field, e.g. --explainer_config perturbation_batch_size=128 (repeatable; values are read "
        "as JSON when they parse).", action="append", metavar="KEY=VALUE"))


@dataclass
class OptimisationArguments:
    _argument_group_name = "optimisation"

    per_device_train_batch_size: int = field(default=32, metadata=_help("Images per process per micro-batch."))
    per_device_eval_batch_size: int | None = field(default=None, metadata=_help("Default: the training one."))
    total_train_batch_size: int | None = field(default=None, metadata=_help(
        "Images per optimiser step over all processes; sets --per_device_train_batch_size to total / (processes x "
        "gradient_accumulation_steps), which must be whole."))
    learning_rate: float = field(default=3e-4, metadata=_help("Peak AdamW learning rate."))
    weight_decay: float = field(default=1e-3, metadata=_help("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Gradient clipping norm."))
    num_train_epochs: int = field(default=1, metadata=_help("Passes over the training split."))
    max_train_steps: int | None = field(default=None, metadata=_help(
        "Optimiser steps; overrides --num_train_epochs (required for streams of unknown size)."))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Micro-batches per optimiser step."))
    num_warmup_steps: int | None = field(default=None, metadata=_help(
        "Linear warm-up steps from lr/25 (default: --warmup_ratio of the steps), then cosine."))
    warmup_ratio: float = field(default=0.06, metadata=_help("Warm-up fraction when --num_warmup_steps is unset."))
    mixed_precision: Literal["no", "fp16", "bf16"] | None = field(default=None, metadata=_help(
        "Default: the accelerate config / launcher's, else bf16 on GPUs that support it, else no."))
    gradient_checkpointing: bool = field(default=True, metadata=_help(
        "Recompute the classifier's activations in the backward pass (--no_gradient_checkpointing keeps them)."))
    seed: int = field(default=42, metadata=_help("Seed of the whole run (data order, grids, noise)."))


@dataclass
class RunArguments:
    _argument_group_name = "run"

    output_dir: str = field(metadata=_help("Where checkpoints and the explainer are written."))
    overwrite_output_dir: bool = field(default=False, metadata=_help(
        "Start afresh even if --output_dir holds a run."))
    checkpointing_steps: int = field(default=1000, metadata=_help("Save the training state every N steps."))
    checkpoints_total_limit: int | None = field(default=None, metadata=_help(
        "Keep only the newest N checkpoints (default: all)."))
    resume_from_checkpoint: str | None = field(default=None, metadata=_help(
        'A checkpoint folder, or "latest" for the newest one in --output_dir.'))
    eval_steps: int | None = field(default=None, metadata=_help(
        "Evaluate on the held-out split every N steps (default: at the end only)."))
    with_tracking: bool = field(default=False, metadata=_help("Log to experiment trackers."))
    report_to: str = field(default="all", metadata=_help(
        'Trackers for --with_tracking ("tensorboard", "wandb", ... or "all").'))
    push_to_hub: bool = field(default=False, metadata=_help("Push the final explainer to the Hub."))
    decoder_only: bool = field(default=False, metadata=_help(
        "Save the final explainer without its frozen classifier (like a PEFT adapter): the config records "
        "--model_name_or_path and the fingerprint of its weights."))
    hub_model_id: str | None = field(default=None, metadata=_help("Hub repo id (default: the output dir's name)."))
    hub_token: str | None = field(default=None, metadata=_help("Hub token (default: the `hf auth login` one)."))
    threads: int | None = field(default=None, metadata=_help(
        "torch CPU threads per process (default: the free cores shared among this machine's processes; printed)."))


ARGUMENT_CLASSES = (DataArguments, ModelArguments, OptimisationArguments, RunArguments)


class TrainArgumentParser(HfArgumentParser):
    """The parser of ``aha train``: the flags of :data:`ARGUMENT_CLASSES`, or one JSON / YAML file of them.

    Every value, from either source, is parsed by its field's declared type (:func:`aha.typed_options.parse_option`):
    ``"false"`` in a file is false, ``2.5`` for an integer option is refused, a NaN learning rate is refused."""

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        args = sys.argv[1:] if args is None else list(args)
        try:
            if len(args) == 1 and args[0].endswith((".json", ".yaml", ".yml")):
                return argument_namespace(read_argument_file(args[0]), args[0])
            parsed = vars(super().parse_args(args, namespace))
            parsed["explainer_config"] = [item for value in parsed["explainer_config"] for item in _as_list(value)]
            return argument_namespace(parsed, "flags")
        except ValueError as error:
            self.error(str(error))  # usage and the message on stderr, exit status 2


def argument_hints() -> dict[str, object]:
    """Every option of ``aha train`` -> its declared type."""
    return {name: hint for cls in ARGUMENT_CLASSES for name, hint in typing.get_type_hints(cls).items()
            if name in {f.name for f in fields(cls)}}


def argument_namespace(values: dict, source: str) -> argparse.Namespace:
    """The options in ``values`` (from ``source``: a file name, or "flags") parsed by their declared types, with the
    defaults of the rest, as one namespace. Raises ValueError naming the option (and the file)."""
    if not isinstance(values, dict):
        raise ValueError(f"{source} must hold a mapping of option names to values, got {type(values).__name__}")
    values = dict(values)
    config = values.pop("explainer_config", [])
    try:
        parsed = parse_options(values, {k: v for k, v in argument_hints().items() if k != "explainer_config"}, source)
        parsed["explainer_config"] = _config_overrides(config)
        instances = [cls(**{f.name: parsed[f.name] for f in fields(cls) if f.name in parsed}) for cls in ARGUMENT_CLASSES]
    except (TypeError, ValueError) as error:  # TypeError: a required option (--output_dir) is missing
        raise ValueError(f"{source}: {error}" if source != "flags" else str(error)) from error
    return argparse.Namespace(**{key: value for instance in instances for key, value in vars(instance).items()})


def read_argument_file(path: str) -> dict:
    """The mapping in a JSON or YAML argument file. Raises ValueError naming the file."""
    from ..safe_files import read_json  # here, not at the top: ``aha train --help`` needs no torch

    try:
        if path.endswith(".json"):
            return read_json(path)
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as error:
        raise ValueError(f"no argument file {path}") from error
    except (OSError, ValueError, yaml.YAMLError) as error:  # DamagedFileError is a ValueError
        raise ValueError(f"{path} is not a readable {'JSON' if path.endswith('.json') else 'YAML'} file ({error})") from error


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def build_parser() -> TrainArgumentParser:
    return TrainArgumentParser(
        ARGUMENT_CLASSES, prog="aha train",
        description="Train an AHA explainer for a frozen Hugging Face image classifier.",
    )


def public_args(args: argparse.Namespace) -> dict:
    """The arguments without the secrets (``SECRET_ARGS``): what trackers and saved files may see."""
    return {key: value for key, value in vars(args).items() if key not in SECRET_ARGS}


def config_override(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value), the value read as JSON when it parses (``3``, ``0.5``, ``["mean"]``,
    ``false``), else kept as a string (which :func:`_config_overrides` then parses by the field's type)."""
    key, sep, value = str(text).partition("=")
    if not sep or not key:
        raise ValueError(f"--explainer_config expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _config_overrides(values) -> list[tuple[str, object]]:
    """``--explainer_config`` values (``KEY=VALUE`` strings, or a mapping in a JSON/YAML file) as (key, value) pairs,
    each value parsed by the AHAConfig field's declared type. Only the fields a user sets
    (:meth:`AHAConfig.user_fields`) are accepted: the ones recorded from the classifier are refused."""
    from ..configuration_aha import AHAConfig  # here, not at the top: ``aha train --help`` needs no torch

    if isinstance(values, dict):
        pairs = list(values.items())
    elif isinstance(values, (list, tuple)):
        pairs = [tuple(value) if isinstance(value, (list, tuple)) and len(value) == 2 else config_override(value)
                 for value in values]
    else:
        raise ValueError(f"explainer_config must be a list of KEY=VALUE strings or a mapping, got {values!r}")
    hints = AHAConfig.user_fields()
    for key, _ in pairs:
        if key not in hints:
            recorded = key in AHAConfig.own_fields()
            raise ValueError(
                f"--explainer_config {key}: "
                + ("recorded from the classifier and its image processor, not set by hand" if recorded else
                   "not a field of AHAConfig")
                + f"; the fields it sets: {sorted(hints)}"
            )
    return [(key, parse_option(f"--explainer_config {key}", value, hints[key])) for key, value in pairs]


def validate_args(args: argparse.Namespace, num_processes: int = 1) -> argparse.Namespace:
    """Checks that need only the arguments (run before any model or data is loaded). Returns a copy of ``args``
    with the derived values resolved (``--total_train_batch_size`` into ``per_device_train_batch_size``, the eval
    batch size, ``--explainer_config`` as (key, value) pairs); ``args`` itself is not changed. Raises ValueError."""
    args = argparse.Namespace(**vars(args))
    sources = [flag for flag in ("dataset_name", "dataset_path", "train_dir") if getattr(args, flag) is not None]
    if len(sources) > 1:
        raise ValueError(f"give one data source, got {', '.join('--' + s for s in sources)}")
    if args.overwrite_output_dir and args.resume_from_checkpoint is not None:
        raise ValueError(
            "--overwrite_output_dir deletes the checkpoints that --resume_from_checkpoint would resume from: pass "
            "--resume_from_checkpoint to continue the run, or --overwrite_output_dir to start it again, not both"
        )
    if args.validation_dir is not None and args.train_dir is None:
        raise ValueError("--validation_dir needs --train_dir")
    if args.streaming and (args.train_dir is not None or args.dataset_path is not None):
        raise ValueError("--streaming reads Hub datasets (--dataset_name); local folders and saved datasets are map-style")
    if args.train_val_split is not None and (args.streaming or not 0 < args.train_val_split < 1):
        raise ValueError("--train_val_split must be in (0, 1) and needs a map-style (not --streaming) dataset")
    for flag in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                 "max_train_steps", "checkpointing_steps", "checkpoints_total_limit", "eval_steps",
                 "total_train_batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag} must be >= 1, got {value}")
    if args.max_train_steps is None and args.num_train_epochs < 1:
        raise ValueError("give --num_train_epochs >= 1 or --max_train_steps")
    if not 0 <= args.warmup_ratio < 1:
        raise ValueError(f"--warmup_ratio must be in [0, 1), got {args.warmup_ratio}")
    for flag in ("tau_start", "tau_end", "learning_rate", "max_grad_norm"):
        value = getattr(args, flag)
        if value is not None and not value > 0:
            raise ValueError(f"--{flag} must be > 0, got {value}")
    if args.weight_decay < 0 or args.shuffle_buffer_size < 0 or args.dataloader_num_workers < 0:
        raise ValueError("--weight_decay, --shuffle_buffer_size and --dataloader_num_workers must be >= 0")
    if args.total_train_batch_size is not None:
        per_step = num_processes * args.gradient_accumulation_steps
        if args.total_train_batch_size % per_step:
            raise ValueError(
                f"--total_train_batch_size ({args.total_train_batch_size}) must be divisible by num_processes "
                f"({num_processes}) x gradient_accumulation_steps ({args.gradient_accumulation_steps}) = {per_step}, "
                "since every process takes an equal, whole micro-batch"
            )
        args.per_device_train_batch_size = args.total_train_batch_size // per_step
    if args.per_device_eval_batch_size is None:
        args.per_device_eval_batch_size = args.per_device_train_batch_size
    return args


def explainer_overrides(args: argparse.Namespace) -> dict:
    """The AHAConfig fields set on the command line (``args`` as :func:`validate_args` returns them)."""
    overrides = dict(args.explainer_config)
    for key in ("tau_start", "tau_end"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return overrides


def num_warmup_steps(args: argparse.Namespace, max_train_steps: int) -> int:
    """``--num_warmup_steps``, or ``--warmup_ratio`` of the steps rounded up."""
    if args.num_warmup_steps is not None:
        return args.num_warmup_steps
    return math.ceil(args.warmup_ratio * max_train_steps)
