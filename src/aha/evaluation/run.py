"""``aha evaluate``: one loop in the style of accelerate's examples. Every process takes its share of the split
(``datasets.distributed.split_dataset_by_node``), scores it batch by batch and journals the rows; the main process
gathers them, writes the per-image file and computes the summary from it."""

from __future__ import annotations

import argparse
import logging
import os
import time

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import gather_object
from huggingface_hub import metadata_update
from huggingface_hub.repocard_data import eval_results_to_model_index
from tqdm.auto import tqdm
from transformers import AutoConfig

from ..data import (
    ImageClassificationCollator,
    class_index_map,
    eval_dataloader,
    get_split,
    limit_examples,
    load_splits,
    processed_masks,
)
from ..metrics import predict
from ..modeling.modeling_aha import AHAExplainer
from ..persistence.atomic_writer import make_folder, write_json, write_text
from ..persistence.model_cards import hub_id
from ..persistence.safe_readers import read_json
from ..persistence.strict_loading import check_local_path, load_classifier_and_processor
from .arguments import PROTOCOLS, result_settings
from .journal import (
    JOURNAL_DIR,
    append_rows,
    finished_images,
    journal_files,
    journal_path,
    merged_rows,
    read_rows,
    repair,
    write_rows,
)
from .scoring import (
    Method,
    Metrics,
    metric_directions,
    needs_labels,
    needs_masks,
    result_rows,
    warn_undefined_localisation,
)
from .summary import card_results, markdown, summarise, update_card


logger = transformers.utils.logging.get_logger(__name__)

INDEX_COLUMN = "__aha_index__"
SETTINGS_FILE = "evaluation_settings.json"
PER_IMAGE_FILE = "per_image.jsonl"


def load_models(args: argparse.Namespace):
    """(classifier, explainer or None, image processor) as ``--model`` / ``--classifier`` name them."""
    check_local_path(args.model, "--model")
    is_explainer = (
        AutoConfig.from_pretrained(args.model, token=args.hub_token).model_type == AHAExplainer.config_class.model_type
    )
    classifier = None
    if args.classifier is not None:
        check_local_path(args.classifier, "--classifier")
        classifier, processor = load_classifier_and_processor(args.classifier, token=args.hub_token)
    if not is_explainer:
        if classifier is not None:
            raise ValueError("--classifier names the classifier of an explainer; --model is already a classifier")
        if "aha" in args.methods:
            raise ValueError(f"--methods aha needs an AHA explainer, and --model {args.model} is a plain classifier")
        classifier, processor = load_classifier_and_processor(args.model, token=args.hub_token)
        return classifier.eval(), None, processor
    explainer = AHAExplainer.from_pretrained(args.model, classifier=classifier, token=args.hub_token).eval()
    if explainer.image_processor is None and classifier is None:
        raise ValueError(f"{args.model} holds no image processor: pass --classifier with the classifier's own")
    return explainer.classifier, explainer, explainer.image_processor or processor


def load_split(args: argparse.Namespace):
    """The split to evaluate (metadata only), with a one-line error for a missing split."""
    splits = load_splits(
        args.dataset_name,
        args.dataset_config_name,
        dataset_path=args.dataset_path,
        image_dirs=(None, args.validation_dir),
        streaming=args.streaming,
        token=args.hub_token,
    )
    return get_split(splits, args.split, "--split")


def check_columns(split, args: argparse.Namespace, labelled: bool, masked: bool = False) -> None:
    """Raise a ValueError naming a missing image (or, when needed, label or mask) column. Streams of unknown features
    pass (the collator names a missing column)."""
    features = split.features
    if features is None:
        return
    if args.image_column_name not in features or not isinstance(features[args.image_column_name], datasets.Image):
        found = features.get(args.image_column_name)
        raise ValueError(
            f"the {args.split} split has no image column {args.image_column_name!r} "
            + (f"(it holds {found!r})" if found is not None else f"(columns: {sorted(features)})")
            + "; pass --image_column_name"
        )
    if labelled and args.label_column_name not in features:
        raise ValueError(
            f"--target label and the positive / negative perturbation need labels: the {args.split} split has no "
            f"column {args.label_column_name!r} (columns: {sorted(features)}); pass --label_column_name"
        )
    if masked and args.mask_column_name not in features:
        localisation = [name for name in args.metrics if needs_masks([name])]
        raise ValueError(
            f"--metrics {','.join(localisation)} need{'s' if len(localisation) == 1 else ''} object masks: the "
            f"{args.split} split has no column "
            f"{args.mask_column_name!r} (columns: {sorted(features)}); pass --mask_column_name"
        )


def images_to_score(split, args: argparse.Namespace, finished: set[int]):
    """The first ``--max_samples`` images of the split, each with its index in the split, less the finished ones."""
    if isinstance(split, datasets.IterableDataset):
        split = limit_examples(split, args.max_samples).map(lambda _, index: {INDEX_COLUMN: index}, with_indices=True)
        return split.filter(lambda index: index not in finished, input_columns=INDEX_COLUMN)
    split = limit_examples(split.add_column(INDEX_COLUMN, list(range(len(split)))), args.max_samples)
    return split.select([i for i in range(len(split)) if i not in finished])


class EvaluationCollator(ImageClassificationCollator):
    """The classifier's batch of a list of examples, plus ``"index"``: (B,) each image's index in the split, and with
    ``mask_column``, ``"masks"``: (B, H, W) bool object masks at the classifier's resolution
    (:func:`aha.data.processed_masks`)."""

    def __init__(self, *args, mask_column: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_column = mask_column

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        indices = [example[INDEX_COLUMN] for example in examples]
        batch = {**super().__call__(examples), "index": torch.tensor(indices)}
        if self.mask_column is None:
            return batch
        if self.mask_column not in examples[0]:
            raise ValueError(f"examples have no {self.mask_column!r} column (keys: {sorted(examples[0])})")
        masks = processed_masks(
            [example[self.mask_column] for example in examples],
            [example[self.image_column] for example in examples],
            self.image_processor,
            [f"the {self.mask_column!r} of image {index}" for index in indices],
        )
        return {**batch, "masks": masks}


def check_settings(output_dir: str, settings: dict) -> None:
    """Refuse an output folder that holds a run with other settings (its rows would be mixed with these)."""
    path = os.path.join(output_dir, SETTINGS_FILE)
    if os.path.exists(path):
        recorded = read_json(path)
        changed = sorted(key for key in set(recorded) | set(settings) if recorded.get(key) != settings.get(key))
        if changed:
            raise ValueError(
                f"{output_dir} holds an evaluation with other settings ({', '.join('--' + key for key in changed)}): "
                "resume it with the same ones, or choose another --output_dir"
            )


def evaluate(args: argparse.Namespace) -> dict | None:
    """Score ``args.methods`` with ``args.metrics`` on the split, resuming from the journal in ``args.output_dir``.
    Returns the summary on the main process (None on the others)."""
    accelerator = Accelerator()
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
    settings = result_settings(args)
    if args.update_card is not None and not os.path.isdir(args.update_card):
        raise FileNotFoundError(f"--update_card: no such explainer folder {args.update_card}")
    if args.push_to_hub:
        card_repo(args)
    if accelerator.is_main_process:
        make_folder(args.output_dir)
    accelerator.wait_for_everyone()
    check_settings(args.output_dir, settings)

    classifier, explainer, processor = load_models(args)
    classifier.to(accelerator.device)
    if explainer is not None:
        explainer.to(accelerator.device)
    with accelerator.main_process_first():  # one process fills the datasets cache, the others read it
        split = load_split(args)
    labelled, masked = needs_labels(args.metrics, args.target), needs_masks(args.metrics)
    check_columns(split, args, labelled, masked)
    label_map = label_index_map(split, args, classifier) if labelled else None
    shared = dict(explainer=explainer, refine_steps=args.refine_steps, image_processor=processor)
    methods = [Method(name, classifier, args.method_option[name], shared, args.seed) for name in args.methods]
    fields, _ = PROTOCOLS[args.protocol]
    metrics = Metrics(args.metrics, classifier, fields, processor, args.chunk_size, args.seed)

    finished = open_journal(args, settings, accelerator)
    collator = EvaluationCollator(
        processor,
        args.image_column_name,
        args.label_column_name if labelled else None,
        classifier.config.num_labels,
        label_map,
        mask_column=args.mask_column_name if masked else None,
    )
    loader = eval_dataloader(
        images_to_score(split, args, finished), collator, args.batch_size, accelerator, strategy="examples"
    )
    start = time.perf_counter()
    new_rows = score_images(args, loader, classifier, methods, metrics, accelerator, labelled, masked)
    seconds = max(gather_object([time.perf_counter() - start]))  # the slowest process's share
    scored = sum(gather_object([len(new_rows) // len(methods)]))
    gathered = gather_object(new_rows)
    summary = None
    if accelerator.is_main_process:
        summary = report_results(args, gathered, scored, seconds, accelerator.num_processes, explainer)
    # every process waits for the files, then leaves the process group (a process that exits with its group still
    # open can abort in the collective library's teardown: "terminate called without an active exception")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def label_index_map(split, args: argparse.Namespace, classifier):
    """The map from the split's label indices to the classifier's (:func:`aha.data.class_index_map`)."""
    return class_index_map(
        (split.features or {}).get(args.label_column_name),
        classifier.config.label2id,
        classifier.config.num_labels,
    )


def open_journal(args: argparse.Namespace, settings: dict, accelerator: Accelerator) -> set[int]:
    """Record the settings and cut what a kill tore from the journal (main process), then return the images every
    method has already scored, which every process skips."""
    if accelerator.is_main_process:
        write_json(os.path.join(args.output_dir, SETTINGS_FILE), settings)
        make_folder(os.path.join(args.output_dir, JOURNAL_DIR), root=args.output_dir)
        for path in journal_files(args.output_dir):
            dropped = repair(path)
            if dropped:
                logger.warning(f"{path}: dropped a torn last line ({dropped} bytes) left by a stopped run")
    accelerator.wait_for_everyone()
    return finished_images(read_rows(journal_files(args.output_dir)), args.methods)


def score_images(args, loader, classifier, methods, metrics, accelerator, labelled: bool, masked: bool) -> list[dict]:
    """Explain each batch of ``loader`` with every method and score the maps with ``metrics``; returns this
    process's rows, each also appended to its journal as soon as its batch is scored."""
    journal = journal_path(args.output_dir, accelerator.process_index)
    total = len(loader.dataset) if isinstance(loader.dataset, datasets.Dataset) else None
    bar = tqdm(
        total=total,
        unit="img",
        disable=not accelerator.is_local_main_process,
        desc=f"process 0 of {accelerator.num_processes}" if accelerator.num_processes > 1 else "images",
    )
    new_rows = []
    for batch in loader:
        pixel_values = batch["pixel_values"].to(accelerator.device)  # (B, C, H, W)
        labels = batch["labels"].to(accelerator.device) if labelled else None  # (B,)
        masks = batch["masks"].to(accelerator.device) if masked else None  # (B, H, W)
        indices = batch["index"].tolist()
        if masked:
            warn_undefined_localisation(metrics.localisation, masks, indices)
        target = labels if args.target == "label" else predict(classifier, pixel_values, args.chunk_size)
        rows = []
        for method in methods:
            maps = method(pixel_values, target, indices)
            rows += result_rows(
                indices, method.name, target, labels, metrics(pixel_values, maps, target, labels, indices, masks)
            )
        append_rows(journal, rows)
        new_rows += rows
        bar.update(len(indices))
    bar.close()
    return new_rows


def report_results(args, gathered: list[dict], scored: int, seconds: float, processes: int, explainer) -> dict:
    """On the main process: merge the journal with every process's ``gathered`` rows, write the per-image file and
    the summary, say how fast the run went, and record the summary on the card when asked; returns the summary."""
    rows = merged_rows(read_rows(journal_files(args.output_dir)) + gathered, args.methods, args.max_samples)
    summary = write_results(args, rows)
    print(
        f"aha evaluate: scored {scored} new images in {seconds:.1f} s ({scored / max(seconds, 1e-9):.2f} images/s "
        f"on {processes} process(es)); {summary['images']} images in "
        f"{args.output_dir}/{PER_IMAGE_FILE}"
    )
    if args.update_card is not None or args.push_to_hub:
        record_on_card(args, summary, explainer.config)
    return summary


def dataset_names(args: argparse.Namespace) -> tuple[str, str]:
    """(the dataset's Hub id, or the kind of local data; a readable name): what a card and the summary record
    (never a local path)."""
    dataset = hub_id(args.dataset_name) or ("imagefolder" if args.validation_dir else "local dataset")
    return dataset, args.dataset_name or os.path.basename(os.path.normpath(args.validation_dir or args.dataset_path))


def write_results(args: argparse.Namespace, rows: list[dict]) -> dict:
    """The per-image file, and the summary computed from its rows (JSON and markdown); returns the summary."""
    write_rows(os.path.join(args.output_dir, PER_IMAGE_FILE), rows)
    summary = summarise(
        rows,
        args.methods,
        {name: metric_directions()[name] for name in args.metrics},
        {
            "dataset": dataset_names(args)[1],
            "dataset_config": args.dataset_config_name,
            "split": args.split,
            "protocol": args.protocol,
            "target": args.target,
            "seed": args.seed,
            "metrics": args.metrics,
            "methods": args.methods,
            "method_options": args.method_option,
            "refine_steps": args.refine_steps,
        },
    )
    write_json(os.path.join(args.output_dir, "summary.json"), summary)
    write_text(os.path.join(args.output_dir, "summary.md"), markdown(summary))
    return summary


def card_repo(args: argparse.Namespace) -> str | None:
    """The Hub repo whose card ``--push_to_hub`` updates. Raises ValueError when there is none."""
    repo_id = args.hub_model_id or hub_id(args.model)
    if repo_id is None:
        raise ValueError(f"--push_to_hub: --model {args.model} is not a Hub repo; pass --hub_model_id")
    return repo_id


def record_on_card(args: argparse.Namespace, summary: dict, config) -> None:
    """AHA's means as eval results in the card of ``--update_card`` and / or of the Hub repo (``--push_to_hub``)."""
    results = card_results(summary, *dataset_names(args), args.dataset_config_name)
    if args.update_card is not None:
        update_card(args.update_card, results, config)
    if args.push_to_hub:
        repo_id = card_repo(args)
        model_index = eval_results_to_model_index(repo_id.split("/")[-1], results)
        metadata_update(
            repo_id,
            {"model-index": model_index},
            overwrite=True,
            token=args.hub_token,
            commit_message="aha evaluate: faithfulness results",
        )


def main(args: argparse.Namespace) -> None:
    """``aha evaluate``: :func:`evaluate`, its expected failures as one line on stderr (exit status 1)."""
    logging.basicConfig(format="%(levelname)s - %(name)s - %(message)s", level=logging.WARNING)
    try:
        evaluate(args)
    except (ValueError, FileNotFoundError, PermissionError) as error:
        raise SystemExit(f"aha evaluate: {error}") from error
