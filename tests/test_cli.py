"""The ``aha`` console command, run as users run it: as a subprocess."""

import ast
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import IMAGE_SIZE
from huggingface_hub import ModelCard
from PIL import Image
from test_pipeline import crop_processor, labelled_classifier, random_image
from test_space_uploads import png_header_only
from training_helpers import processor, sharp_classifier
from transformers import pipeline

import aha
from aha import AHAExplainer
from aha.cli import SUBCOMMANDS, main


AHA = os.path.join(os.path.dirname(sys.executable), "aha")  # the console script installed with the package


def run_aha(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [AHA] if os.path.exists(AHA) else [sys.executable, "-m", "aha"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _main(capsys, *argv):
    """``aha ARGV`` in this process (the subprocess tests below start the console script itself)."""
    with pytest.raises(SystemExit) as exit_:
        main(list(map(str, argv)))
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_help_lists_every_subcommand_and_each_has_its_own_help(capsys):
    code, listing, _ = _main(capsys, "--help")
    assert code == 0
    for name, (_, summary) in SUBCOMMANDS.items():
        assert re.search(rf"^\s+{name}\s+{re.escape(summary.split(':')[0])}", listing, re.M), name
    assert "--model_name_or_path" in _main(capsys, "train", "--help")[1]
    assert "--refine_steps" in _main(capsys, "explain", "--help")[1]
    code, _, error = _main(capsys, "bogus")
    assert code == 2 and "invalid choice: 'bogus'" in error
    code, _, error = _main(capsys, "explain", "some/explainer", "nothing.png")
    assert error == "aha explain: no such image file: nothing.png\n"
    assert code == "aha explain: 1 of 1 images could not be read (listed above); the other 0 were explained"
    code, version, _ = _main(capsys, "--version")
    assert code == 0 and version.strip() == f"aha-explain {aha.__version__}"


HEAVY = (
    "torch",
    "accelerate",
    "datasets",
    "aha.training",
    "aha.demo",
    "aha.baselines",
    "aha.modeling.modeling_aha",
)


def imported_by(*args) -> set[str]:
    """The modules ``python -m aha ARGS`` imports (its ``-X importtime`` report), as the console script runs it."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aha", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode in (0, 2), done.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["explain", "--help"], ["explain"], ["demo", "--help"]])
def test_help_version_and_argument_errors_import_neither_torch_nor_training_or_demo(args):
    modules = imported_by(*args)
    assert "aha.cli" in modules  # the report is real
    assert not {name for name in modules if name.split(".")[0] in HEAVY or name in HEAVY}, sorted(modules & set(HEAVY))


def test_train_help_imports_its_arguments_only():
    modules = imported_by("train", "--help")
    assert "aha.training.arguments" in modules
    assert not modules & {"torch", "accelerate", "datasets", "aha.training.loop", "aha.demo"}


def test_import_aha_is_light_and_registers_with_transformers_when_it_loads():
    code = (
        "import sys\n"
        "import aha\n"
        "assert not {'torch', 'aha.training', 'aha.demo', 'aha.baselines'} & set(sys.modules), sys.modules\n"
        "from transformers import AutoConfig, pipeline\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "assert 'image-attribution' in PIPELINE_REGISTRY.get_supported_tasks()\n"
        "assert type(AutoConfig.for_model('aha')) is aha.AHAConfig\n"
        "assert not {'aha.training', 'aha.demo', 'aha.baselines'} & set(sys.modules)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def _one_line_error(run, command: str) -> str:
    """The user-error contract: exit status 1, no traceback, the error on one line, the last (before it, stderr
    holds only what ran before the error: progress bars, the training log)."""
    assert run.returncode == 1, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr and lines[-1].startswith(f"aha {command}: error: "), run.stderr[-2000:]
    assert sum("error" in line.lower() for line in lines) == 1, run.stderr[-2000:]
    return lines[-1]


def test_user_errors_print_one_line_and_debug_shows_the_traceback(tmp_path):
    AHAExplainer.from_classifier(labelled_classifier(), image_processor=crop_processor()).save_pretrained(
        tmp_path / "explainer"
    )
    random_image(40, 40).save(tmp_path / "cat.png")  # (unreadable images: one line each, tested above)
    line = _one_line_error(run_aha("explain", "org/not-downloaded", tmp_path / "cat.png"), "explain")
    assert "'org/not-downloaded'" in line and "a saved folder or a Hub repo id" in line
    line = _one_line_error(
        run_aha(
            "train",
            "--model_name_or_path",
            tmp_path / "explainer",
            "--train_dir",
            tmp_path / "train",
            "--dataset_path",
            tmp_path / "data",
            "--output_dir",
            tmp_path / "out",
        ),
        "train",
    )
    assert "one data source" in line
    debug = run_aha("explain", "org/not-downloaded", tmp_path / "cat.png", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "org/not-downloaded" in debug.stderr


def test_explain_writes_overlays_maps_and_curves(tmp_path):
    AHAExplainer.from_classifier(labelled_classifier(), image_processor=crop_processor()).save_pretrained(
        tmp_path / "explainer"
    )
    random_image(40, 52).save(tmp_path / "cat.png")
    random_image(57, 23, "L", seed=1).save(tmp_path / "dog.jpg")
    run = run_aha(
        "explain",
        tmp_path / "explainer",
        tmp_path / "cat.png",
        tmp_path / "dog.jpg",
        "--target",
        "owl",
        "--curves",
        "--output",
        tmp_path / "out",
        "--batch_size",
        2,
    )
    assert run.returncode == 0, run.stderr
    expected = pipeline("image-attribution", model=str(tmp_path / "explainer"), device="cpu")
    for name, image in (("cat", Image.open(tmp_path / "cat.png")), ("dog", Image.open(tmp_path / "dog.jpg"))):
        overlay = Image.open(tmp_path / "out" / f"{name}_overlay.png")
        assert overlay.format == "PNG" and overlay.mode == "RGB" and min(overlay.size) > 256  # enlarged, labelled
        attribution = np.load(tmp_path / "out" / f"{name}_map.npy")
        assert attribution.shape == (image.height, image.width)
        result = expected(image, target="owl", curves=True, overlay=True)
        assert overlay.size == result["overlay"].size  # the pipeline's picture (its pixels: test_pipeline.py)
        np.testing.assert_allclose(
            attribution, result["attribution"], rtol=1e-4, atol=1e-5
        )  # other batching and threads
        assert Image.open(tmp_path / "out" / f"{name}_curves.png").format == "PNG"
        assert (
            f"deletion AUC {result['deletion'].mean_auc:.4f}, insertion AUC {result['insertion'].mean_auc:.4f}"
            in run.stdout
        )
    assert run.stdout.count("explained 'owl' (class 3") == 2 and "cat.png: " in run.stdout


def test_explain_gives_every_input_its_own_outputs(tmp_path):
    """Inputs sharing a file name in different folders, or a stem in one folder, never overwrite each other's
    outputs: names mirror the inputs' paths, and a name already taken gets -2, -3, ... in argument order."""
    AHAExplainer.from_classifier(labelled_classifier(), image_processor=crop_processor()).save_pretrained(
        tmp_path / "explainer"
    )
    inputs = {
        "a/cat.png": "a/cat",
        "b/cat.png": "b/cat",
        "a/cat.jpg": "a/cat-2",
        "a/cat-2.png": "a/cat-2-2",
        "b/Cat.png": "b/Cat-2",
    }
    for index, path in enumerate(inputs):
        (tmp_path / "in" / path).parent.mkdir(parents=True, exist_ok=True)
        random_image(30 + index, 40, seed=index).save(tmp_path / "in" / path)
    run = run_aha("explain", tmp_path / "explainer", *inputs, "--output", tmp_path / "out", cwd=tmp_path / "in")
    assert run.returncode == 0, run.stderr
    expected = pipeline("image-attribution", model=str(tmp_path / "explainer"), device="cpu")
    for path, name in inputs.items():
        attribution = np.load(tmp_path / "out" / f"{name}_map.npy")
        result = expected(str(tmp_path / "in" / path), overlay=True)
        np.testing.assert_allclose(attribution, result["attribution"], rtol=1e-4, atol=1e-5)
        assert attribution.shape == (30 + list(inputs).index(path), 40)
        assert (
            Image.open(tmp_path / "out" / f"{name}_overlay.png").size == result["overlay"].size
        )  # enlarged, labelled
    assert len(list((tmp_path / "out").rglob("*_map.npy"))) == len(inputs)


def test_explain_explains_the_good_images_and_names_each_bad_one(tmp_path):
    AHAExplainer.from_classifier(labelled_classifier(), image_processor=crop_processor()).save_pretrained(
        tmp_path / "explainer"
    )
    random_image(40, 52).save(tmp_path / "ok.png")
    Image.fromarray(np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50).save(tmp_path / "deep.png")  # 16-bit
    (tmp_path / "notes.png").write_text("a text file\n")
    random_image(1, 1).save(tmp_path / "dot.png")
    png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    frames = [random_image(30, 30, seed=seed) for seed in range(2)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    bad = {
        "notes.png": "is not an image file Pillow can identify: expected a PNG, JPEG, WebP, BMP, GIF or TIFF image file",
        "dot.png": "is only 1 x 1 pixels: expected at least 16 x 16 pixels (min_image_side)",
        "bomb.png": "is too large",
        "cut.png": "could not be decoded; it may be damaged or incomplete",
        "moving.gif": "is an animated image (2 frames): expected a still image",
        "missing.png": None,
    }
    run = run_aha("explain", tmp_path / "explainer", "ok.png", *bad, "deep.png", "--output", "out", cwd=tmp_path)
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.startswith("aha explain")]  # not the progress bars
    assert len(lines) == len(bad) + 1, run.stderr
    for line, (name, expected) in zip(lines, bad.items()):
        assert (
            line == "aha explain: no such image file: missing.png"
            if expected is None
            else line.startswith(f"aha explain: {name} {expected}")
        ), line
    assert "max_image_pixels" in lines[2] and lines[-1].startswith("aha explain: 6 of 8 images could not be read")
    for name in ("ok", "deep"):
        assert (tmp_path / "out" / f"{name}_map.npy").is_file() and f"{name}.png: " in run.stdout
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "deep_map.npy",
        "deep_overlay.png",
        "ok_map.npy",
        "ok_overlay.png",
    ]


def test_explain_size_limits_are_flags(capsys, tmp_path):
    random_image(40, 52).save(tmp_path / "ok.png")
    code, _, error = _main(capsys, "explain", "some/explainer", tmp_path / "ok.png", "--max_image_pixels", 2000)
    assert error.startswith(f"aha explain: {tmp_path / 'ok.png'} is 52 x 40 pixels, too large: at most 2,000 pixels")
    code, _, error = _main(capsys, "explain", "some/explainer", tmp_path / "ok.png", "--min_image_side", 41)
    assert "expected at least 41 x 41 pixels" in error
    code, _, _ = _main(capsys, "explain", "some/explainer", tmp_path / "ok.png", "--max_image_pixels", 0)
    assert code == "aha explain: --max_image_pixels must be an integer >= 1, got 0"
    code, _, _ = _main(capsys, "explain", "~/no/such/explainer", tmp_path / "ok.png")
    assert code == f"aha explain: the explainer: no such local folder {os.path.expanduser('~/no/such/explainer')}"


def _image_folder(root, per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    for label in range(3):
        os.makedirs(root / f"class_{label}")
        for i in range(per_class):
            pixels = rng.integers(0, 256, (IMAGE_SIZE + 8, IMAGE_SIZE + 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class_{label}" / f"{i}.png")


def test_train_on_an_image_folder_writes_a_card_with_its_final_evaluation(tmp_path):
    sharp_classifier().save_pretrained(tmp_path / "classifier")
    processor().save_pretrained(tmp_path / "classifier")
    _image_folder(tmp_path / "train", per_class=2, seed=0)
    _image_folder(tmp_path / "val", per_class=1, seed=1)
    run = run_aha(
        "train",
        "--model_name_or_path",
        tmp_path / "classifier",
        "--train_dir",
        tmp_path / "train",
        "--validation_dir",
        tmp_path / "val",
        "--output_dir",
        tmp_path / "out",
        "--max_train_steps",
        2,
        "--per_device_train_batch_size",
        3,
        "--learning_rate",
        "3e-3",
        "--seed",
        0,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    assert "[aha train] torch CPU threads: 1 (OMP_NUM_THREADS" in run.stdout  # the test runs with OMP_NUM_THREADS=1
    assert f"[aha train] saved the explainer to {out} (self-contained" in run.stdout
    assert (
        f"aha explain {out} IMAGE.jpg" in run.stdout and f'pipeline("image-attribution", model="{out}")' in run.stdout
    )
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(os.listdir(out))
    final = ast.literal_eval(re.search(r"^step 2: (\{.*\})$", run.stdout, re.M).group(1))
    card = ModelCard.load(out / "README.md")
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"deletion_auc": final["eval/deletion_auc"], "insertion_auc": final["eval/insertion_auc"]}
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}
    assert card.data.base_model is None and str(tmp_path) not in str(card)  # a local classifier: no path
    assert card.data.pipeline_tag == "image-attribution" and card.data.library_name == "aha-explain"
    reloaded = AHAExplainer.from_pretrained(out)
    assert reloaded.image_processor is not None and reloaded.config.classifier_config.num_labels == 5


def test_the_core_package_works_without_the_training_libraries_and_aha_train_names_the_extra():
    """accelerate, datasets and evaluate are extras: with all three blocked, explaining and scoring run, and
    `aha train` says what to install instead of failing on an import (its --help needs none of them)."""
    code = (
        "import sys\n"
        "for name in ('accelerate', 'datasets', 'evaluate'): sys.modules[name] = None\n"
        "import torch, transformers\n"
        "from aha import AHAExplainer\n"
        "from aha.cli import main\n"
        "from aha.metrics import deletion\n"
        "config = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=2,\n"
        "                                num_attention_heads=2, intermediate_size=16, num_labels=3)\n"
        "classifier = transformers.ViTForImageClassification(config).eval()\n"
        "explainer = AHAExplainer.from_classifier(classifier, fusion_channels=8).eval()\n"
        "images = torch.rand(2, 3, 16, 16)\n"
        "maps = explainer.explain(images)\n"
        "print(tuple(maps.shape), deletion(classifier, images, maps).auc.shape, flush=True)\n"
        "main(['train', '--model_name_or_path', 'x', '--dataset_path', 'y', '--output_dir', 'z'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "(2, 16, 16) torch.Size([2])", done.stderr[-2000:]
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "aha train needs datasets, which is not installed: pip install -e '.[train]' in a clone of aha-explain "
        "(it is not on PyPI yet)"
    )


def test_thread_choice_never_oversubscribes_and_names_its_reason(monkeypatch):
    from aha.threads import choose_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert choose_threads() == (4, "4 cores, load average 0.2, 1 process(es) on this machine")
    assert choose_threads(processes=2)[0] == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (5.7, 0.0, 0.0))  # other jobs keep every core busy
    assert choose_threads()[0] == 1 and choose_threads(processes=3)[0] == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    assert choose_threads(processes=2)[0] == 1
    assert choose_threads(3) == (3, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads() == (2, "OMP_NUM_THREADS")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"--threads must be a whole number >= 1, got {bad!r}"):
            choose_threads(bad)
