"""``aha evaluate``: run as users run it (a subprocess, and two processes under ``accelerate launch``), resumed after
a kill, its per-image file loaded by ``datasets``, its card parsed back by ``huggingface_hub``; the localisation
metrics against a mask column, checked against :mod:`aha.metrics.localisation` on the same maps."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from conftest import IMAGE_SIZE
from huggingface_hub import ModelCard
from PIL import Image
from test_cli import run_aha
from training_helpers import image_dataset, processor, sharp_classifier

from aha import AHAExplainer
from aha.baselines import get_attributor
from aha.cli import main
from aha.evaluation.arguments import build_parser
from aha.evaluation.journal import read_rows
from aha.metrics import pixel_auroc, pointing_game, predict


NUM_IMAGES = 7
BATCH_SIZE = 3
#: AHA, a seeded method (random maps, RISE: one seed per image) and a deterministic one, on every metric of METRICS
METHODS = ["--methods", "aha,random,rise,occlusion", "--method_option", "rise.n_masks=40"]
#: the paper's metrics and the two localisation metrics (the dataset has a mask column)
METRICS = ["deletion", "insertion", "positive", "negative", "pointing_game", "mask_auroc"]
FILES = ("per_image.jsonl", "summary.json", "summary.md")
#: images whose mask holds every pixel (no background: no mask AUROC) and no pixel (no localisation metric)
FULL_MASK, EMPTY_MASK = 5, 6


def object_masks(n: int, size: int = 40) -> list[Image.Image]:
    """``n`` object masks of mode "1" (as the demo's worlds store them): a rectangle moving across the image, then
    one full mask and one empty one."""
    masks = []
    for i in range(n):
        mask = np.full((size, size), i == FULL_MASK)
        if i not in (FULL_MASK, EMPTY_MASK):
            mask[2 + 3 * i : 18 + 3 * i, 4 + 2 * i : 30] = True
        masks.append(Image.fromarray(mask))
    return masks


def with_masks(split: datasets.Dataset, masks: list[Image.Image]) -> datasets.Dataset:
    """``split`` with a ``mask`` column of images (encoded, as ``save_to_disk`` stores them)."""
    return split.add_column(
        "mask", [datasets.Image().encode_example(mask) for mask in masks], feature=datasets.Image()
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An explainer of a tiny ViT and a saved dataset of 7 labelled 40 x 40 images with object masks (``validation``
    split; the classifier sees 32 x 32)."""
    root = tmp_path_factory.mktemp("evaluate")
    AHAExplainer.from_classifier(sharp_classifier(), image_processor=processor()).save_pretrained(root / "explainer")
    split = with_masks(image_dataset(NUM_IMAGES), object_masks(NUM_IMAGES))
    datasets.DatasetDict({"validation": split}).save_to_disk(root / "data")
    return root


def _argv(setup, output_dir, *extra):
    return [
        "evaluate",
        "--model",
        setup / "explainer",
        "--dataset_path",
        setup / "data",
        *METHODS,
        "--metrics",
        ",".join(METRICS),
        "--batch_size",
        BATCH_SIZE,
        "--output_dir",
        output_dir,
        *extra,
    ]


def _in_process(*argv):
    """``aha ARGV`` in this process; returns the exit code (0 when it returns)."""
    try:
        main(list(map(str, argv)))
    except SystemExit as exit_:
        return exit_.code
    return 0


def _files(folder):
    return {name: (folder / name).read_text() for name in FILES}


@pytest.fixture(scope="module")
def one_process(setup):
    """The reference run: ``aha evaluate`` as a subprocess on one process."""
    out = setup / "one"
    run = run_aha(*_argv(setup, out, "--update_card", setup / "explainer"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"scored {NUM_IMAGES} new images" in run.stdout
    # batches [3, 4, 5] and [6]: image 5's mask has no background, image 6's no object
    assert (
        "mask_auroc is undefined (null) for images [5]: at the classifier's resolution their masks hold no object "
        "pixel or no background pixel" in run.stderr
    )
    assert (
        "pointing_game is undefined (null) for images [6]" in run.stderr
        and "pointing_game is undefined (null) for images [5]" not in run.stderr
    )
    return out


def test_per_image_file_loads_with_datasets_and_the_summary_comes_from_it(one_process):
    rows = datasets.load_dataset("json", data_files=str(one_process / "per_image.jsonl"), split="train")
    assert len(rows) == 4 * NUM_IMAGES
    assert rows["index"][:8] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert rows["method"][:4] == ["aha", "random", "rise", "occlusion"]
    assert rows["label"][: NUM_IMAGES * 4 : 4] == [i % 5 for i in range(NUM_IMAGES)]
    assert {*METRICS, "target"} <= set(rows.column_names)
    summary = json.loads((one_process / "summary.json").read_text())
    assert summary["images"] == NUM_IMAGES and summary["settings"]["protocol"] == "paper"
    for method in ("aha", "random", "rise", "occlusion"):
        deletion = [row["deletion"] for row in rows if row["method"] == method]
        assert summary["results"][method]["deletion"]["mean"] == pytest.approx(sum(deletion) / NUM_IMAGES, abs=1e-12)
    assert summary["metrics"]["deletion"] == {"higher_is_better": False}
    assert summary["metrics"]["pointing_game"] == summary["metrics"]["mask_auroc"] == {"higher_is_better": True}
    for entry in summary["paired_differences"]:
        beats = abs(entry["difference"]) > 2 * entry["standard_error"]
        assert (entry["verdict"] != "tie") == beats
    assert (
        "| aha |" in (one_process / "summary.md").read_text()
        and "mask_auroc ↑" in (one_process / "summary.md").read_text()
    )


def test_localisation_metrics_are_the_direct_calls_on_the_same_maps_and_masks(setup, one_process):
    rows = [json.loads(line) for line in (one_process / "per_image.jsonl").read_text().splitlines()]
    summary = json.loads((one_process / "summary.json").read_text())
    explainer = AHAExplainer.from_pretrained(setup / "explainer").eval()
    classifier, split = explainer.classifier, datasets.load_from_disk(setup / "data")["validation"]
    pixel_values = explainer.image_processor(list(split["image"]), return_tensors="pt")["pixel_values"]
    # the masks resized as the images are (the processor warps 40 x 40 to 32 x 32), nearest-neighbour
    masks = torch.from_numpy(
        np.stack(
            [
                np.asarray(mask.resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST), dtype=bool)
                for mask in list(split["mask"])
            ]
        )
    )
    target = predict(classifier, pixel_values)
    attributors = {
        "aha": get_attributor("aha", classifier, explainer=explainer),
        "occlusion": get_attributor("occlusion", classifier),
    }
    for method, attributor in attributors.items():
        maps = attributor(pixel_values, target)
        scored = [row for row in rows if row["method"] == method]
        assert [row["target"] for row in scored] == target.tolist()
        has_background = [i for i in range(NUM_IMAGES) if i not in (FULL_MASK, EMPTY_MASK)]
        has_object = has_background + [FULL_MASK]
        expected = {
            "pointing_game": dict(zip(has_object, pointing_game(maps[has_object], masks[has_object]).tolist())),
            "mask_auroc": dict(zip(has_background, pixel_auroc(maps[has_background], masks[has_background]).tolist())),
        }
        for name, values in expected.items():
            assert [row[name] for row in scored] == pytest.approx([values.get(i) for i in range(NUM_IMAGES)], abs=1e-9)
            assert summary["results"][method][name]["images"] == len(values)
            assert summary["results"][method][name]["mean"] == pytest.approx(np.mean(list(values.values())), abs=1e-12)
    assert [entry for entry in summary["paired_differences"] if entry["metric"] == "mask_auroc"][0][
        "images"
    ] == NUM_IMAGES - 2


def test_the_card_holds_ahas_results_as_eval_results(setup, one_process):
    card = ModelCard.load(setup / "explainer" / "README.md")
    summary = json.loads((one_process / "summary.json").read_text())
    values = {result.metric_type: result.metric_value for result in card.data.eval_results}
    expected = {
        f"{name}_auc": summary["results"]["aha"][name]["mean"]
        for name in ("deletion", "insertion", "positive", "negative")
    }
    assert values == pytest.approx(expected)
    assert {(r.dataset_name, r.dataset_split) for r in card.data.eval_results} == {("data", "validation")}
    assert card.data.eval_results[0].metric_args["reference"] == "mean"


def test_a_run_killed_after_its_first_batch_resumes_to_the_same_files(setup, one_process, tmp_path):
    out = tmp_path / "killed"
    shutil.copytree(one_process, out)
    for name in FILES:
        os.unlink(out / name)
    journal = out / "journal" / "process-00000.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    first_batch = 4 * BATCH_SIZE  # rows of the first batch: every method on its images
    journal.write_text("".join(lines[:first_batch]) + lines[first_batch][:25])  # and a line torn by the kill
    assert _in_process(*_argv(setup, out)) == 0
    assert _files(out) == _files(one_process)
    rows = read_rows([str(journal)])
    assert len(rows) == 4 * NUM_IMAGES  # the torn line was cut, only the unfinished images were scored again


def test_results_do_not_depend_on_the_batches(setup, one_process, tmp_path):
    assert _in_process(*_argv(setup, tmp_path / "out")[:-4], "--batch_size", 2, "--output_dir", tmp_path / "out") == 0
    assert (tmp_path / "out" / "per_image.jsonl").read_text() == (one_process / "per_image.jsonl").read_text()


@pytest.mark.slow  # two interpreters launched by accelerate (about 30 s on a shared CPU)
def test_two_processes_give_the_same_files_as_one(setup, one_process, tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "-m",
        "aha",
        *map(str, _argv(setup, tmp_path / "two")),
    ]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "two" / "journal")) == ["process-00000.jsonl", "process-00001.jsonl"]
    assert all(
        read_rows([str(tmp_path / "two" / "journal" / name)]) for name in os.listdir(tmp_path / "two" / "journal")
    )
    assert _files(tmp_path / "two") == _files(one_process)


def test_a_resumed_run_with_other_settings_is_refused(setup, one_process, tmp_path):
    shutil.copytree(one_process, tmp_path / "out")
    code = _in_process(*_argv(setup, tmp_path / "out", "--target", "label"))
    assert "holds an evaluation with other settings (--target)" in code


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--split", "test"), "the dataset has no split 'test' (splits: ['validation']); pass --split"),
        (("--image_column_name", "id"), "the validation split has no image column 'id' (it holds Value('int64')"),
        (("--image_column_name", "picture"), "no image column 'picture' (columns: ['id', 'image', 'label', 'mask'])"),
        (
            ("--mask_column_name", "segmentation"),
            "--metrics pointing_game,mask_auroc need object masks: the validation "
            "split has no column 'segmentation' (columns: ['id', 'image', 'label', 'mask']); pass --mask_column_name",
        ),
    ],
)
def test_data_errors_are_one_line(setup, tmp_path, extra, message):
    code = _in_process(*_argv(setup, tmp_path / "out", *extra))
    assert code.startswith("aha evaluate: ") and message in code and "\n" not in code


def test_localisation_on_a_dataset_without_masks_is_one_line_naming_its_columns(setup, tmp_path):
    datasets.DatasetDict({"validation": image_dataset(3)}).save_to_disk(tmp_path / "plain")
    argv = [
        "evaluate",
        "--model",
        setup / "explainer",
        "--dataset_path",
        tmp_path / "plain",
        "--methods",
        "centre",
        "--output_dir",
        tmp_path / "out",
    ]
    code = _in_process(*argv, "--metrics", "deletion,pointing_game")
    assert code == (
        "aha evaluate: --metrics pointing_game needs object masks: the validation split has no column "
        "'mask' (columns: ['id', 'image', 'label']); pass --mask_column_name"
    )
    assert _in_process(*argv, "--metrics", "deletion", "--output_dir", tmp_path / "other") == 0  # without them it runs


def test_a_mask_of_another_size_is_one_line_naming_the_image(setup, tmp_path):
    masks = object_masks(3)
    masks[1] = masks[1].resize((20, 20))
    split = with_masks(image_dataset(3), masks)
    datasets.DatasetDict({"validation": split}).save_to_disk(tmp_path / "data")
    code = _in_process(
        "evaluate",
        "--model",
        setup / "explainer",
        "--dataset_path",
        tmp_path / "data",
        "--methods",
        "centre",
        "--metrics",
        "pointing_game",
        "--output_dir",
        tmp_path / "out",
    )
    assert code == "aha evaluate: the 'mask' of image 1 is 20 x 20 but its image is 40 x 40 (H x W)"


def test_an_explainer_for_another_classifier_is_refused(setup, tmp_path):
    other = sharp_classifier()
    other.classifier.bias.data += 1
    other.save_pretrained(tmp_path / "other")
    processor().save_pretrained(tmp_path / "other")
    code = _in_process(*_argv(setup, tmp_path / "out", "--classifier", tmp_path / "other"))
    assert code.startswith("aha evaluate: ") and "classifier" in code and "\n" not in code


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--methods", "aha,gradcm"), "unknown method 'gradcm'"),
        (("--metrics", "deletion,roc"), "unknown metric 'roc'"),
        (("--methods", "aha", "--method_option", "rise.n_masks=3"), "'rise' is not among --methods"),
        (("--method_option", "rise.n_masks=many"), "n_masks must be an integer"),
        (("--streaming", "false", "--batch_size", "0"), "--batch_size must be >= 1"),
        (("--dataset_name", "x"), "give one data source"),
    ],
)
def test_argument_errors(setup, tmp_path, capsys, flags, message):
    code = _in_process(*_argv(setup, tmp_path / "out"), *flags)
    if isinstance(code, str):  # found once the models are loaded: one line, exit status 1
        assert code.startswith("aha evaluate: ") and message in code
    else:  # found by the parser: usage and the message, exit status 2
        assert code == 2 and message in capsys.readouterr().err


def test_options_are_parsed_by_their_declared_type(setup, tmp_path):
    args = build_parser().parse_args(
        list(map(str, _argv(setup, tmp_path)[1:])) + ["--streaming", "false", "--push_to_hub", "no"]
    )
    assert args.streaming is False and args.push_to_hub is False and args.metrics == METRICS
    args = build_parser().parse_args(
        ["--model", "m", "--output_dir", "o", "--dataset_path", "d", *METHODS, "--push_to_hub"]
    )
    assert args.push_to_hub is True and args.methods == ["aha", "random", "rise", "occlusion"]
    assert args.metrics == ["deletion", "insertion", "positive", "negative"]  # the paper protocol's
    assert args.method_option["rise"] == {"n_masks": 40}


def test_a_finished_run_rerun_on_fewer_images_scores_nothing_and_keeps_no_token(setup, one_process, tmp_path, capfd):
    out = tmp_path / "out"
    shutil.copytree(one_process, out)
    secret = "hf_SeCrEt0123456789"
    assert _in_process(*_argv(setup, out, "--max_samples", 4, "--hub_token", secret)) == 0
    captured = capfd.readouterr()
    assert "scored 0 new images" in captured.out
    rows = [json.loads(line) for line in (out / "per_image.jsonl").read_text().splitlines()]
    assert sorted({row["index"] for row in rows}) == [0, 1, 2, 3] and len(rows) == 16
    assert secret not in captured.out + captured.err
    for root, _, names in os.walk(out):
        for name in names:
            assert secret not in (Path(root) / name).read_text(), name


def test_a_streamed_split_gives_the_rows_of_the_same_split_read_as_a_folder(setup, tmp_path):
    folder = tmp_path / "images"
    for index, example in enumerate(image_dataset(NUM_IMAGES)):
        os.makedirs(folder / f"class_{example['label']}", exist_ok=True)
        example["image"].save(folder / f"class_{example['label']}" / f"{index:03d}.png")
    common = ["evaluate", "--model", setup / "explainer", "--methods", "aha,random", "--batch_size", BATCH_SIZE]
    assert _in_process(*common, "--validation_dir", folder, "--output_dir", tmp_path / "folder") == 0
    streamed = [
        *common,
        "--dataset_name",
        folder,
        "--split",
        "train",
        "--streaming",
        "true",
        "--output_dir",
        tmp_path / "stream",
    ]
    assert _in_process(*streamed, "--max_samples", 4) == 0  # then resumed on the whole split
    assert _in_process(*streamed) == 0
    assert (tmp_path / "stream" / "per_image.jsonl").read_text() == (
        tmp_path / "folder" / "per_image.jsonl"
    ).read_text()
