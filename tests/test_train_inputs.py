"""`aha train` refuses bad data folders, paths and flag combinations early, with messages that say what was
expected, and the console command exits non-zero on them."""

import os
import subprocess
import sys

import pytest
import transformers as T
from conftest import make_classifier
from training_helpers import processor, random_images, train_argv

from aha.training import build_parser, train


def _train(output_dir, *extra):
    args = build_parser().parse_args(train_argv(output_dir, "--max_train_steps", 1, *extra))
    return train(*args, classifier=make_classifier("vit"), image_processor=processor())


def _image_folder(root, classes, per_class=2):
    for name in classes:
        (root / name).mkdir(parents=True)
        for index, image in enumerate(random_images(per_class, seed=len(name))):
            image.save(root / name / f"{index}.png")
    return root


@pytest.mark.parametrize(
    "layout, message",
    [
        (None, r"--train_dir: no such folder .*/data"),
        ([], r"--train_dir .*/data holds no image files; expected .*/data/<class name>/<image>"),
        (["notes"], r"--train_dir .*/data holds no image files"),
        (["cat"], r"--train_dir .*/data holds images in \['cat'\]: .* at least two class folders side by side"),
        (["."], r"--train_dir .*/data holds images in \['.'\]: .* at least two class folders"),
    ],
    ids=["missing", "empty", "no images", "one class", "no class folders"],
)
def test_bad_image_folders_are_named(tmp_path, layout, message):
    data = tmp_path / "data"
    if layout is not None:
        data.mkdir()
        for name in layout:
            if name == "notes":
                (data / "notes.txt").write_text("not an image")
            elif name == ".":
                random_images(1)[0].save(data / "0.png")
            else:
                _image_folder(data, [name])
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        _train(tmp_path / "out", "--train_dir", data)


def test_a_two_class_folder_trains(tmp_path):
    data = _image_folder(tmp_path / "data", ["cat", "dog"])
    _train(tmp_path / "out", "--train_dir", data)
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_missing_local_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--dataset_path: no such folder"):
        _train(tmp_path / "out", "--dataset_path", tmp_path / "saved")
    args = build_parser().parse_args(train_argv(tmp_path / "out", "--model_name_or_path", "./no/such/model"))
    with pytest.raises(FileNotFoundError, match="--model_name_or_path: no such local folder ./no/such/model"):
        train(*args)


def test_overwrite_and_resume_together_are_refused(tmp_path):
    with pytest.raises(
        ValueError, match="--overwrite_output_dir deletes the checkpoints that --resume_from_checkpoint"
    ):
        _train(tmp_path, "--overwrite_output_dir", "--resume_from_checkpoint", "latest")
    with pytest.raises(ValueError, match="--resume_from_checkpoint latest: .* holds no checkpoint to resume"):
        _train(tmp_path, "--resume_from_checkpoint", "latest")


def test_the_console_command_refuses_a_headless_classifier(tmp_path):
    """A ViT saved without its classification head used to train against a random head and exit 0."""
    config = T.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=5,
    )
    T.ViTModel(config).save_pretrained(tmp_path / "headless")
    processor().save_pretrained(tmp_path / "headless")
    data = _image_folder(tmp_path / "data", ["cat", "dog"])
    command = [
        sys.executable,
        "-m",
        "aha",
        "train",
        "--model_name_or_path",
        str(tmp_path / "headless"),
        "--train_dir",
        str(data),
        "--output_dir",
        str(tmp_path / "out"),
        "--max_train_steps",
        "1",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode != 0
    assert "lacks 2 weights of ViTForImageClassification (classifier.bias, classifier.weight)" in result.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()
