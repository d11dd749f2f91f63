"""Arguments of ``aha train``: four dataclasses, the only form in which training options travel.

:func:`aha.training.train` takes them; the ``aha train`` command reads them from flags (transformers'
``HfArgumentParser``) or from one JSON or YAML file (``aha train run.yaml``, keys named as the flags). One place
decides each option's type and default, its field: every value, from flags, a file or Python, is parsed by the
declared type when the dataclass is made (:func:`aha.typed_options.parse_option`: ``"false"`` is false, ``2.5`` for
an integer is refused, NaN is refused), and each dataclass's ``check`` refuses values out of range or combinations
that cannot run, naming the flag.

Flag names follow transformers' ``run_image_classification_no_trainer.py`` wherever the concept is the
same; the AHA-specific ones set fields of :class:`aha.AHAConfig`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import typing
from dataclasses import dataclass, field, fields
from typing import Literal

import yaml
from transformers import HfArgumentParser

from ..typed_options import option, parse_option, repeated_option, required_option


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


@functools.cache
def _field_types(cls: type) -> dict[str, object]:
    """Field name -> declared type. (Not ``Field.type``: ``HfArgumentParser`` overwrites it, dropping ``| None``.)"""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


class _TypedArguments:
    """Every field parsed by its declared type when the dataclass is made, whatever the values' source."""

    def __post_init__(self):
        for name, annotation in _field_types(type(self)).items():
            if name != "explainer_config":
                setattr(self, name, parse_option(name, getattr(self, name), annotation))


def _at_least(minimum: int, arguments, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(arguments, name)
        if value is not None and value < minimum:
            raise ValueError(f"--{name} must be >= {minimum}, got {value}")


@dataclass
class DataArguments(_TypedArguments):
    """Where the training images come from (a Hub dataset, an image folder, a saved dataset), the splits and
    columns, and how they are read: the ``data`` flags of ``aha train``."""

    _argument_group_name = "data"

    dataset_name: str | None = option(
        "Hub dataset id (default when no local data is given: ILSVRC/imagenet-1k, gated: accept its terms and run "
        "`hf auth login`)."
    )
    dataset_config_name: str | None = option("Configuration of the Hub dataset.")
    dataset_path: str | None = option("A dataset saved with `save_to_disk`.")
    train_dir: str | None = option("A folder containing the training data.")
    validation_dir: str | None = option("A folder containing the validation data.")
    train_split: str = option("Name of the training split.", default="train")
    validation_split: str = option(
        "Name of the held-out split (evaluation is skipped when it is absent).", default="validation"
    )
    train_val_split: float | None = option(
        "Fraction of a map-style train split to hold out when there is no validation split."
    )
    image_column_name: str = option("Column holding the images.", default="image")
    label_column_name: str = option("Column holding the labels.", default="label")
    streaming: bool = option("Stream the Hub dataset instead of downloading it.", default=False)
    shuffle_buffer_size: int = option(
        "Shuffle buffer of a stream (0: shard order only; the only setting with exact resume).", default=10_000
    )
    max_train_samples: int | None = option("Truncate the training split.")
    max_eval_samples: int | None = option("Truncate the held-out split.")
    dataloader_num_workers: int = option("DataLoader workers (map-style only).", default=0)

    def check(self) -> None:
        """Refuse values out of range and combinations that cannot run (ValueError naming the flags)."""
        sources = [name for name in ("dataset_name", "dataset_path", "train_dir") if getattr(self, name) is not None]
        if len(sources) > 1:
            raise ValueError(f"give one data source, got {', '.join('--' + s for s in sources)}")
        if self.validation_dir is not None and self.train_dir is None:
            raise ValueError("--validation_dir needs --train_dir")
        if self.streaming and (self.train_dir is not None or self.dataset_path is not None):
            raise ValueError(
                "--streaming reads Hub datasets (--dataset_name); local folders and saved datasets are map-style"
            )
        if self.train_val_split is not None and (self.streaming or not 0 < self.train_val_split < 1):
            raise ValueError("--train_val_split must be in (0, 1) and needs a map-style (not --streaming) dataset")
        _at_least(0, self, ("shuffle_buffer_size", "dataloader_num_workers"))


@dataclass
class ModelArguments(_TypedArguments):
    """The classifier to explain and the explainer's settings: the ``model`` flags of ``aha train``.

    ``explainer_config`` takes ``KEY=VALUE`` strings (as the flag does) or a mapping (``{"fusion_channels": 64}``)
    and holds them as (key, value) pairs, each value parsed by the AHAConfig field's declared type."""

    _argument_group_name = "model"

    model_name_or_path: str | None = option(
        "The classifier to explain (AutoModelForImageClassification): Hub id or local dir."
    )
    tau_start: float | None = option("Gumbel-Sinkhorn temperature at step 0.")
    tau_end: float | None = option("Gumbel-Sinkhorn temperature at the last step.")
    explainer_config: list[str] = repeated_option(
        "Any other AHAConfig field, e.g. --explainer_config perturbation_batch_size=128 (repeatable; values are read "
        "as JSON when they parse).",
        metavar="KEY=VALUE",
    )

    def __post_init__(self):
        super().__post_init__()
        self.explainer_config = _config_overrides(self.explainer_config)

    def check(self) -> None:
        """Refuse temperatures that are not positive (ValueError naming the flag)."""
        for name in ("tau_start", "tau_end"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"--{name} must be > 0, got {value}")

    def config_overrides(self) -> dict:
        """The AHAConfig fields these arguments set: ``explainer_config``, ``tau_start``, ``tau_end``."""
        overrides = dict(self.explainer_config)
        for key in ("tau_start", "tau_end"):
            if getattr(self, key) is not None:
                overrides[key] = getattr(self, key)
        return overrides


@dataclass
class OptimisationArguments(_TypedArguments):
    """Batch sizes, steps, learning rate and schedule, precision and seed: the ``optimisation`` flags of
    ``aha train``."""

    _argument_group_name = "optimisation"

    per_device_train_batch_size: int = option("Images per process per micro-batch.", default=32)
    per_device_eval_batch_size: int | None = option("Default: the training one.")
    total_train_batch_size: int | None = option(
        "Images per optimiser step over all processes; sets --per_device_train_batch_size to total / (processes x "
        "gradient_accumulation_steps), which must be whole."
    )
    learning_rate: float = option("Peak AdamW learning rate.", default=3e-4)
    weight_decay: float = option("AdamW weight decay.", default=1e-3)
    max_grad_norm: float = option("Gradient clipping norm.", default=1.0)
    num_train_epochs: int = option("Passes over the training split.", default=1)
    max_train_steps: int | None = option(
        "Optimiser steps; overrides --num_train_epochs (required for streams of unknown size)."
    )
    gradient_accumulation_steps: int = option("Micro-batches per optimiser step.", default=1)
    num_warmup_steps: int | None = option(
        "Linear warm-up steps from lr/25 (default: --warmup_ratio of the steps), then cosine."
    )
    warmup_ratio: float = option("Warm-up fraction when --num_warmup_steps is unset.", default=0.06)
    mixed_precision: Literal["no", "fp16", "bf16"] | None = option(
        "Default: the accelerate config / launcher's, else bf16 on GPUs that support it, else no."
    )
    gradient_checkpointing: bool = option(
        "Recompute the classifier's activations in the backward pass (--no_gradient_checkpointing keeps them).",
        default=True,
    )
    seed: int = option("Seed of the whole run (data order, grids, noise).", default=42)

    def check(self) -> None:
        """Refuse values out of range (ValueError naming the flag)."""
        _at_least(
            1,
            self,
            (
                "per_device_train_batch_size",
                "per_device_eval_batch_size",
                "gradient_accumulation_steps",
                "max_train_steps",
                "total_train_batch_size",
            ),
        )
        _at_least(0, self, ("num_warmup_steps",))
        if self.max_train_steps is None and self.num_train_epochs < 1:
            raise ValueError("give --num_train_epochs >= 1 or --max_train_steps")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("learning_rate", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"--weight_decay must be >= 0, got {self.weight_decay}")

    def per_process(self, num_processes: int) -> OptimisationArguments:
        """A copy with the batch sizes of each of ``num_processes`` processes: ``total_train_batch_size`` / (processes x
        accumulation steps), which must be whole, sets ``per_device_train_batch_size``; the eval batch size defaults
        to it."""
        batch_size = self.per_device_train_batch_size
        if self.total_train_batch_size is not None:
            per_step = num_processes * self.gradient_accumulation_steps
            if self.total_train_batch_size % per_step:
                raise ValueError(
                    f"--total_train_batch_size ({self.total_train_batch_size}) must be divisible by num_processes "
                    f"({num_processes}) x gradient_accumulation_steps ({self.gradient_accumulation_steps}) = {per_step}, "
                    "since every process takes an equal, whole micro-batch"
                )
            batch_size = self.total_train_batch_size // per_step
        eval_batch_size = batch_size if self.per_device_eval_batch_size is None else self.per_device_eval_batch_size
        return dataclasses.replace(
            self, per_device_train_batch_size=batch_size, per_device_eval_batch_size=eval_batch_size
        )

    def warmup_steps(self, max_train_steps: int) -> int:
        """``num_warmup_steps``, or ``warmup_ratio`` of the steps rounded up."""
        if self.num_warmup_steps is not None:
            return self.num_warmup_steps
        return math.ceil(self.warmup_ratio * max_train_steps)


@dataclass
class RunArguments(_TypedArguments):
    """Where the run writes, checkpointing, resuming, evaluation, trackers and the Hub: the ``run`` flags of
    ``aha train``. ``output_dir`` is required."""

    _argument_group_name = "run"

    output_dir: str = required_option("Where checkpoints and the explainer are written.")
    overwrite_output_dir: bool = option("Start afresh even if --output_dir holds a run.", default=False)
    checkpointing_steps: int = option("Save the training state every N steps.", default=1000)
    checkpoints_total_limit: int | None = option("Keep only the newest N checkpoints (default: all).")
    resume_from_checkpoint: str | None = option('A checkpoint folder, or "latest" for the newest one in --output_dir.')
    eval_steps: int | None = option("Evaluate on the held-out split every N steps (default: at the end only).")
    with_tracking: bool = option("Log to experiment trackers.", default=False)
    report_to: str = option('Trackers for --with_tracking ("tensorboard", "wandb", ... or "all").', default="all")
    push_to_hub: bool = option("Push the final explainer to the Hub.", default=False)
    decoder_only: bool = option(
        "Save the final explainer without its frozen classifier (like a PEFT adapter): the config records "
        "--model_name_or_path and the fingerprint of its weights.",
        default=False,
    )
    hub_model_id: str | None = option("Hub repo id (default: the output dir's name).")
    hub_token: str | None = field(  # a secret: left out of the dataclass's repr
        default=None, repr=False, metadata={"help": "Hub token (default: the `hf auth login` one)."}
    )
    threads: int | None = option(
        "torch CPU threads per process (default: the free cores shared among this machine's processes; printed)."
    )

    def check(self) -> None:
        """Refuse values out of range and combinations that cannot run (ValueError naming the flags)."""
        if self.overwrite_output_dir and self.resume_from_checkpoint is not None:
            raise ValueError(
                "--overwrite_output_dir deletes the checkpoints that --resume_from_checkpoint would resume from: pass "
                "--resume_from_checkpoint to continue the run, or --overwrite_output_dir to start it again, not both"
            )
        _at_least(1, self, ("checkpointing_steps", "checkpoints_total_limit", "eval_steps"))

    def repo_name(self) -> str:
        """The Hub repo to push to: ``hub_model_id``, else the name of ``output_dir``."""
        return self.hub_model_id or os.path.basename(os.path.normpath(self.output_dir))


ARGUMENT_CLASSES = (DataArguments, ModelArguments, OptimisationArguments, RunArguments)


class TrainArgumentParser(HfArgumentParser):
    """The parser of ``aha train``: the flags of :data:`ARGUMENT_CLASSES`, or one JSON / YAML file of them, into
    the four dataclasses (each value parsed by its field's declared type)."""

    def parse_args(
        self, args=None, namespace=None
    ) -> tuple[DataArguments, ModelArguments, OptimisationArguments, RunArguments]:
        """``(data, model, optimisation, run)``, the arguments of :func:`aha.training.train`; a value that does not
        parse ends the command with the usage, the message naming the option (and the file), and exit status 2."""
        args = sys.argv[1:] if args is None else list(args)
        try:
            if len(args) == 1 and args[0].endswith((".json", ".yaml", ".yml")):
                return arguments_from(read_argument_file(args[0]), args[0])
            values = vars(super().parse_args(args, namespace))
            values["explainer_config"] = [item for value in values["explainer_config"] for item in _as_list(value)]
            return arguments_from(values, "flags")
        except ValueError as error:
            self.error(str(error))  # usage and the message on stderr, exit status 2


def argument_hints() -> dict[str, object]:
    """Every option of ``aha train`` -> its declared type."""
    return {name: hint for cls in ARGUMENT_CLASSES for name, hint in _field_types(cls).items()}


def arguments_from(
    values: dict, source: str
) -> tuple[DataArguments, ModelArguments, OptimisationArguments, RunArguments]:
    """The options in ``values`` (from ``source``: a file name, or "flags") as the four dataclasses, the rest at their
    defaults. Raises ValueError naming the option (and the file) for an unknown option or a value that does not parse."""
    if not isinstance(values, dict):
        raise ValueError(f"{source} must hold a mapping of option names to values, got {type(values).__name__}")
    try:
        unknown = sorted(set(values) - set(argument_hints()))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}")
        return tuple(
            cls(**{name: values[name] for name in _field_types(cls) if name in values}) for cls in ARGUMENT_CLASSES
        )
    except (TypeError, ValueError) as error:  # TypeError: a required option (--output_dir) is missing
        raise ValueError(f"{source}: {error}" if source != "flags" else str(error)) from error


def check_arguments(
    data: DataArguments, model: ModelArguments, optimisation: OptimisationArguments, run: RunArguments
) -> None:
    """Refuse arguments that are not the four dataclasses (TypeError), values out of range and combinations that
    cannot run (ValueError naming the flags): the checks that need nothing but the arguments."""
    for value, cls in zip((data, model, optimisation, run), ARGUMENT_CLASSES):
        if not isinstance(value, cls):
            raise TypeError(f"expected {cls.__name__} (aha.training.{cls.__name__}), got {type(value).__name__}")
    for arguments in (data, run, model, optimisation):
        arguments.check()


def as_flags(*arguments) -> list[str]:
    """The ``aha train`` flags that give ``arguments`` (the four dataclasses): one per option that differs from its
    default, the secrets left out. ``build_parser().parse_args(as_flags(*arguments))`` equals ``arguments``; a
    report prints ``"aha train " + shlex.join(as_flags(...))`` as the command that reproduces a run."""
    flags = []
    for instance in arguments:
        for option in fields(instance):
            value = getattr(instance, option.name)
            default = option.default if option.default_factory is dataclasses.MISSING else option.default_factory()
            if option.name in SECRET_ARGS or value == default:
                continue
            if option.name == "explainer_config":
                flags += [
                    item
                    for key, item_value in value
                    for item in ("--explainer_config", f"{key}={json.dumps(item_value)}")
                ]
            elif isinstance(value, bool):
                flags.append(f"--{option.name}" if value else f"--no_{option.name}")
            else:
                flags += [f"--{option.name}", str(value)]
    return flags


def public_values(*arguments) -> dict:
    """The fields of the argument dataclasses without the secrets (``SECRET_ARGS``): what trackers and saved files
    may see."""
    return {key: value for instance in arguments for key, value in vars(instance).items() if key not in SECRET_ARGS}


def read_argument_file(path: str) -> dict:
    """The mapping in a JSON or YAML argument file. Raises ValueError naming the file."""
    from ..persistence.safe_readers import read_json  # here, not at the top: ``aha train --help`` needs no torch

    try:
        if path.endswith(".json"):
            return read_json(path)
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as error:
        raise ValueError(f"no argument file {path}") from error
    except (OSError, ValueError, yaml.YAMLError) as error:  # DamagedFileError is a ValueError
        raise ValueError(
            f"{path} is not a readable {'JSON' if path.endswith('.json') else 'YAML'} file ({error})"
        ) from error


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def build_parser() -> TrainArgumentParser:
    return TrainArgumentParser(
        ARGUMENT_CLASSES,
        prog="aha train",
        description="Train an AHA explainer for a frozen Hugging Face image classifier.",
    )


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
    from ..modeling.configuration_aha import AHAConfig  # here, not at the top: ``aha train --help`` needs no torch

    if isinstance(values, dict):
        pairs = list(values.items())
    elif isinstance(values, (list, tuple)):
        pairs = [
            tuple(value) if isinstance(value, (list, tuple)) and len(value) == 2 else config_override(value)
            for value in values
        ]
    else:
        raise ValueError(f"explainer_config must be a list of KEY=VALUE strings or a mapping, got {values!r}")
    hints = AHAConfig.user_fields()
    for key, _ in pairs:
        if key not in hints:
            recorded = key in AHAConfig.own_fields()
            raise ValueError(
                f"--explainer_config {key}: "
                + (
                    "recorded from the classifier and its image processor, not set by hand"
                    if recorded
                    else "not a field of AHAConfig"
                )
                + f"; the fields it sets: {sorted(hints)}"
            )
    return [(key, parse_option(f"--explainer_config {key}", value, hints[key])) for key, value in pairs]
