"""Command-line arguments of ``aha train`` and the checks that need nothing but the arguments.

Flag names follow transformers' ``run_image_classification_no_trainer.py`` wherever the concept is the
same; the AHA-specific ones set fields of :class:`aha.AHAConfig`.
"""

from __future__ import annotations

import argparse
import json
import math

# Arguments that do not change what is trained: a run may be resumed with different values.
OPERATIONAL_ARGS = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "checkpointing_steps",
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
    }
)
# Arguments that must never reach a tracker, a log, a saved argument file or a model card.
SECRET_ARGS = frozenset({"hub_token"})


def public_args(args: argparse.Namespace) -> dict:
    """The arguments without the secrets (``SECRET_ARGS``): what trackers and saved files may see."""
    return {key: value for key, value in vars(args).items() if key not in SECRET_ARGS}


def config_override(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value), the value read as JSON when it parses (``3``, ``0.5``, ``["mean"]``,
    ``false``), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aha train", description="Train an AHA explainer for a frozen Hugging Face image classifier."
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", type=str, default=None,
                      help="Hub dataset id (default when no local data is given: ILSVRC/imagenet-1k, gated: "
                           "accept its terms and run `hf auth login`).")
    data.add_argument("--dataset_config_name", type=str, default=None, help="Configuration of the Hub dataset.")
    data.add_argument("--dataset_path", type=str, default=None, help="A dataset saved with `save_to_disk`.")
    data.add_argument("--train_dir", type=str, default=None, help="A folder containing the training data.")
    data.add_argument("--validation_dir", type=str, default=None, help="A folder containing the validation data.")
    data.add_argument("--train_split", type=str, default="train", help="Name of the training split.")
    data.add_argument("--validation_split", type=str, default="validation",
                      help="Name of the held-out split (evaluation is skipped when it is absent).")
    data.add_argument("--train_val_split", type=float, default=None,
                      help="Fraction of a map-style train split to hold out when there is no validation split.")
    data.add_argument("--image_column_name", type=str, default="image", help="Column holding the images.")
    data.add_argument("--label_column_name", type=str, default="label", help="Column holding the labels.")
    data.add_argument("--streaming", action="store_true", help="Stream the Hub dataset instead of downloading it.")
    data.add_argument("--shuffle_buffer_size", type=int, default=10_000,
                      help="Shuffle buffer of a stream (0: shard order only; the only setting with exact resume).")
    data.add_argument("--max_train_samples", type=int, default=None, help="Truncate the training split.")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Truncate the held-out split.")
    data.add_argument("--dataloader_num_workers", type=int, default=0, help="DataLoader workers (map-style only).")

    model = parser.add_argument_group("model")
    model.add_argument("--model_name_or_path", type=str, default=None,
                       help="The classifier to explain (AutoModelForImageClassification): Hub id or local dir.")
    model.add_argument("--tau_start", type=float, default=None, help="Gumbel-Sinkhorn temperature at step 0.")
    model.add_argument("--tau_end", type=float, default=None, help="Gumbel-Sinkhorn temperature at the last step.")
    model.add_argument("--explainer_config", type=config_override, action="append", default=[], metavar="KEY=VALUE",
                       help="Any other AHAConfig field, e.g. --explainer_config perturbation_batch_size=128 "
                            "(repeatable; values are read as JSON when they parse).")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--per_device_train_batch_size", type=int, default=32, help="Images per process per micro-batch.")
    optim.add_argument("--per_device_eval_batch_size", type=int, default=None, help="Default: the training one.")
    optim.add_argument("--total_train_batch_size", type=int, default=None,
                       help="Images per optimiser step over all processes; sets --per_device_train_batch_size to "
                            "total / (processes x gradient_accumulation_steps), which must be whole.")
    optim.add_argument("--learning_rate", type=float, default=3e-4, help="Peak AdamW learning rate.")
    optim.add_argument("--weight_decay", type=float, default=1e-3, help="AdamW weight decay.")
    optim.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm.")
    optim.add_argument("--num_train_epochs", type=int, default=1, help="Passes over the training split.")
    optim.add_argument("--max_train_steps", type=int, default=None,
                       help="Optimiser steps; overrides --num_train_epochs (required for streams of unknown size).")
    optim.add_argument("--gradient_accumulation_steps", type=int, default=1, help="Micro-batches per optimiser step.")
    optim.add_argument("--num_warmup_steps", type=int, default=None,
                       help="Linear warm-up steps from lr/25 (default: --warmup_ratio of the steps), then cosine.")
    optim.add_argument("--warmup_ratio", type=float, default=0.06, help="Warm-up fraction when --num_warmup_steps is unset.")
    optim.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None,
                       help="Default: the accelerate config / launcher's, else bf16 on GPUs that support it, else no.")
    optim.add_argument("--no_gradient_checkpointing", dest="gradient_checkpointing", action="store_false",
                       help="Keep the classifier's activations instead of recomputing them in the backward pass.")
    optim.add_argument("--seed", type=int, default=42, help="Seed of the whole run (data order, grids, noise).")

    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", type=str, required=True, help="Where checkpoints and the explainer are written.")
    run.add_argument("--overwrite_output_dir", action="store_true", help="Start afresh even if --output_dir holds a run.")
    run.add_argument("--checkpointing_steps", type=int, default=1000, help="Save the training state every N steps.")
    run.add_argument("--resume_from_checkpoint", type=str, default=None,
                     help='A checkpoint folder, or "latest" for the newest one in --output_dir.')
    run.add_argument("--eval_steps", type=int, default=None,
                     help="Evaluate on the held-out split every N steps (default: at the end only).")
    run.add_argument("--with_tracking", action="store_true", help="Log to experiment trackers.")
    run.add_argument("--report_to", type=str, default="all",
                     help='Trackers for --with_tracking ("tensorboard", "wandb", ... or "all").')
    run.add_argument("--push_to_hub", action="store_true", help="Push the final explainer to the Hub.")
    run.add_argument("--decoder_only", action="store_true",
                     help="Save the final explainer without its frozen classifier (like a PEFT adapter): the config "
                          "references --model_name_or_path and the fingerprint of its weights.")
    run.add_argument("--hub_model_id", type=str, default=None, help="Hub repo id (default: the output dir's name).")
    run.add_argument("--hub_token", type=str, default=None, help="Hub token (default: the `hf auth login` one).")
    return parser


def validate_args(args: argparse.Namespace, num_processes: int = 1) -> None:
    """Checks that need only the arguments (run before any model or data is loaded). Resolves
    ``--total_train_batch_size`` into ``per_device_train_batch_size``. Raises ValueError."""
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
                 "max_train_steps", "checkpointing_steps", "eval_steps", "total_train_batch_size"):
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


def explainer_overrides(args: argparse.Namespace) -> dict:
    """The AHAConfig fields set on the command line."""
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
