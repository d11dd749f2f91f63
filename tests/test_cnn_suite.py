"""The benchmark suite with a CNN: the classifier recipe on a small ResNet, AHA trained on it, and
benchmarks/cnn_suite.py then benchmarks/suite.py run the way the lead runs them (tiny worlds, offline)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageClassification, ResNetForImageClassification

from aha import AHAExplainer
from aha.demo.classifier import cnn_classifier_config, image_processor_for, train_classifier
from aha.demo.worlds import WORLDS
from aha.training import DataArguments, ModelArguments, OptimisationArguments, RunArguments, train


ROOT = Path(__file__).resolve().parents[1]


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_cnn_config_is_a_small_resnet_and_refuses_images_smaller_than_its_last_cell():
    config = cnn_classifier_config(WORLDS["shapes"].class_names)
    model = ResNetForImageClassification(config)
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 1e6
    last = model(pixel_values=torch.zeros(1, 3, 64, 64), output_hidden_states=True).hidden_states[-1]
    assert last.shape[-2:] == (4, 4)  # stride 16: Grad-CAM's map at 64 px
    with pytest.raises(ValueError, match="3 stages need images of at least 16 px"):
        cnn_classifier_config(WORLDS["shapes"].class_names, image_size=8)
    with pytest.raises(ValueError, match="one entry per stage"):
        cnn_classifier_config(WORLDS["shapes"].class_names, hidden_sizes=(8, 16), depths=(1,))


def test_the_recipe_trains_a_resnet_whose_saved_folder_loads_and_trains_an_explainer(tmp_path):
    world = WORLDS["shapes"]
    split = world.split("train", 32, size=32)
    processor = image_processor_for(split, 32)
    config = cnn_classifier_config(world.class_names, 32, hidden_sizes=(8, 16), depths=(1, 1))  # last map 4 x 4
    recipe = dict(epochs=1, batch_size=16, seed=0, progress=False)  # two steps
    model = train_classifier(split, processor, config, **recipe)
    without_probe = train_classifier(split, processor, config, patch_loss_weight=0.0, **recipe)
    initial = weights(ResNetForImageClassification(config))
    assert isinstance(model, ResNetForImageClassification) and not model.training
    # the per-patch loss on the last feature map changes the weights, and the weights move from their init
    assert not torch.equal(weights(model), weights(without_probe))
    assert not torch.equal(weights(model)[: len(initial)], initial) and torch.isfinite(weights(model)).all()

    classifier_dir, data_dir = tmp_path / "classifier", tmp_path / "data"
    model.save_pretrained(classifier_dir)
    processor.save_pretrained(classifier_dir)
    loaded = AutoModelForImageClassification.from_pretrained(classifier_dir).eval()
    assert isinstance(loaded, ResNetForImageClassification)
    pixel_values = processor(list(split["image"][:4]), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits)

    from datasets import DatasetDict

    DatasetDict({"train": split}).save_to_disk(str(data_dir))
    explainer = train(
        DataArguments(dataset_path=str(data_dir), validation_split="none"),
        ModelArguments(model_name_or_path=str(classifier_dir)),
        OptimisationArguments(max_train_steps=2, per_device_train_batch_size=4, gradient_checkpointing=False, seed=0),
        RunArguments(output_dir=str(tmp_path / "explainer"), overwrite_output_dir=True),
    )
    reloaded = AHAExplainer.from_pretrained(tmp_path / "explainer").eval()
    assert isinstance(reloaded.classifier, ResNetForImageClassification)
    assert reloaded.feature_spec.patch_size == 8  # the decoder's grid: the middle of the strides 4, 8, 16
    torch.testing.assert_close(
        weights(reloaded.classifier), weights(model)
    )  # the explainer wraps the saved classifier, frozen
    maps = reloaded.explain(pixel_values)
    assert maps.shape == (4, 32, 32) and torch.isfinite(maps).all()
    torch.testing.assert_close(maps, explainer.eval().explain(pixel_values))


def run_script(name: str, *argv: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *argv],
        capture_output=True,
        text=True,
        cwd=ROOT / "benchmarks",
        env=environment,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_cnn_suite_then_suite_skip_the_methods_that_refuse_a_cnn(tmp_path):
    """benchmarks/cnn_suite.py writes a CNN per world beside an `aha demo` folder's data; benchmarks/suite.py reads it
    with --data_dir, trains AHA on the CNN, scores the baselines and skips rollout with a note."""
    world = WORLDS["shapes"]
    suite, cnn = tmp_path / "suite", tmp_path / "cnn"
    splits = world.dataset(32, 2, 4, seed=0, size=64)
    splits.save_to_disk(str(suite / "shapes" / "data"))
    processor = image_processor_for(splits["train"], 64)
    processor.save_pretrained(suite / "shapes" / "classifier")  # the ViT's folder: its processor is what is read
    results = tmp_path / "cnn_suite.json"
    common = ("--suite_dir", str(suite), "--worlds", "shapes")
    run_script(
        "cnn_suite.py", *common, "--output_dir", str(cnn), "--epochs", "1", "--no_progress", "--results", str(results)
    )
    record = json.loads(results.read_text())["worlds"]["shapes"]
    assert record["epochs"] == 1 and record["num_train"] == 32 and record["num_test"] == 4
    assert 0 <= record["test_accuracy"] <= 1 and record["parameters"] > 0.5e6
    assert isinstance(
        AutoModelForImageClassification.from_pretrained(cnn / "shapes" / "classifier"), ResNetForImageClassification
    )
    saved = json.loads((cnn / "shapes" / "classifier" / "preprocessor_config.json").read_text())
    assert np.allclose(saved["image_mean"], processor.image_mean) and np.allclose(
        saved["image_std"], processor.image_std
    )
    assert not (cnn / "shapes" / "data").exists()  # the data stays in the suite's folder

    output = tmp_path / "suite_cnn.json"
    run = run_script(
        "suite.py",
        "--suite_dir", str(cnn), "--data_dir", str(suite), *common[2:],
        "--rows", "default", "--steps", "2", "--batch_size", "2", "--eval_images", "2",
        "--baselines", "rollout", "random",
        "--work_dir", str(tmp_path / "work"), "--output", str(output),
    )  # fmt: skip
    assert "skipping rollout, which refuses this classifier" in run.stdout
    for references in ([], ["--refine_references", "mean"]):  # explain's refinement, then the "mean"-only one
        run_script(
            "suite.py",
            "--suite_dir", str(cnn), "--data_dir", str(suite), *common[2:],
            "--rows", "default", "--steps", "2", "--eval_images", "2", "--refine_steps", "1", *references,
            "--work_dir", str(tmp_path / "work"), "--output", str(output),
        )  # fmt: skip
    runs = json.loads(output.read_text())["runs"]["shapes"]
    refined = {key: runs.pop(key) for key in ("default+2steps+refine1-mean-blur@0", "default+2steps+refine1@0")}
    assert refined["default+2steps+refine1-mean-blur@0"]["what"].endswith("1 refinement steps against mean, blur")
    assert refined["default+2steps+refine1@0"]["settings"]["refine_references"] == ["mean"]
    assert sorted(runs) == ["default+2steps@0", "random"]
    assert len(runs["default+2steps@0"]["scores"]["deletion_mean"]) == 2

    table = run_script(
        "suite.py", "--markdown", "--output", str(output), "--worlds", "shapes",
        "--reference", "random", "--differences", "default+2steps", "--difference_metrics", "deletion_mean",
    ).stdout  # fmt: skip
    aha, random = (torch.tensor(runs[key]["scores"]["deletion_mean"]) for key in ("default+2steps@0", "random"))
    expected = f"{(aha - random).mean().item():+.3f} ± {(aha - random).std().item() / 2**0.5:.3f}"
    assert f"| default+2steps | shapes | 2 | {expected} |" in table
    assert "macro" not in table.rpartition("row minus random")[2]  # one world: no macro line
